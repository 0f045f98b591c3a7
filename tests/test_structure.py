"""The module boundaries of DESIGN.md section 3, read from the source with ``ast``.

* config, learner, runner, rollout and policy import nothing from ``marl.envs`` except
  ``marl.envs.base`` (types only); config imports no env module at all;
* no entry point wires env, learner and runner itself: in ``marl/`` only ``build.py``
  calls ``make_vec_env`` or constructs ``Learner`` / ``Runner``; an experiment script may
  make a bare env (scripted policies) or a bare learner (an init study), never two parts;
* no file in ``marl/`` (outside ``marl/envs``) over 600 lines, no function over 80.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted(p for p in (ROOT / "marl").rglob("*.py") if "envs" not in p.parts)
ENTRY_POINTS = [ROOT / "marl" / n for n in ("train.py", "evaluate.py", "bench.py")]
SCRIPTS = sorted((ROOT / "experiments").glob("*/*.py"))
WIRING = {"make_vec_env", "Learner", "Runner"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``from a.b import c`` gives a.b and
    a.b.c)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def env_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m == "marl.envs" or m.startswith("marl.envs.")}


@pytest.mark.parametrize("name", ["algos/coma/learner", "core/runner", "core/rollout",
                                  "core/policy", "algos/coma/advantages",
                                  "algos/coma/critics", "core/returns", "core/nets"])
def test_core_modules_import_only_env_types(name):
    allowed = {"marl.envs.base", "marl.envs.base.EnvSpec", "marl.envs.base.VecEnv",
               "marl.envs.base.VecBuffers"}
    assert env_imports(ROOT / "marl" / f"{name}.py") <= allowed


def test_config_imports_no_env_module():
    assert env_imports(ROOT / "marl" / "config.py") == set()


def test_import_check_sees_an_env_import(tmp_path):
    """The checker itself: a file importing an env module is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from marl.envs.boxpush import BoxPushCore\nimport marl.envs\n")
    assert env_imports(bad) == {"marl.envs.boxpush", "marl.envs.boxpush.BoxPushCore",
                                "marl.envs"}


def _calls(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else getattr(f, "attr", ""))
    return names


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_entry_points_wire_through_build(path):
    wiring = WIRING & _calls(path)
    assert not wiring, f"{path.name} builds {sorted(wiring)} itself: call marl.build.build"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_scripts_wire_through_build(path):
    wiring = WIRING & _calls(path)
    assert len(wiring) <= 1, f"{path.name} wires {sorted(wiring)} itself: call marl.build.build"


def test_bench_does_not_import_train():
    assert not {m for m in imported_modules(ROOT / "marl" / "bench.py")
                if m.startswith("marl.train")}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_file_and_function_sizes(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= 600, f"{path.name} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{path.name}:{node.name} is {length} lines long"
