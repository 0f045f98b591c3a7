"""The episode replay buffer: episodes assembled across fragments, masks, padding,
sampling, the ring, persistence and the memory check."""

from __future__ import annotations

import pytest
import torch

from marl.algos.vd.replay import EpisodeBuffer, buffer_bytes
from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec

SPEC = EnvSpec(agents=("a", "b"), obs_shape=(2,), state_dim=3, n_actions=4,
               has_action_mask=True)


def fragment(t0: int, ends: dict[tuple[int, int], str], b: int = 2, t_len: int = 4) -> Rollout:
    """A hand-made fragment: obs[t, env] = [time, env] (global time t0 + t), rewards per
    agent (t, 2t), actions t % 4; ``ends[(t, env)]`` = "term" | "trunc"; first flags after
    ends; final obs = [-time, env]."""
    ro = Rollout.allocate(SPEC, b, t_len, 0)
    for t in range(t_len + 1):
        for e in range(b):
            ro.obs[t, e] = torch.tensor([t0 + t, e], dtype=torch.float32)
            ro.state[t, e] = float(t0 + t)
    steps = torch.arange(t_len, dtype=torch.float32)[:, None, None]
    ro.rewards[:] = steps * torch.tensor([1.0, 2.0])
    ro.actions[:] = (torch.arange(t_len) % 4)[:, None, None]
    ro.action_mask[:, :, 1, 3] = False
    for (t, e), kind in ends.items():
        (ro.terminated if kind == "term" else ro.truncated)[t, e] = True
        ro.first[t + 1, e] = True
        ro.final_obs[t, e] = torch.tensor([-(t0 + t + 1), e], dtype=torch.float32)
        ro.final_state[t, e] = -(t0 + t + 1.0)
    return ro


def test_episodes_are_assembled_across_fragments():
    buf = EpisodeBuffer(SPEC, capacity=8, limit=10, num_envs=2)
    ro0 = fragment(0, {(1, 0): "term"})  # env 0: episode of 2 steps ends at t=1
    ro0.first[0] = True
    assert buf.add(ro0) == 1
    assert buf.add(fragment(4, {(2, 1): "trunc"})) == 1  # env 1: 7 steps over 2 fragments
    assert buf.size == 2 and buf.length[:2].tolist() == [2, 7]
    ep = buf.store
    # env 0's episode: obs times 0, 1, then the final obs -2
    assert ep.obs[0, :3, 0].tolist() == [[0.0, 0.0], [1.0, 0.0], [-2.0, 0.0]]
    assert ep.state[0, :3, 0].tolist() == [0.0, 1.0, -2.0]
    assert ep.reward[0, :2].tolist() == [0.0, 1.5]  # team reward: mean of (t, 2t)
    assert ep.terminated[0].tolist()[:3] == [False, True, False]
    assert not ep.truncated[0].any()
    assert ep.filled[0].tolist() == [True, True] + [False] * 8
    # env 1's episode: times 0..6 (fragment 0 and the first 3 steps of fragment 1)
    assert ep.obs[1, :8, 1, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, -7]
    assert ep.actions[1, :7, 0].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert ep.truncated[1].nonzero().squeeze(1).tolist() == [6]
    assert not ep.terminated[1].any()
    assert ep.filled[1].sum() == 7
    assert not ep.avail[1, :7, 1, 3].any() and ep.avail[1, :7, 1, :3].all()
    # padding: avail all True, alive False, zeros
    assert ep.avail[0, 3:].all() and not ep.alive[0, 3:].any()
    assert (ep.obs[0, 3:] == 0).all() and (ep.reward[0, 2:] == 0).all()
    # env 0's next episode is staged from t=2 on (6 steps so far), env 1's from t=7
    assert buf.pos.tolist() == [6, 1]


def test_staging_rows_are_clean_after_a_commit():
    """A short episode after a long one carries nothing of it (padding stays padding)."""
    buf = EpisodeBuffer(SPEC, capacity=8, limit=10, num_envs=2)
    buf.add(fragment(0, {(3, 0): "term", (3, 1): "term"}))
    buf.add(fragment(4, {(0, 0): "term", (0, 1): "term"}))
    short = buf.store.obs[2]
    assert buf.length[2] == 1 and (short[2:] == 0).all()
    assert not buf.store.alive[2, 2:].any()


def test_a_restart_without_an_end_drops_the_partial_episode():
    buf = EpisodeBuffer(SPEC, capacity=8, limit=10, num_envs=2)
    buf.add(fragment(0, {}))
    ro = fragment(4, {(0, 0): "term"})
    ro.first[0, 1] = True  # env 1 restarted (a resume without env state)
    buf.add(ro)
    assert buf.size == 1 and buf.pos.tolist() == [3, 4]
    assert buf.stage.obs[1, 0, 0, 0] == 4.0  # env 1 starts over at the restart


def test_an_episode_longer_than_the_limit_fails_naming_it():
    buf = EpisodeBuffer(SPEC, capacity=8, limit=6, num_envs=2)
    buf.add(fragment(0, {}))
    with pytest.raises(ValueError, match="longer than algo.vd.episode_limit = 6"):
        buf.add(fragment(4, {}))


def test_the_ring_overwrites_the_oldest():
    buf = EpisodeBuffer(SPEC, capacity=3, limit=10, num_envs=2)
    for k in range(4):  # 2 episodes per fragment, each 4 steps; 8 stored, 3 kept
        buf.add(fragment(4 * k, {(3, 0): "term", (3, 1): "term"}))
    assert buf.size == 3 and buf.episodes_added == 8 and buf.next_idx == 2
    starts = buf.store.obs[:, 0, 0, 0].tolist()  # first obs time of each stored episode
    assert sorted(starts) == [8.0, 12.0, 12.0]


def test_sampling_is_uniform_over_stored_episodes_and_trims():
    buf = EpisodeBuffer(SPEC, capacity=16, limit=10, num_envs=2, seed=5)
    buf.add(fragment(0, {(1, 0): "term", (3, 1): "trunc"}))  # lengths 2 and 4
    assert buf.size == 2
    counts = torch.zeros(16)
    for _ in range(200):
        batch, idx = buf.sample(8)
        counts += torch.bincount(idx, minlength=16)
        assert batch.actions.shape[1] == int(buf.length[idx].max())  # trimmed
        assert batch.obs.shape[1] == batch.actions.shape[1] + 1
        assert torch.equal(batch.filled.sum(1), buf.length[idx])
    assert counts[2:].sum() == 0  # only stored slots
    assert 700 < counts[0] < 900 and 700 < counts[1] < 900  # 800 each expected


def test_sampling_from_an_empty_buffer_fails():
    with pytest.raises(ValueError, match="empty"):
        EpisodeBuffer(SPEC, capacity=4, limit=10, num_envs=2).sample(2)


def test_state_dict_round_trip_samples_the_same():
    buf = EpisodeBuffer(SPEC, capacity=16, limit=10, num_envs=2, seed=1)
    buf.add(fragment(0, {(1, 0): "term", (3, 1): "trunc"}))
    buf.add(fragment(4, {(2, 0): "trunc"}))
    sd = buf.state_dict()
    assert sd["store"]["obs"].shape[0] == buf.size  # only the filled part is saved
    other = EpisodeBuffer(SPEC, capacity=16, limit=10, num_envs=2, seed=99)
    other.load_state_dict(sd)
    ro = fragment(8, {(0, 1): "term"})
    assert buf.add(ro) == other.add(ro) == 1
    a, ia = buf.sample(6)
    b, ib = other.sample(6)
    assert torch.equal(ia, ib)
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.items(), b.items(), strict=True))


def test_a_buffer_that_does_not_fit_fails_with_its_size_in_gib():
    need = buffer_bytes(SPEC, 1000, 10, 2)
    with pytest.raises(ValueError, match=rf"would need {need / 2**30:.2f} GiB .*1000 episodes"):
        EpisodeBuffer(SPEC, capacity=1000, limit=10, num_envs=2, memory_bytes=need - 1)
    EpisodeBuffer(SPEC, capacity=1000, limit=10, num_envs=2, memory_bytes=need)
