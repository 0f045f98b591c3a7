"""marl.analysis.report.aggregate with --previous: rows from an earlier results.json
(whose run directories are gone) merged with new runs, each row naming when its runs
were produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marl.analysis import report


def _agg():
    return report


def _run(d: Path, algo: str, seed: int, curve: list[tuple[int, float]]) -> None:
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
        {"name": "exp", "seed": seed, "algo": {"name": algo}}))
    rows = [{"env_steps": s, "eval/success_rate": v, "eval/return_mean": v} for s, v in curve]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "summary.json").write_text(json.dumps({
        "env_steps": curve[-1][0], "eval/success_rate": curve[-1][1],
        "eval/return_mean": curve[-1][1], "eval/credit/a/push_share": 0.5,
        "eval/credit/b/push_share": 0.4}))


def _previous(tmp_path: Path) -> Path:
    """An earlier aggregation of algo "old" (seeds 0, 1) and "both" (seed 0), then its run
    directories deleted."""
    agg = _agg()
    sweep = tmp_path / "old_sweep"
    _run(sweep / "a0", "old", 0, [(1_000_000, 0.95)])
    _run(sweep / "a1", "old", 1, [(1_000_000, 0.5), (2_000_000, 0.93)])
    _run(sweep / "b0", "both", 0, [(1_000_000, 0.1)])
    agg.aggregate([sweep], tmp_path / "old_out", threshold=0.9)
    saved = tmp_path / "old_results.json"
    saved.write_text((tmp_path / "old_out" / "results.json").read_text())
    for r in json.loads(saved.read_text())["runs"]:  # as in the committed file: no date
        assert "curve" in r
    data = json.loads(saved.read_text())
    for r in data["runs"]:
        del r["produced"], r["curve"]
    saved.write_text(json.dumps(data))
    return saved


def test_previous_rows_merge_with_new_runs_and_name_their_date(tmp_path):
    agg = _agg()
    previous = _previous(tmp_path)
    new = tmp_path / "new_sweep"
    _run(new / "n0", "new", 0, [(500_000, 0.92)])
    _run(new / "n1", "new", 1, [(500_000, 0.2), (1_000_000, 0.96)])
    _run(new / "b0", "both", 0, [(250_000, 0.97)])  # replaces the old "both" seed 0
    out = tmp_path / "out"
    result = agg.aggregate([new], out, 0.9, previous, "2026-11-22 (old)")
    rows = {r["algorithm"]: r for r in result["tables"]["exp"]}
    assert set(rows) == {"old", "new", "both"}
    # the old rows' numbers are the earlier file's: steps to 90% 1M and 2M
    assert rows["old"]["seeds"] == "2"
    assert rows["old"]["env steps to 90% success"].startswith("1.50M")
    assert rows["old"]["final success"].startswith("0.940")
    assert rows["old"]["runs produced"] == "2026-11-22 (old)"
    assert rows["new"]["env steps to 90% success"].startswith("0.75M")
    assert rows["new"]["runs produced"] not in ("2026-11-22 (old)", "unknown")
    # a run on disk wins over the earlier record of the same experiment, algo and seed
    assert rows["both"]["seeds"] == "1" and rows["both"]["final success"] == "0.970"
    md = (out / "results.md").read_text()
    assert "2 of them merged from an earlier results.json" in md
    assert (out / "curves_exp.png").read_bytes()[:4] == b"\x89PNG"
    # aggregating again over the merged file alone gives the same tables (idempotent)
    again = agg.aggregate([], tmp_path / "out2", 0.9, out / "results.json")
    assert again["tables"] == result["tables"]


def test_previous_at_another_threshold_is_refused(tmp_path):
    agg = _agg()
    previous = _previous(tmp_path)
    with pytest.raises(ValueError, match="threshold 0.9, not 0.8"):
        agg.aggregate([], tmp_path / "out", 0.8, previous)
