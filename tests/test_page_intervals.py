"""The results pages' hand-placed interval cells against the committed records they come
from: every mean, IQM and interval a README copies is what ``marl.analysis.reliable``
(the functions ``python -m marl.report`` uses) gives on the record's per-seed finals, and
the per-seed cells are the record's. Edit the record and regenerate, not the page."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, load_script

from marl.analysis.reliable import fmt_ci, iqm_ci, mean_ci

EXP = ROOT / "experiments"


def section(page: str, title: str) -> list[str]:
    """The lines of ``page`` from the heading ``title`` to the next heading of its level."""
    start = page.index(title)
    level = title.split(" ")[0]
    end = page.find(f"\n{level} ", start + len(title))
    return page[start:end if end > 0 else None].splitlines()


def row(lines: list[str], label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    found = [ln for ln in lines if ln.startswith(f"| {label} |")]
    assert len(found) == 1, (label, found)
    return [c.strip() for c in found[0].strip("|").split("|")]


def record(path: str) -> dict:
    return json.loads((EXP / path).read_text())


def algo_row(table: list[dict[str, str]], algo: str) -> dict[str, str]:
    return next(r for r in table if r["algorithm"] == algo)


def test_credit_assignment_results_table_is_its_record():
    t = record("credit_assignment/results.json")["tables"]
    lines = section((EXP / "credit_assignment/README.md").read_text(), "## Results")
    names = {"ippo": "ippo (entropy 0.003 on coma_boxpush)",
             "mappo": "mappo (entropy 0.03 on coma_boxpush)"}
    for r in t["coma_boxpush"]:
        cells = row(lines, names.get(r["algorithm"], r["algorithm"]))
        for exp, at in (("coma_boxpush", 1), ("coma_boxpush_slacker", 4)):
            if not any(o["algorithm"] == r["algorithm"] for o in t[exp]):
                assert cells[at:at + 3] == ["", "", ""]
                continue
            o = algo_row(t[exp], r["algorithm"])
            assert cells[at:at + 3] == [o["final success"], o["final success, IQM"],
                                        o["env steps to 90% success"].rsplit(" (", 1)[0]]


def test_credit_assignment_4m_table_is_its_record_and_its_seeds():
    rec = record("credit_assignment/budget4m/results.json")
    lines = section((EXP / "credit_assignment/README.md").read_text(),
                    "## At the experiment's own budget")
    for algo, label in (("coma", "coma"), ("ippo", "ippo, entropy 0.01"),
                        ("mappo", "mappo, entropy 0.01")):
        cells = row(lines, label)
        seeds = sorted((r["seed"], r["success"]) for r in rec["runs"] if r["algo"] == algo)
        assert [float(c) for c in cells[1:6]] == [s for _, s in seeds]
        o = algo_row(rec["tables"]["coma_boxpush"], algo)
        assert cells[7:10] == [o["final success"], o["final success, IQM"],
                               o["env steps to 90% success"].rsplit(" (", 1)[0]]
    cells = row(lines, "**mappo, entropy 0.03**")  # no record: computed from its cells
    finals = [float(c) for c in cells[1:6]]
    assert cells[7:9] == [fmt_ci(mean_ci(finals)), fmt_ci(iqm_ci(finals))]


def versus_cell(t: dict, exp: str, algo: str) -> str:
    v = next((r for r in t[exp]["versus_coma"] if r["COMA vs"] == algo), None)
    if v is None:
        return ""
    cell = v["final win rate, COMA minus other"]
    shown = v["reading"].endswith("ahead")
    return f"**{cell}**" if shown else cell


def test_smax_ablation_table_is_its_records():
    t = record("smax/ablation/results.json")["tables"]
    cur = record("smax/ablation/current/results.json")["tables"]
    lines = section((EXP / "smax/ablation/README.md").read_text(), "## Results")
    names = {"ippo": "ippo (2M)", "mappo": "mappo (2M)", "qmix": "qmix (0.7-0.9M)",
             "vdn": "vdn (0.7-0.9M)"}
    for r in t["coma_smax_3m"]["algorithms"]:
        a = r["algorithm"]
        cells = row(lines, names.get(a, a))
        two = algo_row(t["coma_smax_2s3z"]["algorithms"], a)
        assert cells[1:] == [r["final success"], versus_cell(t, "coma_smax_3m", a),
                             two["final success"], versus_cell(t, "coma_smax_2s3z", a)]
    cells = row(lines, "**coma, 32 envs, 4M**")
    assert cells[1] == f"**{algo_row(cur['coma_smax_3m']['algorithms'], 'coma')['final success']}**"
    assert cells[3] == algo_row(cur["coma_smax_2s3z"]["algorithms"], "coma")["final success"]
    cells = row(lines, "central_v, 32 envs, 4M")
    assert cells[1:3] == [algo_row(cur["coma_smax_3m"]["algorithms"], "central_v")[
        "final success"], versus_cell(cur, "coma_smax_3m", "central_v")]


def test_value_decomposition_table_is_the_records():
    t = record("smax/ablation/results.json")["tables"]
    lines = (EXP / "value_decomposition/README.md").read_text().splitlines()
    for label, exp, algo in (("QMIX, 3m, 0.9M", "coma_smax_3m", "qmix"),
                             ("VDN, 3m, 0.9M", "coma_smax_3m", "vdn"),
                             ("QMIX, 2s3z, 0.7M", "coma_smax_2s3z", "qmix"),
                             ("VDN, 2s3z, 0.7M", "coma_smax_2s3z", "vdn")):
        o = algo_row(t[exp]["algorithms"], algo)
        cells = row(lines, label)
        assert cells[2].strip("*") == o["final success"] and cells[3] == o["final success, IQM"]
        seeds = sorted((r["seed"], r["success"]) for r in record("smax/ablation/results.json")[
            "runs"] if r["algo"] == algo and r["name"] == exp)
        assert cells[4].split(" / ") == [f"{s:.3f}" for _, s in seeds]


def test_optimism_matrix_table_is_its_record(capsys):
    summary = load_script("experiments/optimism/summary.py")
    summary.matrix_table(EXP / "optimism/matrix_results.json", None)
    out = capsys.readouterr().out
    path = "experiments/optimism/matrix_results.json"
    assert out.replace(str(EXP / "optimism/matrix_results.json"), path) == \
        (EXP / "optimism/matrix_results.md").read_text()


def test_optimism_page_intervals_are_its_seeds():
    page = (EXP / "optimism/README.md").read_text()
    lines = page.splitlines()
    seeds = [row(lines, str(s)) for s in range(5)]
    for col in (1, 2):
        finals = [float(c[col].split(" / ")[0]) for c in seeds]
        assert row(lines, "mean [95% CI]")[col] == fmt_ci(mean_ci(finals))
        assert row(lines, "IQM [95% CI]")[col] == fmt_ci(iqm_ci(finals))
    pareto = [r["final_success"] for r in json.loads(
        (EXP / "optimism/boxpush_results.json").read_text())]
    assert [float(c[2].split(" / ")[0]) for c in seeds] == pareto
    for name in ("spread_results.json", "strict_results.json", "boxpush_curves.json"):
        for g in json.loads((EXP / "optimism" / name).read_text()):
            assert g["mean_boot95"] == pytest.approx(list(mean_ci(g["final"])), nan_ok=True)
    for g in json.loads((EXP / "optimism/spread_results.json").read_text()):
        label = g["group"].split(" ")[0]
        assert re.search(rf"{label} {re.escape(fmt_ci(mean_ci(g['final']), 2))}",
                         " ".join(page.split())), label
