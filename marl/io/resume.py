"""What a resumed run may change: the config diff between a run and its checkpoint."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch

from marl.config import Config, upgrade_flat_config

# Config keys a resumed run may change; any other difference means another experiment.
RESUME_MAY_CHANGE = ("train.total_env_steps", "train.eval_video", "train.video_max_frames",
                     "train.video_fps", "train.log_every_env_steps", "logger.", "checkpoint.",
                     "resume", "device")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_dict(cfg: Config) -> dict[str, Any]:
    """The config as a flat ``{"a.b": value}`` dict (what a checkpoint stores)."""
    return _flatten(dataclasses.asdict(cfg))


def _schema_defaults(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Flattened defaults of the config schema: a key a checkpoint predates (a field added
    since) may resume when this run leaves it at its default, which keeps the old
    behaviour."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f"{prefix}{f.name}"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                out.update(_schema_defaults(type(value), f"{prefix}{f.name}."))
            else:
                out[f"{prefix}{f.name}"] = value
    return out


def config_diff(mine: dict[str, Any], theirs: dict[str, Any], env_schema: type | None = None,
                algo_schema: type | None = None) -> list[str]:
    """Keys whose values differ between this run's config and a checkpoint's, leaving out
    those a resume may change and those the checkpoint predates at their default
    (``env.*`` and ``algo.*`` ones too when ``env_schema`` and ``algo_schema``, the env's
    and the learner family's config dataclasses, are given)."""
    defaults = _schema_defaults()
    for schema, prefix in ((env_schema, "env."), (algo_schema, "algo.")):
        if dataclasses.is_dataclass(schema):  # False for None
            defaults.update(_schema_defaults(schema, prefix))
    return sorted(k for k in set(mine) | set(theirs)
                  if mine.get(k) != theirs.get(k)
                  and not any(k == p or k.startswith(p) for p in RESUME_MAY_CHANGE)
                  and not (k not in theirs and k in defaults and mine[k] == defaults[k]))


def experiment_diff(cfg: Config, theirs: dict[str, Any]) -> str:
    """"key: theirs -> mine, ..." (at most 6) of what makes a checkpoint's config
    ``theirs`` (any older layout, upgraded first) another experiment than ``cfg``; ""
    when it is the same one."""
    mine = config_dict(cfg)
    theirs = upgrade_flat_config(theirs)
    diff = config_diff(mine, theirs, type(cfg.env), type(cfg.algo))
    return ", ".join(f"{k}: {theirs.get(k)!r} -> {mine.get(k)!r}" for k in diff[:6])


def edited_keys(cfg: Config, theirs: dict[str, Any]) -> str:
    """"key: theirs -> mine, ..." (at most 6) of the keys both ``cfg`` and a checkpoint's
    config ``theirs`` (upgraded first) hold, with other values: a run directory's config
    edited after the run. A key only one side has is a layout change, not an edit (a run
    of an older layout keeps the keys its family had then)."""
    mine, theirs = config_dict(cfg), upgrade_flat_config(theirs)
    diff = [k for k in sorted(set(mine) & set(theirs)) if mine[k] != theirs[k]
            and not any(k == p or k.startswith(p) for p in RESUME_MAY_CHANGE)]
    return ", ".join(f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in diff[:6])


def check_same_experiment(cfg: Config, theirs: dict[str, Any], where: str) -> None:
    """ValueError naming the differing keys if checkpoint ``where`` (config ``theirs``)
    is from another experiment than ``cfg``."""
    shown = experiment_diff(cfg, theirs)
    if shown:
        raise ValueError(f"checkpoint {where} is from a different configuration ({shown}); "
                         f"resume only changes {', '.join(RESUME_MAY_CHANGE)}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(eval_rng: np.random.Generator) -> dict[str, Any]:
    """Every random generator's state (python, numpy, torch, the evaluation one)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "eval": eval_rng.bit_generator.state}


def set_rng_state(rng: dict[str, Any], eval_rng: np.random.Generator) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    eval_rng.bit_generator.state = rng["eval"]
