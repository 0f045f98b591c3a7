"""The JaxMARL reference presets are what they claim: each composes, key by key, to the
values of experiments/smax/calibration/presets.yaml, and each value there stands beside
an entry of the reference's own config (jaxmarl_reference.yaml, with its file:line)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from omegaconf import OmegaConf

from marl.build import compose_config
from marl.io import provenance
from marl.lifecycle import reference_record
from marl.reference import deviations

CAL = ROOT / "experiments" / "smax" / "calibration"
TABLE = yaml.safe_load((CAL / "presets.yaml").read_text())
REFERENCE = yaml.safe_load((CAL / "jaxmarl_reference.yaml").read_text())
CASES = [(family, preset) for family, rows in TABLE.items() for preset in rows["presets"]]


def _entry(family: str, key: str) -> dict:
    node = REFERENCE[family]
    for part in key.split("."):
        node = node[part]
    return node


def _composed(preset: str) -> dict:
    cfg = compose_config([f"+experiment={preset}"])
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def _get(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


@pytest.mark.parametrize("family,preset", CASES)
def test_the_preset_composes_to_the_tables_values(family, preset):
    composed = _composed(preset)
    wrong = {key: (_get(composed, key), row[0]) for key, row in TABLE[family]["matched"].items()
             if _get(composed, key) != row[0]}
    assert not wrong, f"{preset}: composed vs table {wrong}"
    assert composed["name"] == preset and Path(CAL.parent.parent.parent, "conf", "experiment",
                                                f"{preset}.yaml").is_file()


@pytest.mark.parametrize("family", sorted(TABLE))
def test_every_value_stands_beside_the_references(family):
    for key, row in TABLE[family]["matched"].items():
        ours, ref_key, *opts = row
        entry = _entry(family, ref_key)
        assert entry.get("source"), f"{ref_key}: no source"
        theirs = entry.get("run_override", entry.get("value"))
        if isinstance(theirs, bool) or isinstance(ours, bool):  # a flag: only beside one
            assert not (type(ours) is type(theirs) is bool) or ours == theirs, (key, ref_key)
        elif isinstance(theirs, numbers.Number) and isinstance(ours, numbers.Number):
            scale = (opts[0] if opts else {}).get("scale", 1.0)
            assert ours == pytest.approx(theirs * scale), (key, ours, ref_key, theirs)
    for dev in TABLE[family]["deviations"]:
        assert _entry(family, dev["reference"]).get("source") and dev["reason"], dev


def test_the_table_catches_a_changed_preset():
    """The check is not vacuous: one value moved off the reference is found."""
    composed = _composed("mappo_smax_3m_jaxmarl")
    composed["algo"]["ppo"]["clip"] = 0.1
    rows = TABLE["mappo"]["matched"]
    assert [k for k, row in rows.items() if _get(composed, k) != row[0]] == ["algo.ppo.clip"]


@pytest.mark.parametrize("family", sorted(TABLE))
def test_the_pinned_settings_are_the_tables(family):
    """conf/reference/jaxmarl_<family>.yaml (what a run checks itself against) lists
    exactly the table's matched keys and values."""
    pinned = yaml.safe_load((ROOT / "conf" / "reference" / f"jaxmarl_{family}.yaml")
                            .read_text())["pinned"]
    assert pinned == {k: row[0] for k, row in TABLE[family]["matched"].items()}


def _cfg(overrides: list[str]):
    return OmegaConf.structured(compose_config(overrides))


def _deviations(overrides: list[str]) -> dict:
    return deviations(_cfg(overrides))


def test_a_run_that_moves_a_pinned_setting_says_so_and_records_it(tmp_path, capsys):
    for preset in (p for _, p in CASES):
        assert _deviations([f"+experiment={preset}"]) == {}, preset
    assert _deviations(["+experiment=coma_boxpush", "algo.td_lambda=0.5"]) == {}
    found = _deviations(["+experiment=ippo_smax_3m_jaxmarl", "algo.ppo.clip=0.1",
                         "train.num_envs=64"])
    assert found == {"algo.ppo.clip": (0.1, 0.05), "train.num_envs": (64, 128)}
    cfg = _cfg(["+experiment=mappo_smax_3m_jaxmarl", "algo.critic_net=mlp"])
    provenance.record(tmp_path, reference_record(cfg))
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "algo.critic_net='mlp' (reference 'gru')" in said[0]
    info = json.loads((tmp_path / "provenance.json").read_text())
    assert info["reference_deviations"] == ["algo.critic_net"]
    assert info["reference"].startswith("JaxMARL MAPPO")
