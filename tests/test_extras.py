"""The lean core install: Atari and PettingZoo's butterfly are extras, and an env that
needs a missing one is refused at config time, exit 2, one line naming the extra and
its pip command (:mod:`marl.envs.extras`). A missing package is simulated by
``sys.modules[name] = None`` (``import name`` raises ImportError, ``find_spec`` finds
nothing), in a subprocess so this process keeps its modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from marl.envs.extras import install_hint, pettingzoo_extra

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HIDDEN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if the extra were not installed
sys.argv = ["marl.train", *sys.argv[2:]]
from marl.train import main
main()
"""


def requirements(names: list[str]) -> dict[str, set[str]]:
    """Requirement strings -> {distribution name: its extras}."""
    out: dict[str, set[str]] = {}
    for text in names:
        req = Requirement(text)
        out.setdefault(req.name.lower().replace("_", "-"), set()).update(req.extras)
    return out


def test_the_core_install_leaves_atari_and_butterfly_to_their_extras():
    core = requirements(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not {"ale-py", "multi-agent-ale-py", "pymunk"} & set(core)
    assert core["pettingzoo"] == set() and core["gymnasium"] == set()
    assert {"mpe2", "wandb", "hydra-core"} <= set(core)  # MPE and W&B stay in the core
    atari, butterfly = requirements(extras["atari"]), requirements(extras["butterfly"])
    assert "ale-py" in atari and atari["pettingzoo"] == {"atari"}
    assert butterfly["pettingzoo"] == {"butterfly"}
    test = requirements(extras["test"])  # the README's test command installs everything
    for dist, wanted in {**atari, **butterfly, "pettingzoo": {"atari", "butterfly"}}.items():
        assert dist in test and wanted <= test[dist], dist


@pytest.mark.parametrize(("env_id", "extra"), [
    ("atari/pong-v3", "atari"), ("butterfly/pistonball-v6", "butterfly"),
    ("pettingzoo.butterfly:pistonball_v6", "butterfly"),
    ("pettingzoo.atari.pong_v3:parallel_env", "atari"), ("pettingzoo:atari.pong_v3", "atari"),
    ("mpe2:simple_spread_v3", None), ("sisl/pursuit-v5", None), ("my.atari:env", None),
])
def test_which_pettingzoo_ids_need_an_extra(env_id, extra):
    assert pettingzoo_extra(env_id) == extra


def _line(what: str, extra: str, module: str) -> str:
    return (f"error: {what} needs the {extra} extra, which is not installed (no module "
            f"{module!r}): {install_hint(extra)}")


def test_pong_without_ale_py_exits_2_in_one_line_naming_the_extra(tmp_path: Path):
    """The entry point's whole path: exit 2, that one line, no run directory."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", HIDDEN, "ale_py", "+experiment=ppo_pong",
         "train.total_env_steps=64", f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env={**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        _line("env.name = 'pong'", "atari", "ale_py")]
    assert not out.exists()


@pytest.mark.parametrize(("hidden", "overrides", "line"), [
    ("multi_agent_ale_py", ["env=ma_pong"],
     _line("env.id = 'atari/pong-v3'", "atari", "multi_agent_ale_py")),
    ("ale_py", ["env=ma_pong"], _line("env.id = 'atari/pong-v3'", "atari", "ale_py")),
    ("pymunk", ["+experiment=coma_coop_pong"],
     _line("env.id = 'butterfly/cooperative_pong-v6'", "butterfly", "pymunk")),
    ("pymunk", ["env=pistonball"],
     _line("env.id = 'butterfly/pistonball-v6'", "butterfly", "pymunk")),
], ids=["ma_pong", "ma_pong-roms", "coop_pong", "pistonball"])
def test_a_pettingzoo_env_whose_extra_is_missing_is_refused_naming_it(monkeypatch, hidden,
                                                                      overrides, line):
    """The same check on the config the entry points validate (in this process)."""
    from conftest import compose_config

    from marl.schema import ConfigError

    monkeypatch.setitem(sys.modules, hidden, None)
    with pytest.raises(ConfigError) as err:
        compose_config(overrides)
    assert f"error: {err.value}" == line


@pytest.mark.slow
def test_the_core_envs_run_without_the_extras(tmp_path: Path):
    """Box pushing trains with every Atari and butterfly module hidden."""
    out = tmp_path / "run"
    hidden = "ale_py,multi_agent_ale_py,pymunk"
    proc = subprocess.run(
        [sys.executable, "-c", HIDDEN, hidden, "+experiment=coma_boxpush",
         "train.total_env_steps=200", "train.num_envs=4", "train.eval_episodes=2",
         "logger.progress=false", "logger.plots=[]", "logger.wandb.mode=disabled",
         f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "summary.json").is_file()
