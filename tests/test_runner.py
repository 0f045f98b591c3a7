"""The runner's acting step, shared by training, evaluation and video: what a policy
sees and what the rollout records, on a scripted env where one agent dies mid-episode."""

from __future__ import annotations

import numpy as np
import torch

from marl.envs.base import EnvSpec, VecBuffers
from marl.runner import Runner, evaluate

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
