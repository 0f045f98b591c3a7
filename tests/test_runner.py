"""The runner's acting step, shared by training, evaluation and video: what a policy
sees and what the rollout records, on a scripted env where one agent dies mid-episode."""

from __future__ import annotations

import numpy as np
import torch

from marl.core.runner import Runner, evaluate
from marl.envs.base import EnvSpec, VecBuffers

A = 3
SPEC = EnvSpec(agents=("a", "b"), obs_shape=(1,), state_dim=1, n_actions=A)


class DyingEnv:
    """B copies of a 4-step episode; agent b is alive for steps 0 and 1 only."""

    def __init__(self, num_envs: int):
        self.spec, self.num_envs = SPEC, num_envs
        self.buf = VecBuffers.allocate(SPEC, num_envs)
        self.t = np.zeros(num_envs, np.int64)

    def reset(self, seed: int | None = None) -> VecBuffers:
        self.t[:] = 0
        self._write()
        return self.buf

    def _write(self) -> None:
        self.buf.obs[..., 0] = self.t[:, None]
        self.buf.state[:, 0] = self.t
        self.buf.alive[:, 0] = True
        self.buf.alive[:, 1] = self.t < 2

    def step(self, actions: np.ndarray) -> VecBuffers:
        assert (actions[~self.buf.alive] == 0).all(), "a dead agent must act 0 on record"
        self.t += 1
        done = self.t >= 4
        self.buf.reward[:] = 1.0
        self.buf.terminated[:] = done
        self.buf.truncated[:] = False
        self.buf.final_obs[done] = self.buf.obs[done]
        self.t[done] = 0
        self._write()
        return self.buf

    def close(self) -> None:
        pass


class Recorder:
    """Always samples action 1 (greedy too); remembers the previous actions it was shown."""

    hidden_dim = 0

    def __init__(self, eps: float = 0.25):
        self.eps = eps
        self.seen: list[torch.Tensor] = []

    def act(self, obs, prev_actions, first, action_mask, h, greedy=False):
        self.seen.append(prev_actions.clone())
        return torch.ones_like(prev_actions), h


def test_evaluation_shows_a_dead_agent_the_same_previous_action_as_training():
    """After b dies, training records (and shows) its action as 0; evaluation must show
    the same, not the action its policy sampled."""
    train_pol, eval_pol = Recorder(), Recorder()
    runner = Runner(DyingEnv(2), t_len=4, hidden_dim=0, seed=0)
    ro = runner.collect(train_pol)
    evaluate(DyingEnv(2), eval_pol, hidden_dim=0, seed=0)
    assert len(eval_pol.seen) == 4
    for t in range(4):
        torch.testing.assert_close(eval_pol.seen[t], train_pol.seen[t])
        torch.testing.assert_close(eval_pol.seen[t], ro.prev_actions[t])
    assert eval_pol.seen[3][0].tolist() == [1, 0]  # b died after step 1: it "acted" 0


def test_collect_records_the_epsilon_the_policy_acted_with():
    runner = Runner(DyingEnv(2), t_len=4, hidden_dim=0, seed=0)
    ro = runner.collect(Recorder(eps=0.25))
    assert ro.eps.tolist() == [0.25] * 4
    ro = runner.collect(Recorder(eps=0.125))
    assert ro.eps.tolist() == [0.125] * 4
    assert (ro.actions[:, :, 1][~ro.alive[:-1, :, 1]] == 0).all()


class CutEnv(DyingEnv):
    """3-step episodes cut by the time limit; agent b terminated in that last step, so
    the env reports it not ``final_alive``."""

    def step(self, actions: np.ndarray) -> VecBuffers:
        self.t += 1
        cut = self.t >= 3
        self.buf.reward[:] = 1.0
        self.buf.terminated[:] = False
        self.buf.truncated[:] = cut
        self.buf.final_obs[cut] = self.buf.obs[cut]
        self.buf.final_alive[:] = True
        self.buf.final_alive[cut, 1] = False
        self.t[cut] = 0
        self.buf.obs[..., 0] = self.t[:, None]
        self.buf.alive[:] = True
        return self.buf


def test_collect_records_which_agents_were_still_in_a_truncated_episode():
    runner = Runner(CutEnv(2), t_len=4, hidden_dim=0, seed=0)
    ro = runner.collect(Recorder())
    assert ro.truncated[:, 0].tolist() == [False, False, True, False]
    assert ro.final_alive[2].tolist() == [[True, False], [True, False]]


def test_gru_hidden_state_is_carried_across_fragments_and_reset_at_episode_starts():
    """A GRU actor through the real policy on 4-step episodes, fragments of 3 steps (so
    episodes straddle fragments). What the runner acts with must be exactly what the
    learner's unroll reconstructs from the rollout (``h0``, ``first``): the logits at
    every acting step, for three fragments in a row. The hidden state the actor sees is
    zero at every episode start and the previous fragment's last one at a fragment start
    inside an episode."""
    from marl.algos.coma.config import ComaConfig
    from marl.core.nets import Actor
    from marl.core.policy import ExploringPolicy

    torch.manual_seed(0)
    actor = Actor(SPEC.obs_shape, 2, A, hidden=(8,), rnn=True)
    policy = ExploringPolicy(actor, ComaConfig(eps_start=0.3), use_mask=False)
    acted: list[tuple[torch.Tensor, torch.Tensor]] = []  # (h the GRU got, logits)
    forward = actor.forward

    def spy(obs, prev, h):
        logits, h_next = forward(obs, prev, h)
        acted.append((h.clone(), logits.clone()))
        return logits, h_next

    actor.forward = spy
    runner = Runner(DyingEnv(2), t_len=3, hidden_dim=8, seed=0)
    h_end = None
    for k in range(3):
        acted.clear()
        ro = runner.collect(policy)
        if h_end is not None:
            torch.testing.assert_close(ro.h0, h_end)  # carried from the last fragment
        actor.forward = forward
        with torch.no_grad():
            logits, hs = actor.unroll(ro.obs[:-1], ro.prev_actions[:-1], ro.first[:-1], ro.h0)
        actor.forward = spy
        for t in range(3):
            h_in, lg = acted[t]
            torch.testing.assert_close(logits[t], lg)
            step = 3 * k + t  # env step count; episodes start at multiples of 4
            if step % 4 == 0:
                assert ro.first[t].all() and (h_in == 0).all()
            else:
                assert not ro.first[t].any() and h_in.abs().sum() > 0
        h_end = hs[-1]
        torch.testing.assert_close(runner.h, h_end)
