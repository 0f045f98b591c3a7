"""Greedy evaluation of a finished (or running) run from its newest checkpoint.

``python -m marl.evaluate run_dir=<dir> [episodes=100] [video=true] [key=value ...]``

Keys (Hydra-style ``key=value``, any order):

* ``run_dir`` (required): a run directory left by ``marl.train`` (``.hydra/config.yaml``
  and ``checkpoints/``);
* ``episodes`` (100): greedy episodes, one per env, as in training's evaluation;
* ``video`` (false): also record one greedy episode as a GIF (envs that can render);
* ``checkpoint`` (newest): a checkpoint file to load instead of the newest one;
* ``seed`` (the run's seed + 3000017): seed of the evaluation envs;
* ``max_frames`` (the run's ``train.video_max_frames``), ``fps`` (``train.video_fps``).

It rebuilds the run's env and learner from the run's own composed config, loads the
learner's networks (from ``state["learner"]``), runs :func:`marl.core.runner.evaluate` greedily and
writes ``eval_<env_steps>.json`` into the run directory (the same ``eval/...`` metrics
as training's evaluation, plus the checkpoint, episodes, seed), and with ``video=true``
``videos/evaluate_<env_steps>.gif``. The last line printed names the JSON file.

It holds the run directory's lock while it runs (see :mod:`marl.io.rundir`): a run
still training there, or another evaluation, makes it stop at once naming the holder. A
corrupt newest checkpoint is named and skipped for the newest intact one.

Exit status 0; 2 for a bad argument, a missing run directory, a directory in use, no
checkpoint, or a corrupt or mismatched checkpoint; 1 for a full disk (one ``error: ...``
line on stderr, no traceback).
"""

from __future__ import annotations

import errno
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from marl.algos.coma.learner import Learner
from marl.build import build
from marl.config import Config, ConfigError, to_config
from marl.core.runner import evaluate
from marl.envs import ENV_CONFIGS
from marl.io.checkpoint import CheckpointError, load_checkpoint, load_newest
from marl.io.errors import DiskFullError
from marl.io.files import write_json_atomic
from marl.io.metrics import summarise_episodes
from marl.io.provenance import check_run_format
from marl.io.resume import edited_keys
from marl.io.rundir import RunDir, RunDirError
from marl.io.video import record_gif, video_env

USAGE = ("usage: python -m marl.evaluate run_dir=<dir> [episodes=100] [video=true] "
         "[checkpoint=<file>] [seed=<int>] [max_frames=<int>] [fps=<int>] "
         "[checkpoint.allow_unverified=true]")


class EvaluateError(RuntimeError):
    """Why a run cannot be evaluated (printed as one line, exit status 2)."""


@dataclass
class EvalArgs:
    """The ``key=value`` arguments of ``python -m marl.evaluate``, parsed
    (:func:`parse_args`; the module docstring lists the keys)."""

    run_dir: Path  # the run directory of marl.train to evaluate (required)
    episodes: int = 100  # greedy episodes, one per evaluation env; >= 1
    video: bool = False  # also record one greedy episode, videos/evaluate_<env_steps>.gif
    checkpoint: Path | None = None  # the checkpoint file to load; None: the newest intact one
    seed: int | None = None  # the evaluation envs' seed; None: the run's seed + 3000017
    max_frames: int | None = None  # the GIF's frame cap; None: train.video_max_frames
    fps: int | None = None  # the GIF's frame rate; None: train.video_fps
    allow_unverified: bool = False  # checkpoint.allow_unverified: load a headerless (format 1) file


def _as_bool(key: str, v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise EvaluateError(f"{key}={v!r} is invalid: use true or false")


def _as_int(key: str, v: str, low: int) -> int:
    try:
        x = int(v)
    except ValueError:
        x = low - 1
    if x < low:
        raise EvaluateError(f"{key}={v!r} is invalid: must be an int >= {low}")
    return x


def parse_args(argv: list[str]) -> EvalArgs:
    """``key=value`` arguments -> :class:`EvalArgs` (EvaluateError on anything wrong)."""
    kv: dict[str, str] = {}
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise EvaluateError(f"argument {a!r} is not key=value\n{USAGE}")
        kv[key.lstrip("+")] = value
    known = {"run_dir", "episodes", "video", "checkpoint", "seed", "max_frames", "fps",
             "checkpoint.allow_unverified"}
    unknown = sorted(set(kv) - known)
    if unknown:
        raise EvaluateError(f"unknown key(s) {unknown}: choose from {sorted(known)}\n{USAGE}")
    if not kv.get("run_dir"):
        raise EvaluateError(f"run_dir is required\n{USAGE}")
    return EvalArgs(
        run_dir=Path(kv["run_dir"]).expanduser(),
        episodes=_as_int("episodes", kv.get("episodes", "100"), 1),
        video=_as_bool("video", kv.get("video", "false")),
        checkpoint=Path(kv["checkpoint"]).expanduser() if kv.get("checkpoint") else None,
        seed=_as_int("seed", kv["seed"], 0) if "seed" in kv else None,
        max_frames=_as_int("max_frames", kv["max_frames"], 1) if "max_frames" in kv else None,
        fps=_as_int("fps", kv["fps"], 1) if "fps" in kv else None,
        allow_unverified=_as_bool("checkpoint.allow_unverified",
                                  kv.get("checkpoint.allow_unverified", "false")),
    )


def load_run_config(run_dir: Path) -> Config:
    """The run's composed config (``.hydra/config.yaml``), typed and validated."""
    if not run_dir.is_dir():
        raise EvaluateError(f"run directory {run_dir} does not exist")
    try:
        check_run_format(run_dir)
    except ValueError as e:
        raise EvaluateError(str(e)) from e
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise EvaluateError(f"{run_dir} is not a run directory of marl.train: no {path.name} "
                            "in .hydra/")
    raw = OmegaConf.load(path)
    env_name = OmegaConf.select(raw, "env.name")
    if env_name not in ENV_CONFIGS:
        raise EvaluateError(f"{path}: env.name={env_name!r} is not one of {sorted(ENV_CONFIGS)}")
    schema = OmegaConf.structured(Config)
    schema.env = OmegaConf.structured(ENV_CONFIGS[env_name])
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"  # where the run was launched from:
    launched = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd") \
        if hydra_yaml.is_file() else None  # relative plugin_path entries start there
    try:
        return to_config(OmegaConf.merge(schema, raw), overrides=[], base_dir=launched)
    except (ConfigError, ValueError, TypeError) as e:  # OmegaConf's errors are ValueErrors
        raise EvaluateError(f"{path} does not fit this version of marl: "
                            f"{str(e).splitlines()[0]}") from e


def writable(run_dir: Path) -> bool:
    """False for a run directory on a read-only filesystem or without write access (an
    archived run): it is evaluated, and nothing is written into it."""
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            return True
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return False
        raise


def run(args: EvalArgs) -> dict[str, Any]:
    """Evaluate, holding the run directory's lock (it writes into it); returns the
    summary written to ``eval_<env_steps>.json``. A read-only run directory is evaluated
    without a lock and without writing (``path`` None in the summary)."""
    cfg = load_run_config(args.run_dir)
    ckpt, state = _checkpoint(args)
    differs = edited_keys(cfg, state["config"]) if state.get("config") else ""
    if differs:  # e.g. a refused sweep job's .hydra/ rewritten with other values
        raise EvaluateError(f"{args.run_dir / '.hydra' / 'config.yaml'} does not match the "
                            f"config stored in checkpoint {ckpt.name} ({differs}): the run "
                            "directory's config was changed after the run; evaluate with "
                            "checkpoint=<a checkpoint of this config> or restore the file")
    if not writable(args.run_dir):
        return _run(cfg, args, None, ckpt, state)
    rd = RunDir(args.run_dir.absolute(), [])
    try:
        rd.lock(announce=False)
    except RunDirError as e:
        raise EvaluateError(str(e)) from e
    try:
        return _run(cfg, args, rd, ckpt, state)
    finally:
        rd.release()


def _checkpoint(args: EvalArgs) -> tuple[Path, dict[str, Any]]:
    """The checkpoint asked for, or the newest intact one (a broken newer one is named
    and skipped)."""
    try:
        if args.checkpoint is not None:
            return args.checkpoint, load_checkpoint(args.checkpoint, args.allow_unverified)
        found = load_newest(args.run_dir / "checkpoints", allow_unverified=args.allow_unverified)
    except CheckpointError as e:
        raise EvaluateError(str(e)) from e
    if found is None:
        raise EvaluateError(f"no checkpoint in {args.run_dir / 'checkpoints'}: the run has "
                            "not written one yet")
    return found


def _run(cfg: Config, args: EvalArgs, rd: RunDir | None, ckpt: Path,
         state: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(cfg.train.torch_threads)
    seed = cfg.seed + 3_000_017 if args.seed is None else args.seed
    torch.manual_seed(seed)
    env, learner, _ = build(cfg, args.episodes, seed=seed)
    try:  # networks only: a replay buffer (value decomposition) is laid out per train env
        learner.load_networks(state["learner"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise EvaluateError(f"checkpoint {ckpt} does not fit the run's config "
                            f"({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if rd is not None:
        rd.announce()
    env_steps = int(state.get("env_steps", 0))
    t0 = time.perf_counter()
    stats = evaluate(env, learner.policy, learner.policy.hidden_dim, seed=seed, greedy=True)
    summary = _summary(cfg, args, ckpt, env_steps, seed, time.perf_counter() - t0,
                       summarise_episodes("eval", stats, env.spec))
    if rd is None:  # read-only: the summary goes to stdout only
        summary["path"] = None
        return summary
    if args.video:
        summary["video"] = _record(cfg, learner, args, seed, env_steps)
    out = args.run_dir / f"eval_{env_steps:012d}.json"
    write_json_atomic(out, summary)
    summary["path"] = str(out)
    return summary


def _summary(cfg: Config, args: EvalArgs, ckpt: Path, env_steps: int, seed: int,
             seconds: float, metrics: dict[str, float]) -> dict[str, Any]:
    """What ``eval_<env_steps>.json`` records (``video`` filled in by the caller)."""
    return {
        "run_dir": str(args.run_dir), "checkpoint": str(ckpt), "env_steps": env_steps,
        "episodes": args.episodes, "seed": seed, "greedy": True,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "eval_time_s": seconds,
        "name": cfg.name, "algo": cfg.algo.name, "env": getattr(cfg.env, "name", None),
        **metrics, "video": None,
    }


def _record(cfg: Config, learner: Learner, args: EvalArgs, seed: int,
            env_steps: int) -> str | None:
    env = video_env(cfg, seed + 1)
    if env is None:
        return None
    return str(record_gif(env, learner.policy, args.run_dir, "evaluate", env_steps,
                          args.max_frames or cfg.train.video_max_frames,
                          args.fps or cfg.train.video_fps, seed + 1))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        summary = run(parse_args(argv))
    except EvaluateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DiskFullError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shown = {k: summary[k] for k in ("env_steps", "episodes", "eval/return_mean",
                                     "eval/success_rate", "video") if k in summary}
    print(json.dumps(shown))
    print(f"evaluation: {summary['path'] or 'not written (the run directory is read-only)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
