"""The one-agent degenerate case through the same COMA pipeline (issue 3).

* With one agent the counterfactual baseline ``sum_u pi(u) Q(s, u)`` is ``V(s)`` and the
  advantage is ``Q(s, u) - V(s)``: checked through :meth:`Learner.update` on a synthetic
  one-agent fragment whose critic computes a known ``Q(s, .)``.
* The bandit learns: ``coma_bandit`` and ``reinforce_bandit`` put >= 0.95 on the optimal
  arms (the full experiments, seed 0, a few seconds each).
* Every single-agent experiment runs end to end through the real Trainer (tiny runs).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import train_quietly

from marl.algos.coma.config import ComaConfig
from marl.algos.coma.learner import Learner, update_metrics
from marl.core.policy import exploration_probs
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec

T, B, O, S, A = 6, 5, 3, 2, 4  # noqa: E741 - the shape letters of the docs
SPEC = EnvSpec(agents=("player_0",), obs_shape=(O,), state_dim=S, n_actions=A)


def one_agent_fragment(seed: int = 0, eps: float = 0.0) -> Rollout:
    g = torch.Generator().manual_seed(seed)
    term = torch.zeros(T, B, dtype=torch.bool)
    trunc = torch.zeros(T, B, dtype=torch.bool)
    term[2, 0] = True
    trunc[4, 1] = True
    first = torch.zeros(T + 1, B, dtype=torch.bool)
    first[0] = True
    first[1:] = term | trunc
    actions = torch.randint(0, A, (T, B, 1), generator=g)
    prev = torch.full((T + 1, B, 1), A)
    prev[1:] = actions.masked_fill(first[1:, :, None], A)
    return Rollout(
        obs=torch.randn(T + 1, B, 1, O, generator=g), state=torch.randn(T + 1, B, S, generator=g),
        action_mask=torch.ones(T + 1, B, 1, A, dtype=torch.bool),
        alive=torch.ones(T + 1, B, 1, dtype=torch.bool), first=first, prev_actions=prev,
        actions=actions, rewards=torch.randn(T, B, 1, generator=g), terminated=term,
        truncated=trunc, final_obs=torch.randn(T, B, 1, O, generator=g),
        final_state=torch.randn(T, B, S, generator=g),
        final_action_mask=torch.ones(T, B, 1, A, dtype=torch.bool), h0=torch.zeros(B, 1, 0),
        eps=torch.full((T,), eps))


def known_critic(learner: Learner, w: torch.Tensor, c: torch.Tensor) -> None:
    """Set the central Q-critic (one hidden layer of 2S ReLUs) to ``Q(s, .) = w s + c``
    exactly: hidden = [relu(s), relu(-s)], output = [w, -w] hidden + c."""
    for net in (learner.critics["central_q"].net, learner.critics["central_q"].target):
        first, last = net.mlp.net[0], net.mlp.net[2]
        with torch.no_grad():
            first.weight.zero_()
            first.bias.zero_()
            first.weight[:S, :S] = torch.eye(S)  # the state comes first in the input
            first.weight[S:, :S] = -torch.eye(S)
            last.weight.copy_(torch.cat([w, -w], 1))
            last.bias.copy_(c)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_one_agent_coma_advantage_is_q_minus_v_through_the_learner(eps):
    ro = one_agent_fragment(eps=eps)
    torch.manual_seed(0)
    cfg = ComaConfig(critic_hidden=[2 * S], eps_start=eps, eps_end=eps)
    learner = Learner(SPEC, cfg)
    g = torch.Generator().manual_seed(1)
    w, c = torch.randn(A, S, generator=g), torch.randn(A, generator=g)
    known_critic(learner, w, c)

    # What the update must find, computed independently of the learner's code path.
    with torch.no_grad():
        logits, _ = learner.actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1],
                                         ro.h0)
        pi = exploration_probs(logits, eps)[:, :, 0]  # [T, B, A]
        q = ro.state[:-1] @ w.T + c  # [T, B, A]: Q(s, u) for every u
        v = (pi * q).sum(-1)  # V(s) = E_{u ~ pi} Q(s, u)
        a = ro.actions[..., 0]
        expected_adv = q.gather(-1, a[..., None]).squeeze(-1) - v
        logp = torch.log(pi.gather(-1, a[..., None]).squeeze(-1))
        expected_actor_loss = -(expected_adv * logp).mean()

    seen: dict[str, torch.Tensor] = {}
    real = learner.compute_advantage

    def spy(*args, **kwargs):
        adv, baseline = real(*args, **kwargs)
        seen["adv"], seen["baseline"] = adv.clone(), baseline.clone()
        return adv, baseline

    learner.compute_advantage = spy  # type: ignore[method-assign]
    metrics = update_metrics(learner.update(ro), SPEC)

    assert seen["adv"].shape == (T, B, 1)
    torch.testing.assert_close(seen["baseline"][..., 0], v)  # baseline = V(s)
    torch.testing.assert_close(seen["adv"][..., 0], expected_adv)  # A = Q(s, u) - V(s)
    assert metrics["loss/actor"] == pytest.approx(expected_actor_loss.item(), rel=1e-5)
    assert metrics["train/baseline"] == pytest.approx(v.mean().item(), rel=1e-5, abs=1e-6)
    # the advantage averages to zero under the policy at every state
    torch.testing.assert_close((pi * (q - v[..., None])).sum(-1), torch.zeros(T, B),
                               atol=1e-5, rtol=0)


def test_one_agent_critic_input_never_sees_the_own_action():
    """With N = 1 the critic's |A| outputs are the whole Q(s, .): changing the taken
    action changes no critic input, so sum_u pi(u) Q(s, u) is a function of s alone."""
    ro = one_agent_fragment()
    torch.manual_seed(0)
    learner = Learner(SPEC, ComaConfig())
    net = learner.critics["central_q"].net
    from marl.algos.coma.critics import CriticBatch

    base = net.inputs(CriticBatch(ro.state[:-1], ro.obs[:-1], ro.actions, ro.prev_actions[:-1]))
    other = (ro.actions + 1) % A
    moved = net.inputs(CriticBatch(ro.state[:-1], ro.obs[:-1], other, ro.prev_actions[:-1]))
    assert torch.equal(base, moved)


# ---------------------------------------------------------------------- through the Trainer
train = train_quietly


def optimal_probability(run_dir, optimal: list[int]) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "train/pi/player_0/0" in r][-1]
    return sum(last[f"train/pi/player_0/{a}"] for a in optimal)


@pytest.mark.parametrize("experiment", ["coma_bandit", "reinforce_bandit"])
def test_bandit_learns_the_optimal_arms(tmp_path, experiment):
    """The experiment as configured (2,000 updates of 256 pulls), seed 0: the exploring
    policy puts >= 0.95 on arms 0 and 3 (means 1.0; the others 0.9) at the last update."""
    summary = train(tmp_path, [f"+experiment={experiment}", "seed=0"])
    assert summary["env_steps"] == 2000 * 256
    assert optimal_probability(tmp_path, [0, 3]) >= 0.95
    assert summary["eval/success_rate"] == 1.0  # greedy: always an optimal arm
    assert (tmp_path / "plots" / "action_probs.png").read_bytes()[:4] == b"\x89PNG"


BANDIT_TINY = ["train.num_envs=8", "train.total_env_steps=400", "train.eval_every_env_steps=200",
               "train.eval_episodes=4", "train.log_every_env_steps=80"]
SMOKE = {
    "coma_bandit": BANDIT_TINY,
    "reinforce_bandit": BANDIT_TINY,
    "coma_bandit_unique": BANDIT_TINY,
    "reinforce_bandit_unique": BANDIT_TINY,
    "coma_cartpole": ["train.num_envs=4", "train.fragment_len=8", "train.total_env_steps=256",
                      "train.eval_every_env_steps=128", "train.eval_episodes=2",
                      "env.max_steps=20", "train.log_every_env_steps=64"],
    "coma_pong": ["train.num_envs=2", "train.fragment_len=8", "train.total_env_steps=48",
                  "train.eval_every_env_steps=32", "train.eval_episodes=1",
                  "env.max_episode_frames=160", "train.video_max_frames=20",
                  "train.log_every_env_steps=16"],
    # truncation after 40 agent steps: the value head bootstraps from final observations
    "ppo_pong": ["train.num_envs=2", "train.fragment_len=8", "train.total_env_steps=48",
                 "train.eval_every_env_steps=32", "train.eval_episodes=1",
                 "env.max_episode_frames=160", "train.video_max_frames=20",
                 "train.log_every_env_steps=16"],
    "reinforce_pong": ["train.num_envs=2", "train.fragment_len=40", "train.total_env_steps=160",
                       "train.eval_every_env_steps=80", "train.eval_episodes=1",
                       "env.max_episode_frames=150", "train.video_max_frames=20",
                       "train.log_every_env_steps=80"],
}


@pytest.mark.parametrize("experiment", sorted(SMOKE))
def test_single_agent_experiment_smoke(tmp_path, experiment):
    summary = train(tmp_path, [f"+experiment={experiment}", *SMOKE[experiment]])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["name"] == experiment and written["env_steps"] == summary["env_steps"]
    assert written["env_steps"] >= 48 and "eval/return_mean" in written
    assert (tmp_path / "plots" / "learning_curve.png").is_file()
    if "bandit" in experiment:
        assert (tmp_path / "plots" / "action_probs.png").read_bytes()[:4] == b"\x89PNG"
    if "pong" in experiment:  # eval videos: the two evaluations, each a GIF
        gifs = sorted((tmp_path / "videos").glob("eval_*.gif"))
        assert len(gifs) == 2 and gifs[0].read_bytes()[:6] == b"GIF89a"
