"""Reward transforms: what a learner's targets see in place of the env's rewards.

:data:`REWARD_TRANSFORMS` is one table; ``algo.reward.transform`` names a row, or a plugin
``module:attr`` holding a :class:`RewardTransform` of the user's own. A row's options
live under it: ``algo.reward.<row>.<name>`` for a built-in row (``algo.reward.simhash.
beta=0.01``), ``+algo.reward.plugin.<name>=...`` for a plugin row (checked by the row's
own ``options`` dataclass at start).

The transform sits between the runner and any learner family (:func:`with_reward_transform`,
called by :func:`marl.build.build`): every fragment's ``Rollout.rewards`` ``[T, B, N]`` is
replaced before ``learner.update`` sees it, so COMA's critics (their TD(lambda) targets,
and through them the advantage) and value decomposition's replay (its ``Q_tot`` targets)
learn from the transformed reward; the episode returns the runner logs, evaluation and
the metric hooks see the env's own. The default row ``none`` builds nothing: the learner
is returned as it was, and every preset runs bit for bit as before.

Rows:

* ``none``: the env's rewards.
* ``simhash``: a count-based novelty bonus on random projections of the centralised state
  (:class:`SimHashBonus`; Tang et al., "#Exploration: A Study of Count-Based Exploration
  for Deep Reinforcement Learning", NeurIPS 2017, Sec. 2.1 "SimHash"), given to every
  agent that acted as an intrinsic team reward and annealed linearly to 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from marl.core.rollout import Rollout
from marl.envs.base import EnvSpec
from marl.schema import ConfigError, check, is_plugin, lookup


@dataclass
class SimHashOptions:
    """Options of ``algo.reward.transform=simhash`` (``algo.reward.simhash.*``)."""

    beta: float = 0.01
    """Bonus scale: the bonus of a state whose code was seen n times is beta / sqrt(n)."""
    bits: int = 32
    """k, bits of each code (the sign of k random Gaussian projections), 1..62."""
    tables: int = 1
    """Independent projections, each with its own counts; the bonus is the mean of
    beta / sqrt(n) over them."""
    anneal_steps: int = 2_000_000
    """Env steps (T x B per fragment) over which the bonus falls linearly to 0; 0 = constant."""
    seed: int = 0
    """Added to the run's seed to draw the projections."""

    def __post_init__(self) -> None:
        check(self.beta >= 0, "algo.reward.simhash.beta", self.beta, "must be >= 0")
        check(1 <= self.bits <= 62, "algo.reward.simhash.bits", self.bits,
              "must be in 1..62 (a code is one int64)")
        check(self.tables >= 1, "algo.reward.simhash.tables", self.tables, "must be >= 1")
        check(self.anneal_steps >= 0, "algo.reward.simhash.anneal_steps", self.anneal_steps,
              "must be >= 0")
        check(self.seed >= 0, "algo.reward.simhash.seed", self.seed, "must be >= 0")


class RewardTransform(NamedTuple):
    """A row of :data:`REWARD_TRANSFORMS`.

    ``build(spec, options, seed)`` returns the transform of one run, or None for the
    env's rewards unchanged (the learner is then not wrapped at all). A transform is
    called once per fragment, ``transform(ro) -> (ro', metrics)``, with ``ro'`` the
    fragment with its rewards replaced and ``metrics`` flat ``{name: float}`` logged as
    ``reward/<name>``; ``state_dict()`` / ``load_state_dict(sd)`` carry whatever it
    learnt (counts) through checkpoints."""

    build: Callable[[EnvSpec, Any, int], Any]
    """``build(spec, options, seed) -> transform | None``."""
    options: type | None = None
    """The row's options dataclass (None: it has none)."""
    options_key: str | None = None
    """The field of :class:`RewardConfig` holding a built-in row's options; a plugin
    row's come from ``algo.reward.plugin``."""


@dataclass
class RewardConfig:
    """``algo.reward``: the reward transform of any learner family and its rows' options."""

    transform: str = "none"
    """A row of marl.algos.rewards.REWARD_TRANSFORMS (none, simhash) or a plugin
    module:attr (a RewardTransform)."""
    simhash: SimHashOptions = field(default_factory=SimHashOptions)
    """Options of transform=simhash."""
    plugin: dict[str, Any] = field(default_factory=dict)
    """A plugin row's options (``+algo.reward.plugin.<name>=...``), checked by its own
    ``options`` dataclass."""

    def __post_init__(self) -> None:
        row = lookup(REWARD_TRANSFORMS, self.transform, "algo.reward.transform")
        if not isinstance(row, RewardTransform):
            raise ConfigError(f"algo.reward.transform = {self.transform!r} is not a "
                              "RewardTransform (marl.algos.rewards)")
        if self.plugin and not is_plugin(self.transform):
            raise ConfigError(f"algo.reward.plugin = {self.plugin!r} is invalid here: it holds "
                              f"a plugin row's options, and algo.reward.transform="
                              f"{self.transform}")
        self.options()  # a plugin row's block is typed and checked now

    def options(self) -> Any:
        """The chosen row's options object (None if it declares none)."""
        row = lookup(REWARD_TRANSFORMS, self.transform, "algo.reward.transform")
        if row.options is None:
            return None
        if row.options_key is not None:
            return getattr(self, row.options_key)
        known = [f.name for f in dataclasses.fields(row.options)]
        for name in self.plugin:
            check(name in known, f"algo.reward.plugin.{name}", self.plugin[name],
                  f"not an option of algo.reward.transform={self.transform}: it has {known}")
        return row.options(**self.plugin)


def next_states(ro: Rollout) -> Tensor:
    """``[T, B, S]``: the centralised state each step led to (the env's final state where
    the episode ended at t, since ``state[t + 1]`` is then the next episode's start)."""
    ended = (ro.terminated | ro.truncated)[..., None]
    return torch.where(ended, ro.final_state, ro.state[1:])


def anneal_fraction(done: int, anneal_steps: int) -> float:
    """``max(0, 1 - done / anneal_steps)``; 1 when ``anneal_steps`` is 0 (no annealing)."""
    return 1.0 if anneal_steps == 0 else max(0.0, 1.0 - done / anneal_steps)


def add_team_bonus(ro: Rollout, bonus: Tensor) -> Rollout:
    """``ro`` with ``bonus`` ``[T, B]`` added to the reward of every agent that acted at t
    (a team reward; what is written for agents that did not act stays as it was)."""
    b = bonus.to(ro.rewards.dtype)[..., None]
    return replace(ro, rewards=torch.where(ro.alive[:-1], ro.rewards + b, ro.rewards))


class RunningMoments:
    """Per-feature mean and variance of every state seen so far (Chan et al.'s parallel
    update, float64): the states are standardised before they are projected, as RND
    standardises its observations (Burda et al., ICLR 2019), so a projection's signs
    split the states that occur, whatever the features' offsets and scales."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def update(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` ``[n, dim]``."""
        k = x.shape[0]
        if k == 0:
            return
        mean_x = x.mean(0)
        delta, total = mean_x - self.mean, self.n + k
        self.m2 = self.m2 + ((x - mean_x) ** 2).sum(0) + delta ** 2 * self.n * k / total
        self.mean = self.mean + delta * k / total
        self.n = total

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std``; a feature that never varied maps to 0."""
        std = np.sqrt(self.m2 / max(self.n, 1))
        return (x - self.mean) / np.where(std > 0, std, 1.0)


def simhash_codes(z: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """``[n]`` int64 codes: bit j is ``sign(proj[j] . z) > 0`` (Tang et al.'s
    ``phi(s) = sgn(A g(s))``), for ``z`` ``[n, D]`` and ``proj`` ``[k, D]``."""
    bits = (z @ proj.T) > 0  # [n, k]
    return (bits.astype(np.int64) << np.arange(proj.shape[0], dtype=np.int64)).sum(1)


class CodeCounts:
    """How often each code has been seen: sorted code and count arrays."""

    def __init__(self) -> None:
        self.codes = np.zeros(0, np.int64)
        self.counts = np.zeros(0, np.int64)

    def add(self, codes: np.ndarray) -> np.ndarray:
        """Count ``codes`` ``[n]`` in, then return each one's count (these included).
        Codes seen before are incremented in place; new ones are inserted in order."""
        new, k = np.unique(codes, return_counts=True)
        at = np.searchsorted(self.codes, new)
        seen = np.zeros(len(new), bool)
        if len(self.codes):
            seen = self.codes[np.minimum(at, len(self.codes) - 1)] == new
        self.counts[at[seen]] += k[seen]
        self.codes = np.insert(self.codes, at[~seen], new[~seen])
        self.counts = np.insert(self.counts, at[~seen], k[~seen])
        return self.counts[np.searchsorted(self.codes, codes)]


class SimHashBonus:
    """Count-based novelty of the centralised state (Tang et al., NeurIPS 2017: SimHash).

    Per fragment: the states the steps led to (:func:`next_states`) are standardised by
    the running moments of every state seen (this fragment's included), hashed by each of
    ``tables`` fixed random Gaussian projections ``A`` (``[k, S]``, entries N(0, 1),
    drawn once from the run's seed) to ``k``-bit codes ``sgn(A z)``, and counted; the
    step's bonus is ``beta * f * mean_tables n(code)^(-1/2)`` with n counting this
    fragment's states too (a state keeps the code it was counted under while the moments
    settle), and ``f = max(0, 1 - env_steps / anneal_steps)`` the linear
    anneal over the env steps before the fragment. The bonus is added on-policy to the
    reward of every agent that acted (:func:`add_team_bonus`), so the critic's targets
    see it. Which features matter is the projections' doing: no feature is picked by
    hand, and the same settings run on every env."""

    def __init__(self, spec: EnvSpec, opts: SimHashOptions, seed: int):
        self.opts = opts
        rng = np.random.default_rng([seed, opts.seed, 0x51AA])
        self.proj = [rng.standard_normal((opts.bits, spec.state_dim)) for _ in range(opts.tables)]
        self.moments = RunningMoments(spec.state_dim)
        self.tables = [CodeCounts() for _ in range(opts.tables)]
        self.env_steps = 0

    def bonus(self, states: np.ndarray) -> np.ndarray:
        """``[n]`` bonus of ``states`` ``[n, S]`` (counted in), before the anneal."""
        self.moments.update(states)
        z = self.moments.standardise(states)
        inv_sqrt = [1.0 / np.sqrt(t.add(simhash_codes(z, p)))
                    for p, t in zip(self.proj, self.tables, strict=True)]
        return self.opts.beta * np.mean(inv_sqrt, axis=0)

    def __call__(self, ro: Rollout) -> tuple[Rollout, dict[str, float]]:
        t_len, b = ro.actions.shape[:2]
        frac = anneal_fraction(self.env_steps, self.opts.anneal_steps)
        self.env_steps += t_len * b
        acted = ro.alive[:-1].any(-1).reshape(-1).cpu().numpy()  # [T*B] steps someone played
        states = next_states(ro).reshape(t_len * b, -1).double().cpu().numpy()
        out = np.zeros(t_len * b)
        out[acted] = frac * self.bonus(states[acted])
        bonus = torch.from_numpy(out).reshape(t_len, b).to(ro.rewards.device)
        return add_team_bonus(ro, bonus), {
            "bonus_mean": float(out[acted].mean()) if acted.any() else 0.0,
            "anneal": frac, "codes": float(np.mean([len(t.codes) for t in self.tables]))}

    def state_dict(self) -> dict[str, Any]:
        m = self.moments
        return {"env_steps": self.env_steps, "n": m.n, "mean": m.mean.copy(),
                "m2": m.m2.copy(), "codes": [t.codes.copy() for t in self.tables],
                "counts": [t.counts.copy() for t in self.tables]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.env_steps = int(sd["env_steps"])
        self.moments.n, self.moments.mean, self.moments.m2 = int(sd["n"]), sd["mean"], sd["m2"]
        for t, codes, counts in zip(self.tables, sd["codes"], sd["counts"], strict=True):
            t.codes, t.counts = np.asarray(codes), np.asarray(counts)


class TransformStats(NamedTuple):
    """A wrapped learner's update statistics: the learner's own and the transform's
    metrics. Attribute reads fall through to the learner's (a metric hook reading
    ``event.stats.pi`` works as without a transform)."""

    inner: Any
    """The wrapped learner's own update statistics (``learner.update(ro)``)."""
    reward: dict[str, float]
    """The transform's metrics on the fragment, ``{name: float}``, logged as
    ``reward/<name>``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RewardTransformed:
    """A learner whose every fragment's rewards pass through a transform first. Keeps the
    :class:`marl.algos.base.Learner` protocol; the transform's state rides in the
    checkpoint's learner state under ``reward_transform``; anything else is the
    learner's (``wrapped.critics`` is ``learner.critics``)."""

    def __init__(self, learner: Any, transform: Any):
        self.learner, self.transform = learner, transform

    def __getattr__(self, name: str) -> Any:
        if name in ("learner", "transform"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.learner, name)

    def update(self, ro: Rollout) -> TransformStats:
        ro, metrics = self.transform(ro)
        return TransformStats(self.learner.update(ro), metrics)

    def state_dict_full(self) -> dict[str, Any]:
        return {**self.learner.state_dict_full(), "reward_transform": self.transform.state_dict()}

    def load_state_dict_full(self, sd: dict[str, Any]) -> None:
        sd = dict(sd)
        own = sd.pop("reward_transform", None)
        self.learner.load_state_dict_full(sd)
        if own is not None:  # a checkpoint written without the transform starts it afresh
            self.transform.load_state_dict(own)


def with_reward_transform(learner: Any, spec: EnvSpec, algo: Any, seed: int) -> Any:
    """``learner`` wrapped in the transform ``algo.reward`` chooses, or ``learner`` itself
    when the row builds none (``none``)."""
    cfg = getattr(algo, "reward", None) or RewardConfig()
    row = lookup(REWARD_TRANSFORMS, cfg.transform, "algo.reward.transform")
    transform = row.build(spec, cfg.options(), seed)
    return learner if transform is None else RewardTransformed(learner, transform)


def with_reward_metrics(metrics: Callable[[Any, EnvSpec], dict[str, float]], algo: Any
                        ) -> Callable[[Any, EnvSpec], dict[str, float]]:
    """A family's metrics function that also reads :class:`TransformStats` (the
    transform's metrics as ``reward/<name>``); other statistics go through unchanged.
    ``metrics`` itself under ``none``, whose learner :func:`with_reward_transform` leaves
    unwrapped."""
    cfg = getattr(algo, "reward", None) or RewardConfig()
    if lookup(REWARD_TRANSFORMS, cfg.transform, "algo.reward.transform") is \
            REWARD_TRANSFORMS["none"]:
        return metrics

    def fn(stats: Any, spec: EnvSpec) -> dict[str, float]:
        if not isinstance(stats, TransformStats):
            return metrics(stats, spec)
        return {**metrics(stats.inner, spec),
                **{f"reward/{k}": v for k, v in stats.reward.items()}}
    return fn


REWARD_TRANSFORMS: dict[str, RewardTransform] = {
    "none": RewardTransform(build=lambda spec, options, seed: None),
    "simhash": RewardTransform(build=SimHashBonus, options=SimHashOptions,
                               options_key="simhash"),
}
"""``algo.reward.transform`` -> its row."""
