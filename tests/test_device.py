"""``device=auto|cpu|cuda``: networks, buffers and updates live on the run's device.

The leak test: with torch's default device set to ``meta`` and ``device=cpu``, a run
is built, collects fragments, updates and evaluates. A tensor made without the run's
device (a bare ``torch.zeros(...)`` in an update) lands on ``meta`` and the step fails
(meta tensors cannot meet CPU ones, nor become numbers). The cases come from the tables
themselves: every algo preset, and every row of every table of choices, so a row added
later is covered without editing this file.
"""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT, compose_config

from marl.algos.coma.advantages import ADVANTAGES
from marl.algos.coma.critic_training import CRITIC_TRAINING
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.algos.rewards import REWARD_TRANSFORMS
from marl.algos.vd.mixers import MIXERS
from marl.build import build
from marl.core.critic_nets import CRITIC_NETS
from marl.core.device import resolve_device
from marl.core.runner import evaluate
from marl.schema import ConfigError

SMALL = ["env=boxpush", "env.width=4", "env.height=4", "env.max_steps=6", "train.num_envs=4",
         "train.fragment_len=5", "logger.progress=false", "device=cpu"]
VD_SMALL = ["algo.vd.episode_limit=6", "algo.vd.batch_episodes=2", "algo.vd.buffer_episodes=8"]

# each row of a table, on the algo preset that can take it
ROW_BASES = [
    (ADVANTAGES, "advantage", ["algo=coma"]),
    (ACTOR_UPDATES, "actor_update", ["algo=coma"]),
    (CRITIC_TRAINING, "critic_update", ["algo=ippo", "algo.ppo.minibatches=1"]),
    (CRITIC_NETS, "critic_net", ["algo=mappo", "algo.rnn=true", "algo.ppo.minibatches=1"]),
    (MIXERS, "vd.mixer", ["algo=qmix", *VD_SMALL]),
    (REWARD_TRANSFORMS, "reward.transform", ["algo=coma"]),
    (REWARD_TRANSFORMS, "reward.transform", ["algo=qmix", *VD_SMALL]),
]
CASES = [[f"algo={p.stem}", *(VD_SMALL if p.stem in ("qmix", "vdn") else [])]
         for p in sorted((ROOT / "conf" / "algo").glob("*.yaml"))]
CASES += [[*base, f"algo.{key}={row}"] for table, key, base in ROW_BASES for row in table]


def _run(overrides: list[str], default_device: str) -> list[float]:
    """Build, collect and update 3 times, evaluate, with torch's default device set to
    ``default_device``; what came out: the parameters' sum after every update and the
    evaluation returns."""
    cfg = compose_config([*SMALL, *overrides])
    torch.manual_seed(0)
    torch.set_default_device(default_device)
    try:
        env, learner, runner = build(cfg, cfg.train.num_envs, seed=0)
        out = []
        for _ in range(3):  # enough fragments for a replay buffer's first gradient step
            runner.collect(learner.policy)
            learner.update(runner.ro)
            out.append(float(sum(p.detach().double().sum() for p in learner.parameters())))
        assert getattr(learner, "n_grad_steps", 1) > 0, "the replay learner never trained"
        out += evaluate(env, learner.policy, learner.policy.hidden_dim, seed=1)["return"].tolist()
        assert all(p.device.type == "cpu" for p in learner.parameters())
        env.close()
        return out
    finally:
        torch.set_default_device("cpu")


@pytest.mark.parametrize("overrides", CASES, ids=" ".join)
def test_no_tensor_escapes_the_device(overrides):
    """A leaked tensor either fails (meta meets CPU) or, where torch lets a meta index
    through, reads garbage: the run must match the same run with a CPU default exactly."""
    assert _run(overrides, "meta") == _run(overrides, "cpu")


def test_the_leak_test_catches_a_bare_factory_call(monkeypatch):
    """A tensor made in an update without the run's device fails the test above."""
    from marl.algos.coma import learner as coma_learner

    real = coma_learner.ComaLearner.update

    def leaky(self, ro):
        order = torch.arange(ro.t_len)  # no device: torch's default
        ro.rewards.copy_(ro.rewards[order])
        return real(self, ro)

    monkeypatch.setattr(coma_learner.ComaLearner, "update", leaky)
    with pytest.raises((AssertionError, RuntimeError)):
        test_no_tensor_escapes_the_device(["algo=coma"])


@pytest.mark.parametrize("bad,words", [("gpu", "is not a device"), ("cuda:x", "is not a device")])
def test_a_bad_device_is_one_line(bad, words):
    with pytest.raises(ConfigError, match=words):
        compose_config([*SMALL[:-1], f"device={bad}"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_at_start():
    with pytest.raises(ConfigError, match="device=cuda: CUDA is not available here"):
        compose_config([*SMALL[:-1], "device=cuda"])
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (none here)")
@pytest.mark.parametrize("algo", ["coma", "mappo", "qmix"])
def test_a_run_on_cuda_keeps_its_tensors_there(algo, tmp_path):
    cfg = compose_config([*SMALL[:-1], "device=cuda", f"algo={algo}",
                          *(VD_SMALL if algo == "qmix" else [])])
    env, learner, runner = build(cfg, cfg.train.num_envs, seed=0)
    for _ in range(4):
        runner.collect(learner.policy)
        learner.update(runner.ro)
    assert all(p.device.type == "cuda" for p in learner.parameters())
    sd = learner.state_dict_full()
    learner.load_state_dict_full(sd)
    runner.collect(learner.policy)
    learner.update(runner.ro)
    env.close()
