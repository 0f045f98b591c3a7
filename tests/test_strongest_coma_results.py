"""experiments/smax/strongest_coma/results.py: a run read from its files, the record's
merge, the table's bootstrap intervals against a hand-worked case and an exact
enumeration, and the committed page's tables regenerated from the committed record."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, load_script

results = load_script("experiments/smax/strongest_coma/results.py")
PAGE = ROOT / "experiments/smax/strongest_coma"


def fake_run(d: Path, seed: int, final: float, scenario: str = "2s3z") -> Path:
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra/config.yaml").write_text(f"env:\n  name: jaxmarl\n  scenario: {scenario}\n")
    (d / "summary.json").write_text(json.dumps({"seed": seed, "env_steps": 2001920,
                                                "eval/win_rate": final}))
    rows = [{"env_steps": 1000, "train/return": 0.1},
            {"env_steps": 250000, "eval/win_rate": 0.25},
            {"env_steps": 2001920, "eval/win_rate": final}]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"env_')
    return d


def test_a_run_is_read_from_its_config_summary_and_evaluations(tmp_path):
    r = results.read_run("new row", fake_run(tmp_path / "r", 3, 0.9, "3m"))
    assert r == {"label": "new row", "map": "3m", "seed": 3, "env_steps": 2001920,
                 "final": 0.9, "curve": [[250000, 0.25], [2001920, 0.9]]}


def test_collecting_a_seed_again_replaces_its_record(tmp_path):
    rec = tmp_path / "results.json"
    results.merge(rec, [results.read_run("a", fake_run(tmp_path / "r0", 0, 0.5)),
                        results.read_run("b", fake_run(tmp_path / "r1", 0, 0.6))])
    results.merge(rec, [results.read_run("a", fake_run(tmp_path / "r2", 0, 0.7))])
    got = sorted((r["label"], r["seed"], r["final"]) for r in json.loads(rec.read_text()))
    assert got == [("a", 0, 0.7), ("b", 0, 0.6)]


def test_table_by_hand():
    """ref 1.0/0.9/0.95 vs 0.1/0.2/0.15. With 3 seeds each seed alone is 1/27 > 2.5% of
    the resamples, so each row's 95% bootstrap interval is its seeds' range, and the IQM
    of 3 scores is their mean. The difference 0.8: its interval is the percentiles of
    every one of the 27 x 27 resample pairs (bold: it excludes 0); every ref seed beats
    every other seed, P = 1. The ref row comes first whatever the record's order."""
    runs = [{"label": lab, "map": "3m", "seed": s, "env_steps": 2e6, "final": f, "curve": []}
            for lab, finals in (("old", (0.1, 0.2, 0.15)), ("new", (1.0, 0.9, 0.95)))
            for s, f in enumerate(finals)]
    lines = results.table(runs, "3m", "new").splitlines()
    assert lines[2] == ("| **new** | 2M | 1.000 | 0.900 | 0.950 | 0.950 [0.900, 1.000] | "
                        "0.950 [0.900, 1.000] |  |  |")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[:7] == ["old", "2M", "0.100", "0.200", "0.150", "0.150 [0.100, 0.200]",
                         "0.150 [0.100, 0.200]"]
    assert cells[8] == "1.00 [1.00, 1.00]"
    low, high = (float(v) for v in cells[7].strip("*+").strip("[]").split(" [")[1].split(", +"))
    means = {k: np.array([np.mean(c) for c in itertools.product(v, repeat=3)])
             for k, v in (("new", (1.0, 0.9, 0.95)), ("old", (0.1, 0.2, 0.15)))}
    exact = (means["new"][:, None] - means["old"][None, :]).ravel()
    assert cells[7].startswith("**+0.800 [") and cells[7].endswith("]**")
    assert low == pytest.approx(np.percentile(exact, 2.5), abs=0.002)
    assert high == pytest.approx(np.percentile(exact, 97.5), abs=0.002)


def test_the_page_shows_the_records_tables():
    """Every map's table in README.md is what ``results.py table`` makes of the committed
    results.json (edit the record, not the page)."""
    runs = json.loads((PAGE / "results.json").read_text())
    page = (PAGE / "README.md").read_text()
    maps = sorted({r["map"] for r in runs})
    assert {"2s3z", "3m"} <= set(maps)
    for m in maps:
        assert results.table(runs, m, results.REF) in page, m
