#!/usr/bin/env python
"""Every preset's metrics rows, recorded once and checked exactly after a change.

``record`` runs each preset of ``conf/experiment/`` for 3 fragments at seed 3 (a row per
fragment, one greedy evaluation of a few episodes at the end) and stores its
``metrics.jsonl`` rows under ``tests/data/exact_rows/<preset>.json``; ``check`` runs them
again and compares every key but ``perf/*`` (wall-clock figures) exactly: a refactor
that claims to change no result proves it here. The presets left out of the runs, and
why, are in :data:`SKIPPED`. Every preset, those included, also has its composed config
(flat, as a checkpoint stores it) recorded in ``configs.json`` and checked after
:func:`marl.config.upgrade_flat_config`: a moved option must land at its old value.

    python tools/exact_rows.py record [preset ...]
    python tools/exact_rows.py check [preset ...]      # exit 1 on the first difference
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "exact_rows"
FRAGMENTS = 3
SEED = 3

SKIPPED = {
    "coma_pong": "Pong from pixels: 3 fragments of the preset's shape take minutes",
    "reinforce_pong": "Pong from pixels: 3 fragments of the preset's shape take minutes",
    "ppo_pong": "Pong from pixels: 3 fragments of the preset's shape take minutes",
    "coma_coop_pong": "butterfly pixels: 3 fragments of the preset's shape take minutes",
}
"""Presets the check does not run, with the reason."""

NEEDS = {"coma_boxpush_strict_curriculum": "coma_boxpush"}
"""Presets that fine-tune another preset's run (``init_from``): run after it."""


def presets() -> list[str]:
    names = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    return [n for n in names if n not in SKIPPED]


def composed(preset: str) -> dict:
    """The preset's ``train`` block, to size 3 fragments."""
    out = subprocess.run(
        [sys.executable, "-m", "marl.train", f"+experiment={preset}", "--cfg", "job",
         "--resolve"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    import yaml

    return yaml.safe_load(out.stdout)


def run(preset: str, run_dir: Path, init_from: Path | None) -> list[dict]:
    cfg = composed(preset)
    per_fragment = cfg["train"]["num_envs"] * cfg["train"]["fragment_len"]
    args = [sys.executable, "-m", "marl.train", f"+experiment={preset}", f"seed={SEED}",
            f"train.total_env_steps={FRAGMENTS * per_fragment}",
            f"train.log_every_env_steps={per_fragment}", "train.eval_every_env_steps=0",
            "train.eval_episodes=8", "logger.progress=false", "logger.plots=[]",
            "checkpoint.every_env_steps=0", f"hydra.run.dir={run_dir}"]
    if init_from is not None:
        args.append(f"init_from={init_from}")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{preset}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def differences(want: list[dict], got: list[dict]) -> list[str]:
    if len(want) != len(got):
        return [f"{len(got)} rows, recorded {len(want)}"]
    out = []
    for i, (w, g) in enumerate(zip(want, got)):
        for k in sorted(set(w) | set(g)):
            if w.get(k, "<absent>") != g.get(k, "<absent>"):
                out.append(f"row {i} {k}: {g.get(k, '<absent>')!r}, recorded "
                           f"{w.get(k, '<absent>')!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["record", "check"])
    ap.add_argument("presets", nargs="*", help="default: every preset but SKIPPED")
    args = ap.parse_args(argv)
    chosen = args.presets or presets()
    chosen = sorted(chosen, key=lambda p: p in NEEDS)  # the fine-tuned ones last
    DATA.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for preset in chosen:
            base = NEEDS.get(preset)
            init = Path(tmp) / base if base else None
            if init is not None and not init.exists():
                run(base, init, None)
            rows = run(preset, Path(tmp) / preset, init)
            path = DATA / f"{preset}.json"
            if args.mode == "record":
                path.write_text(json.dumps(rows, indent=1) + "\n")
                print(f"{preset}: {len(rows)} rows recorded")
                continue
            diff = differences(json.loads(path.read_text()), rows)
            failed += bool(diff)
            print(f"{preset}: " + ("identical" if not diff else "DIFFERS\n  " +
                                   "\n  ".join(diff[:10])))
    for preset, why in SKIPPED.items():
        print(f"{preset}: rows skipped ({why})")
    failed += check_configs(args.mode, args.presets or presets() + list(SKIPPED))
    return 1 if failed else 0


def flat_config(preset: str) -> dict:
    """The preset's composed, validated config, flat (``resume.config_dict``), paths out."""
    from marl.build import compose_config
    from marl.io.resume import config_dict

    extra = ["init_from=run"] if preset in NEEDS else []
    flat = config_dict(compose_config([f"+experiment={preset}", *extra]))
    return {k: v for k, v in flat.items() if k not in ("plugin_path", "init_from")}


def check_configs(mode: str, chosen: list[str]) -> int:
    """Record or check every preset's composed config; the number that differ."""
    path = DATA / "configs.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    failed = 0
    for preset in sorted(chosen):
        got = json.loads(json.dumps(flat_config(preset)))  # tuples -> lists, as stored
        if mode == "record":
            stored[preset] = got
            continue
        from marl.config import upgrade_flat_config

        if preset not in stored:
            failed += 1
            print(f"{preset} config: NOT RECORDED (a new preset: record it)")
            continue
        want = upgrade_flat_config(stored[preset])
        new = sorted(k for k in set(got) - set(want)
                     if got[k] not in ({}, [], None))  # a block added since, at its default
        diff = [k for k in sorted(set(want) | set(got))
                if k in want and want[k] != got.get(k, "<absent>")] + new
        failed += bool(diff)
        print(f"{preset} config: " + ("identical" if not diff else "DIFFERS " + ", ".join(
            f"{k}: {got.get(k, '<absent>')!r}, recorded {want.get(k, '<absent>')!r}"
            for k in diff[:8])))
    if mode == "record":
        path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
        print(f"{len(chosen)} configs recorded")
    return failed


if __name__ == "__main__":
    sys.exit(main())
