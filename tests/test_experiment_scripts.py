"""Every experiment script (``experiments/**/*.py``, any depth) stands alone: it imports
the package, never another script by path (no ``spec_from_file_location``, no
``sys.path`` edits, no ``runpy``), has a docstring saying how to run it, and the
``marl`` modules it imports exist."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "experiments").rglob("*.py"))
BY_PATH = {"spec_from_file_location", "module_from_spec", "run_path", "SourceFileLoader",
           "load_source", "exec_module"}


def path_loads(source: str) -> list[str]:
    """What in ``source`` loads code by file path or edits the import path."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = node.attr if isinstance(node, ast.Attribute) else \
            node.id if isinstance(node, ast.Name) else None
        if name in BY_PATH:
            found.append(name)
        if isinstance(node, ast.Attribute) and node.attr == "path" and \
                isinstance(node.value, ast.Name) and node.value.id == "sys":
            found.append("sys.path")
        if isinstance(node, ast.alias) and node.name.split(".")[0] in ("runpy", "imp"):
            found.append(node.name)
        if isinstance(node, ast.ImportFrom) and node.module in ("runpy", "imp"):
            found.append(node.module)
    return found


def test_every_script_at_any_depth_is_found():
    rel = {str(p.relative_to(ROOT / "experiments")) for p in SCRIPTS}
    assert "smax/ablation/aggregate.py" in rel and "credit_assignment/failures.py" in rel


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_loads_no_other_script_by_path(path):
    found = path_loads(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} loads code by path ({sorted(set(found))}): " \
        "move what it shares into marl.analysis and import it"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_has_a_docstring_and_its_marl_imports_exist(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.name}: no docstring saying how to run it"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("marl"):
            assert importlib.util.find_spec(node.module) is not None, \
                f"{path.name}: {node.module} does not exist"


@pytest.mark.parametrize("source", [
    "import importlib.util\nspec = importlib.util.spec_from_file_location('m', 'x.py')\n",
    "import sys\nsys.path.insert(0, 'tests')\n",
    "from runpy import run_path\n",
    "import runpy\nrunpy.run_path('x.py')\n",
])
def test_the_check_catches_each_way_of_loading_by_path(source):
    assert path_loads(source)


def test_the_check_lets_a_package_import_through():
    assert not path_loads("from marl.analysis.runs import read_jsonl\nimport sys\nsys.exit(0)\n")


@pytest.mark.parametrize(("script", "args", "message"), [
    ("experiments/credit_assignment/aggregate.py", ["/nonexistent_sweep"],
     "sweep directory /nonexistent_sweep does not exist"),
    ("experiments/smax/ablation/aggregate.py",
     ["--previous", "experiments/smax/ablation/results.json", "--threshold", "0.9"],
     "was aggregated at threshold 0.8, not 0.9"),
])
def test_aggregate_scripts_refuse_bad_input_with_exit_2(tmp_path, script, args, message):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(ROOT / script), *args, "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {r.stderr.strip()[7:]}"]
    assert message in r.stderr
