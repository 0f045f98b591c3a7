"""Exact values in a finite-horizon Dec-POMDP: of a joint policy, of the best open-loop
plan, of the uniform-random policy, and a brute-force optimum for tiny horizons.

A *joint policy* is one deterministic policy per agent, each a function (or a mapping)
from the agent's own observation history -- a tuple of its observation indices, ``()``
at the first step -- to one of its action indices. Values are expected undiscounted
returns over ``horizon`` steps from the start distribution, computed from the model's
tables without sampling; :func:`monte_carlo_value` estimates the same number through the
batched env core, as a check. :func:`policy_from_actor` turns a trained actor (anything
that maps the env's observation vectors to greedy actions) into such a joint policy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np

from marl.envs.dpomdp.config import DPOMDPEnvConfig
from marl.envs.dpomdp.core import DPOMDPCore, encode_history
from marl.envs.dpomdp.model import DecPOMDP

History = tuple[int, ...]
AgentPolicy = Union[Callable[[History], int], Mapping[History, int]]  # noqa: UP007
JointPolicy = Sequence[AgentPolicy]
Actor = Callable[[int, np.ndarray, np.ndarray], Any]
"""``actor(agent, obs, prev_actions) -> actions``: ``obs`` [K, L, D] float32 the agent's
observation vectors at steps ``0..L-1`` of K histories, ``prev_actions`` [K, L-1] int64
its actions at steps ``0..L-2``; returns its K (greedy) actions at step L-1."""

MAX_OPEN_LOOP = 200_000_000
"""Largest (beliefs x joint actions x states) array :func:`open_loop_value` builds."""


def _lookups(model: DecPOMDP, policy: JointPolicy) -> list[Callable[[History], int]]:
    """Per agent a memoised, range-checked ``history -> action``."""
    if len(policy) != model.n_agents:
        raise ValueError(f"a joint policy needs one policy per agent ({model.n_agents}: "
                         f"{list(model.agents)}), got {len(policy)}")
    out = []
    for i, pol in enumerate(policy):
        get = pol.__getitem__ if isinstance(pol, Mapping) else pol
        memo: dict[History, int] = {}
        n_act = model.n_actions[i]

        def look(h: History, get=get, memo=memo, n_act=n_act, i=i) -> int:
            a = memo.get(h)
            if a is None:
                raw = get(h)
                raw = raw.item() if isinstance(raw, np.generic) else raw
                a = int(raw)
                if a != raw or not 0 <= a < n_act:
                    raise ValueError(f"the policy of agent {i} ({model.agents[i]}) chose "
                                     f"{raw!r} after history {h}: its actions are "
                                     f"0..{n_act - 1}")
                memo[h] = a
            return a

        out.append(look)
    return out


def _check_horizon(horizon: int) -> int:
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon = {horizon!r} is invalid: must be an int >= 1")
    return int(horizon)


def policy_value(model: DecPOMDP, policy: JointPolicy, horizon: int) -> float:
    """The exact expected return of ``policy`` over ``horizon`` steps.

    Enumerates the joint observation histories (``|JO|^(horizon-1)`` leaves at most,
    branches of probability 0 skipped) carrying the unnormalised state distribution
    ``P(s, joint history)``.
    """
    horizon = _check_horizon(horizon)
    look = _lookups(model, policy)
    n = model.n_agents
    trans, obs_p, rew = model.transition, model.observation, model.reward
    jo_ind = [tuple(int(x) for x in row) for row in model.obs_table()]

    def value(alpha: np.ndarray, hists: tuple[History, ...], t: int) -> float:
        ja = model.joint_action([look[i](hists[i]) for i in range(n)])
        v = float(alpha @ rew[:, ja])
        if t + 1 == horizon:
            return v
        nxt = (alpha @ trans[:, ja, :])[:, None] * obs_p[ja]  # [S', JO]
        mass = nxt.sum(0)
        for jo in np.flatnonzero(mass > 0):
            obs = jo_ind[jo]
            v += value(nxt[:, jo], tuple(hists[i] + (obs[i],) for i in range(n)), t + 1)
        return v

    return value(np.asarray(model.start, np.float64), ((),) * n, 0)


def open_loop_value(model: DecPOMDP, horizon: int, return_plan: bool = False
                    ) -> float | tuple[float, list[tuple[int, ...]]]:
    """The value of the best open-loop joint plan: a fixed sequence of joint actions,
    chosen without looking at any observation (exact).

    Dynamic programming over beliefs: a plan's future depends only on the state
    distribution it reached, so prefixes that reach the same distribution (to 1e-12)
    are merged, keeping the better one. With ``return_plan`` also returns the plan as
    one tuple of individual actions per step.
    """
    horizon = _check_horizon(horizon)
    T, R = model.transition, model.reward
    ja_n = model.n_joint_actions
    beliefs = np.asarray(model.start, np.float64)[None]  # [K, S]
    values = np.zeros(1)
    parents: list[tuple[np.ndarray, np.ndarray]] = []  # per step: (prefix row, joint action)
    for t in range(horizon):
        k, s = beliefs.shape
        if k * ja_n * s > MAX_OPEN_LOOP:
            raise ValueError(f"open-loop search too large at step {t}: {k} beliefs x "
                             f"{ja_n} joint actions x {s} states")
        cand = values[:, None] + beliefs @ R  # [K, JA]
        if t + 1 == horizon:
            best = int(np.argmax(cand))
            value = float(cand.flat[best])
            if not return_plan:
                return value
            return value, [model.individual_actions(a) for a in _plan(parents, best, ja_n)]
        nxt = np.einsum("ks,sat->kat", beliefs, T).reshape(k * ja_n, s)
        flat = cand.reshape(-1)
        keep = _best_of_equal_beliefs(nxt, flat)
        beliefs, values = nxt[keep], flat[keep]
        parents.append((keep // ja_n, keep % ja_n))
    raise AssertionError("unreachable")


def _best_of_equal_beliefs(beliefs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of ``beliefs`` [K, S] to keep: of each group equal to 1e-12, the best by ``values``."""
    inverse = np.unique(np.round(beliefs, 12), axis=0, return_inverse=True)[1].reshape(-1)
    order = np.lexsort((-values, inverse))
    group_start = np.ones(len(order), bool)
    group_start[1:] = inverse[order][1:] != inverse[order][:-1]
    return order[group_start]


def _plan(parents: list[tuple[np.ndarray, np.ndarray]], best: int, ja_n: int) -> list[int]:
    """The plan's joint actions, first step first, read back from its last candidate
    ``best`` (row * ``ja_n`` + joint action) through each step's (prefix row, action)."""
    row, ja = divmod(best, ja_n)
    plan = [ja]
    for prefix, acts in reversed(parents):
        plan.append(int(acts[row]))
        row = int(prefix[row])
    return plan[::-1]


def random_value(model: DecPOMDP, horizon: int) -> float:
    """The exact value of the uniform-random joint policy (every agent uniform over its
    own actions at every step, so the joint action is uniform over joint actions)."""
    horizon = _check_horizon(horizon)
    r_bar = model.reward.mean(1)  # [S]
    t_bar = model.transition.mean(1)  # [S, S']
    b = np.asarray(model.start, np.float64)
    v = 0.0
    for _ in range(horizon):
        v += float(b @ r_bar)
        b = b @ t_bar
    return v


def monte_carlo_value(model: DecPOMDP, policy: JointPolicy, horizon: int,
                      episodes: int = 4096, seed: int = 0, num_envs: int = 256
                      ) -> tuple[float, float]:
    """Mean return of ``policy`` over ``episodes`` episodes of the batched core, and the
    mean's standard error."""
    horizon = _check_horizon(horizon)
    look = _lookups(model, policy)
    n = model.n_agents
    b = max(1, min(num_envs, episodes))
    core = DPOMDPCore(DPOMDPEnvConfig(horizon=horizon), num_envs=b, seed=seed, model=model)
    returns: list[np.ndarray] = []
    done = 0
    actions = np.zeros((b, n), np.int64)
    while done < episodes:
        core.reset()
        hists: list[list[History]] = [[()] * n for _ in range(b)]
        ret = np.zeros(b)
        for t in range(horizon):
            for e in range(b):
                for i in range(n):
                    actions[e, i] = look[i](hists[e][i])
            ret += core.step(actions).reward[:, 0]
            if t + 1 < horizon:
                seen = core.observation_indices()
                hists = [[hists[e][i] + (int(seen[e, i]),) for i in range(n)]
                         for e in range(b)]
        returns.append(ret[: episodes - done])
        done += b
    r = np.concatenate(returns)
    stderr = float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else float("nan")
    return float(r.mean()), stderr


def histories(n_obs: int, horizon: int) -> list[History]:
    """Every own observation history of length ``0..horizon-1``, shortest first."""
    return [h for t in range(horizon) for h in itertools.product(range(n_obs), repeat=t)]


def policy_from_actor(model: DecPOMDP, horizon: int, actor: Actor) -> list[dict[History, int]]:
    """The joint policy a trained actor plays: per agent a table ``history -> action``.

    Feeds ``actor`` (see :data:`Actor`) the env's own observation vectors
    (:func:`~marl.envs.dpomdp.core.encode_history`) of every history of every length
    ``1..horizon`` (its earlier actions on the same history alongside, for actors that
    take the last action), one batch per agent and length.
    """
    horizon = _check_horizon(horizon)
    tables = []
    for i in range(model.n_agents):
        table: dict[History, int] = {}
        frontier: list[History] = [()]
        for t in range(horizon):
            obs = np.stack([encode_history(model, horizon, h) for h in frontier])
            prev = np.array([[table[h[:j]] for j in range(t)] for h in frontier],
                            np.int64).reshape(len(frontier), t)
            acts = np.asarray(actor(i, obs, prev)).reshape(-1)
            if acts.shape != (len(frontier),):
                raise ValueError(f"the actor returned {acts.shape[0]} actions for "
                                 f"{len(frontier)} histories of agent {i}")
            for h, a in zip(frontier, acts.tolist(), strict=True):
                if not 0 <= int(a) < model.n_actions[i] or int(a) != a:
                    raise ValueError(f"the actor chose {a!r} for agent {i} "
                                     f"({model.agents[i]}) after history {h}: its actions "
                                     f"are 0..{model.n_actions[i] - 1}")
                table[h] = int(a)
            frontier = [h + (o,) for h in frontier for o in range(model.n_obs[i])]
        tables.append(table)
    return tables


def actor_from_policy(policy: Any, n_agents: int, n_actions: int,
                      action_mask: np.ndarray | None = None) -> Actor:
    """An :data:`Actor` over a learner's batched policy (``marl.core.rollout.Policy``:
    ``act(obs, prev_actions, first, action_mask, h, greedy)``), acting greedily.

    Replays each history from the start the way the runner does (``first`` at step 0,
    previous action ``n_actions`` = none there, the hidden state carried) with agent
    ``i``'s inputs in every agent slot, and reads slot ``i``: a decentralised actor's
    action depends on its own slot only. ``action_mask``: ``[N, A]`` (the env's constant
    mask; all allowed by default). For ``policy_from_actor(model, H, actor)``.
    """
    import torch  # only here: the rest of this module is numpy

    mask = np.ones((n_agents, n_actions), bool) if action_mask is None else action_mask

    def actor(agent: int, obs: np.ndarray, prev: np.ndarray) -> np.ndarray:
        k, steps, _ = obs.shape
        h = torch.zeros(k, n_agents, policy.hidden_dim)
        m = torch.from_numpy(np.broadcast_to(mask, (k, *mask.shape)).copy())
        out = None
        with torch.inference_mode():
            for t in range(steps):
                o = torch.from_numpy(np.repeat(obs[:, t][:, None], n_agents, 1))
                pa = (np.full((k, n_agents), n_actions, np.int64) if t == 0
                      else np.repeat(prev[:, t - 1][:, None], n_agents, 1))
                first = torch.full((k,), t == 0, dtype=torch.bool)
                out, h = policy.act(o, torch.from_numpy(pa), first, m, h, greedy=True)
        return out[:, agent].numpy()

    return actor


def brute_force_optimum(model: DecPOMDP, horizon: int, max_policies: int = 1_000_000
                        ) -> tuple[float, list[dict[History, int]]]:
    """The optimal value and an optimal joint policy, by brute force (tiny cases only).

    Enumerates every deterministic policy tree of agents ``0..N-2`` (at most
    ``max_policies`` joint ones, else ValueError) and computes the last agent's exact
    best response to each by backward induction over its own histories.
    """
    horizon = _check_horizon(horizon)
    n = model.n_agents
    trees = []
    for i in range(n - 1):
        hs = histories(model.n_obs[i], horizon)
        trees.append((hs, model.n_actions[i] ** len(hs)))
    count = math.prod(c for _, c in trees)
    if count > max_policies:
        raise ValueError(f"brute force over {count} joint policies of agents 0..{n - 2} "
                         f"is more than max_policies = {max_policies}")
    best_v, best_pol = -math.inf, None
    per_agent = [[dict(zip(hs, acts, strict=True))
                  for acts in itertools.product(range(model.n_actions[i]), repeat=len(hs))]
                 for i, (hs, _) in enumerate(trees)]
    for others in itertools.product(*per_agent):
        v, last = _best_response(model, list(others), horizon)
        if v > best_v + 1e-12:
            best_v, best_pol = v, [*others, last]
    return best_v, best_pol  # type: ignore[return-value]


def _best_response(model: DecPOMDP, others: list[dict[History, int]], horizon: int
                   ) -> tuple[float, dict[History, int]]:
    """The last agent's best response to the fixed policies ``others`` of the rest:
    (value, its policy as a table over all its histories)."""
    rew, n_last, z_last = model.reward, model.n_actions[-1], model.n_obs[-1]
    z_others = model.n_obs[:-1]
    others_obs = [tuple(int(x) for x in np.unravel_index(j, z_others)) if z_others else ()
                  for j in range(math.prod(z_others))]
    strides = model.action_strides()
    table = dict.fromkeys(histories(z_last, horizon), 0)

    def best(alpha: np.ndarray, oh: list[tuple[History, ...]], h: History, t: int
             ) -> tuple[float, dict[History, int]]:
        base = np.array([sum(int(strides[i]) * others[i][hk[i]] for i in range(len(others)))
                         for hk in oh], np.int64)
        top_v, top_b, top_sub = -math.inf, 0, {}
        for b in range(n_last):
            ja = base + b * int(strides[-1])  # [K]
            v = float((alpha * rew[:, ja]).sum())
            sub: dict[History, int] = {}
            if t + 1 < horizon:
                for o, child, child_oh in _children(model, alpha, ja, oh, others_obs):
                    cv, csub = best(child, child_oh, h + (o,), t + 1)
                    v += cv
                    sub.update(csub)
            if v > top_v + 1e-12:
                top_v, top_b, top_sub = v, b, sub
        return top_v, {h: top_b, **top_sub}

    alpha0 = np.asarray(model.start, np.float64)[:, None]
    v, chosen = best(alpha0, [((),) * len(others)], (), 0)
    table.update(chosen)
    return v, table


def _children(model: DecPOMDP, alpha: np.ndarray, ja: np.ndarray, oh: list[tuple[History, ...]],
              others_obs: list[tuple[int, ...]]) -> Iterator[tuple[int, np.ndarray, list]]:
    """Joint actions ``ja`` [K] taken from weights ``alpha`` [S, K] (the others' histories
    ``oh``): per observation o of the last agent, (o, next weights [S', K'], next ``oh``)."""
    z_last = model.n_obs[-1]
    m1 = np.einsum("sk,skt->kt", alpha, model.transition[:, ja, :])  # [K, S']
    nxt = m1[:, :, None] * model.observation[ja]  # [K, S', JO]
    for o in range(z_last):
        cols = nxt[:, :, o::z_last]  # [K, S', JO_others]: last agent saw o
        ks, js = np.nonzero(cols.sum(1) > 0)  # mass [K, JO_others]
        if len(ks) == 0:
            continue
        child_oh = [tuple(oh[k][i] + (others_obs[j][i],) for i in range(len(oh[k])))
                    for k, j in zip(ks, js, strict=True)]
        yield o, cols[ks, :, js].T, child_oh  # [S', K']
