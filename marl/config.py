"""Typed configuration: the root config and its common blocks (train, logger,
checkpoint), one dataclass per component, registered in Hydra's ConfigStore.

The values live in ``conf/`` (YAML); these classes are the schema. This module imports
no env: the env schemas (``env`` group) are registered in Hydra's ConfigStore by the
entry points, through :func:`marl.build.register_configs`. Hydra merges the YAML into
them, so a misspelt key or a wrong type fails at start with the key's full name.

The ``algo`` node is typed by its learner family (``algo.learner``, a row of
:data:`marl.algos.LEARNERS`): each family has its own dataclass, the common block
:class:`marl.algos.base.AlgoCommon` plus its own fields, so a QMIX run's config holds
what QMIX reads and nothing else (:func:`algo_config`). Ranges are checked in
``__post_init__``, which runs when :func:`to_config` turns the composed DictConfig into
these objects -- before anything is written to disk.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from marl.algos import LEARNERS, learner_family
from marl.algos.base import AlgoCommon
from marl.core.device import check_device_name
from marl.io.plots import PLOTS
from marl.io.sinks import SINKS
from marl.reference import ReferenceConfig
from marl.schema import ConfigError, add_plugin_path, check, lookup

__all__ = ["Config", "ConfigError", "check", "to_config"]


INT64_MAX = 2**63 - 1
"""The largest env-step count (counters are int64 tensors and numpy ints)."""


@dataclass
class TrainConfig:
    """Rollout shape, run length and the cadence of evaluation, logging, checkpoints."""

    num_envs: int = 64
    """B, parallel training envs."""
    fragment_len: int = 20
    """T, steps per env per rollout fragment (one learner update per fragment)."""
    total_env_steps: int = 2_000_000
    """Stop after this many env steps (B per vectorised step)."""
    eval_every_env_steps: int = 250_000
    """Greedy evaluation cadence; 0 = only at the end."""
    eval_episodes: int = 200
    """Episodes per evaluation (one per eval env)."""
    log_every_env_steps: int = 20_000
    """Metrics cadence (metrics.jsonl, W&B, progress bar)."""
    torch_threads: int = 1
    """torch intra-op threads. 1: acting and learning alternate on one core, and a
    second OpenMP thread busy-waits against env stepping and other jobs (measured
    10x slower when the other core is busy)."""
    eval_video: bool = False
    """Record one greedy episode at every evaluation (videos/eval_<env_steps>.gif)."""
    video_max_frames: int = 300
    """Longest recorded episode, in frames."""
    video_fps: int = 8
    """Frames per second of recorded GIFs."""

    def __post_init__(self) -> None:
        for k in ("num_envs", "fragment_len", "total_env_steps", "eval_episodes",
                  "log_every_env_steps", "torch_threads"):
            check(getattr(self, k) >= 1, f"train.{k}", getattr(self, k), "must be >= 1")
        check(self.video_max_frames >= 1, "train.video_max_frames", self.video_max_frames,
              "must be >= 1")
        check(self.video_fps >= 1, "train.video_fps", self.video_fps, "must be >= 1")
        for k in ("total_env_steps", "eval_every_env_steps", "log_every_env_steps"):
            check(getattr(self, k) <= INT64_MAX, f"train.{k}", getattr(self, k),
                  "must be at most 2**63 - 1 (env steps are counted in int64)")
        check(self.eval_every_env_steps >= 0, "train.eval_every_env_steps",
              self.eval_every_env_steps, "must be >= 0")


@dataclass
class CheckpointConfig:
    """Checkpoints: full training state, written atomically, the last ``keep`` kept."""

    every_env_steps: int = 500_000
    """Checkpoint cadence in env steps; 0 = only at the end (and on a stop signal)."""
    keep: int = 3
    """How many recent checkpoints to keep."""
    strict: bool = False
    """Resume: a corrupt newest checkpoint is an error (false: fall back to the newest
    intact one, naming the one skipped)."""
    allow_unverified: bool = False
    """Load checkpoints without a header line (marl 0.1's format 1: no checksum), for
    resume and init_from; false refuses them with one line."""

    def __post_init__(self) -> None:
        check(self.every_env_steps >= 0, "checkpoint.every_env_steps", self.every_env_steps,
              "must be >= 0")
        check(self.keep >= 1, "checkpoint.keep", self.keep, "must be >= 1")


@dataclass
class WandbConfig:
    """Weights & Biases logging."""

    mode: str = "auto"
    """auto (online if WANDB_API_KEY is set, else offline), online, offline or disabled."""
    project: str = "marl"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user); null = the default of the key."""
    group: str | None = None
    """Run group; null = the experiment name."""
    tags: list[str] = field(default_factory=list)
    """Extra tags."""

    def __post_init__(self) -> None:
        check(self.mode in ("auto", "online", "offline", "disabled"), "logger.wandb.mode",
              self.mode, "choose auto, online, offline or disabled")


@dataclass
class LoggerConfig:
    """Where metrics go: progress bar, metrics.jsonl (always), the chosen backends."""

    backends: list[str] = field(default_factory=lambda: ["wandb"])
    """Sinks besides metrics.jsonl (marl.io.sinks.SINKS): wandb, tensorboard
    (``tensorboard/``, the tensorboard extra), csv (``metrics.csv``), or a plugin
    ``module:attr``."""
    progress: bool = True
    """Show a progress bar on stderr."""
    plots: list[str] = field(default_factory=lambda: ["learning_curve"])
    """PNG plots drawn at the end into plots/ (and logged to W&B): learning_curve,
    action_probs."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""
    metrics: list[str] = field(default_factory=list)
    """Metric hooks, each a plugin ``module:attr``: ``hook(event) -> {name: float}``,
    called after every update and at every evaluation, merged into the rows under the
    hook's namespace (marl.io.rows; docs/extending.md, "A new metric")."""

    def __post_init__(self) -> None:
        for p in self.plots:
            check(p in PLOTS, "logger.plots", p, f"choose from {list(PLOTS)}")
        for name in self.backends:
            row = lookup(SINKS, name, "logger.backends")
            getattr(row, "check", lambda: None)()


@dataclass
class Config:
    """A complete run: the root of the composed Hydra config."""

    env: Any = None
    """Environment (a group: conf/env/*.yaml, typed by its own schema)."""
    algo: Any = None
    """Learner: a group (conf/algo/*.yaml), typed by its family's schema
    (``algo.learner``, a row of marl.algos.LEARNERS)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Rollout shape and run cadence."""
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    """Logging."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence and retention."""
    name: str = "run"
    """Experiment name (set by +experiment=...), used for output dirs and W&B groups."""
    seed: int = 0
    """Seed of everything (envs, torch, numpy)."""
    device: str = "auto"
    """Where networks, buffers and updates live: auto (CUDA where available), cpu, cuda,
    cuda:<index> (marl.core.device; the envs stay on the CPU). Unmeasured on a GPU."""
    resume: bool = False
    """Continue from the newest checkpoint in the run directory (hydra.run.dir=<it>);
    with none there, start from scratch (and say so)."""
    init_from: str | None = None
    """Start from the networks of another run (a checkpoint file or a run directory,
    newest checkpoint): fine-tuning and curricula. Optimisers and counters start fresh."""
    requires: list[str] = field(default_factory=list)
    """Keys an experiment needs set on the command line (e.g. [init_from])."""
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    """The code whose settings a reference preset claims (conf/reference/; marl.reference):
    a run that moves one of them says so and records ``reference_deviations``."""
    plugin_path: list[str] = field(default_factory=list)
    """Directories put on sys.path before plugins (``module:attr`` table entries) import;
    relative ones are taken from the directory the run was launched in (Hydra's
    ``hydra.runtime.cwd``), so resume, evaluation and sweep workers import the same."""

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        check_device_name(self.device)
        for key in self.requires:
            value: Any = self
            for part in key.split("."):
                value = getattr(value, part, None)
            check(value is not None, key, value,
                  f"experiment {self.name} needs it: add {key}=<value> to the command")


def _explicit_algo_keys(overrides: list[str] | None) -> set[str]:
    """The ``algo.<field>[.<sub>]`` keys set on the command line, without ``algo.``
    (``overrides``, or Hydra's own task overrides inside ``hydra.main``)."""
    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    keys = set()
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key.startswith("algo."):
            keys.add(key.split(".", 1)[1])
    return keys


def upgrade_legacy_algo(raw: dict[str, Any]) -> dict[str, Any]:
    """An ``algo`` mapping as marl 0.1 wrote it (one flat schema for every learner: no
    ``learner`` field, ``vd: null`` for COMA, ``shared_torso`` a flag) -> today's, so old
    run directories still evaluate and resume. Today's mappings pass unchanged."""
    if "learner" in raw or not ({"vd", "shared_torso"} & set(raw)):
        return raw
    raw = dict(raw)
    vd, shared = raw.pop("vd", None), raw.pop("shared_torso", False)
    if vd is not None:  # the value-decomposition learner
        return {**raw, "learner": "vd", "vd": vd}
    if shared:
        raw["critic_update"] = "shared_torso"
    return {**raw, "learner": "coma"}


def rewrite_deprecated(overrides: list[str], quiet: bool = False) -> list[str]:
    """Command-line overrides with every family's old option names (``FLAT_NAMES``:
    ``algo.clip=0.1``) at their places today (``algo.ppo.clip=0.1``), each with a one-line
    deprecation note on stderr unless ``quiet``. Flags and other keys pass unchanged."""
    names = {old: new for row in LEARNERS.values()
             for old, new in getattr(row.config, "FLAT_NAMES", {}).items()}
    out = []
    for o in overrides:
        key, eq, value = o.partition("=")
        prefix, bare = key[:len(key) - len(key.lstrip("+~"))], key.lstrip("+~")
        old = bare[5:] if bare.startswith("algo.") else None
        if eq and old in names:
            if not quiet:
                print(f"note: algo.{old} is deprecated: write algo.{names[old]}",
                      file=sys.stderr)
            o = f"{prefix}algo.{names[old]}={value}"
        out.append(o)
    return out


def upgrade_flat_config(flat: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's flat ``{"algo.clip": 0.2}`` config with every family's old option
    names (``FLAT_NAMES`` of its config class) at their places today
    (``algo.ppo.clip``), so a run written before the move still resumes."""
    out = dict(flat)
    for row in LEARNERS.values():
        for old, new in getattr(row.config, "FLAT_NAMES", {}).items():
            if f"algo.{old}" in out and f"algo.{new}" not in out:
                out[f"algo.{new}"] = out.pop(f"algo.{old}")
    return out


def family_of(field_name: str) -> str | None:
    """The first row of :data:`marl.algos.LEARNERS` whose schema has ``field_name``."""
    for name, row in LEARNERS.items():
        if field_name in {f.name for f in dataclasses.fields(row.config)}:
            return name
    return None


def algo_config(raw: dict[str, Any], explicit: set[str]) -> AlgoCommon:
    """The composed ``algo`` mapping -> its family's config dataclass.

    The family is ``algo.learner``. A field of another family is dropped when a preset
    or an algo file set it (``+experiment=coma_smax_3m algo=qmix`` keeps working), and
    refused when the command line did (``explicit``): it would silently do nothing. A
    field no family knows is refused (a misspelt key)."""
    raw = upgrade_legacy_algo(raw)
    family = learner_family(raw.get("learner", "coma"))
    upgrade = getattr(family.config, "upgrade_raw", None)  # the family's own layout moves
    if upgrade is not None:
        raw = upgrade(raw, explicit)
    explicit = {k.split(".")[0] for k in explicit}
    mine = {f.name for f in dataclasses.fields(family.config)}
    others = {k: name for name, row in LEARNERS.items()
              for k in [f.name for f in dataclasses.fields(row.config)]
              + list(getattr(row.config, "FLAT_NAMES", {})) if k not in mine}
    kept = {}
    for k, v in raw.items():
        if k in mine:
            kept[k] = v
        elif k not in others:
            raise ConfigError(f"algo.{k} is not a field of any learner family: "
                              f"algo.learner={raw.get('learner', 'coma')} reads {sorted(mine)}")
        elif k in explicit:
            raise ConfigError(f"algo.{k} belongs to the {others[k]!r} learner family, not to "
                              f"algo.learner={raw.get('learner', 'coma')}: drop it")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(family.config), kept))
    except Exception as e:  # OmegaConf wraps errors raised in __post_init__
        raise _config_error(e) from e


def _config_error(e: Exception) -> Exception:
    cause = e
    while cause.__cause__ is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__
    if isinstance(cause, (ConfigError, ValueError)):
        return ConfigError(str(cause).splitlines()[0])
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ConfigError(msg)


def launch_dir() -> str:
    """The directory the run was launched in: Hydra's ``hydra.runtime.cwd`` inside
    ``hydra.main`` (a sweep worker's too), else the current directory."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()


def to_config(cfg: DictConfig, overrides: list[str] | None = None,
              base_dir: str | None = None) -> Config:
    """Composed DictConfig -> validated :class:`Config` (runs every ``__post_init__``).
    ``overrides``: the command line's, to tell a field set there from a preset's (see
    :func:`algo_config`); by default Hydra's own when inside ``hydra.main``.
    ``base_dir``: where relative ``plugin_path`` entries start (default
    :func:`launch_dir`; an evaluation of a finished run passes the run's own)."""
    if cfg.get("env") is None:
        raise ConfigError("no env selected: add env=<name> (a file of conf/env/)")
    base = launch_dir() if base_dir is None else base_dir
    add_plugin_path(os.path.join(base, p) for p in cfg.get("plugin_path") or [])
    raw_algo = OmegaConf.to_container(cfg.algo, resolve=True) if cfg.get("algo") else {}
    algo = algo_config(raw_algo, _explicit_algo_keys(overrides))
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as e:  # OmegaConf wraps errors raised in __post_init__
        raise _config_error(e) from e
    if not is_dataclass(obj.env):
        raise ConfigError(f"env config {obj.env!r} has no schema: its YAML must start with "
                          "defaults: [<name>_schema] (see marl.envs.ENV_CONFIGS)")
    obj.algo = algo
    algo.check_with(obj.train)
    return obj
