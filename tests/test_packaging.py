"""The built wheel holds the whole framework, and the package says its version.

The wheel is built from a copy of the sources (``marl/``, ``conf/``, ``pyproject.toml``,
``README.md``) with ``pip wheel --no-deps --no-build-isolation``, so the checkout is left
as it was. It must contain every ``marl/**/__init__.py`` package and every module under
them, every ``conf/**/*.yaml`` as ``marl/conf/...``, the console scripts, and say
``Requires-Python: >=3.11``. Installing the wheel and training from it is
``tools/wheel-smoke`` (run by CI).
"""

from __future__ import annotations

import configparser
import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import marl
from marl.__main__ import main as marl_main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SCRIPTS = {"marl": "marl.__main__:main", "marl-train": "marl.train:main",
           "marl-evaluate": "marl.evaluate:main"}


def expected_files() -> set[str]:
    """Wheel paths of every module of every ``marl/**`` package and every conf YAML."""
    packages = {p.parent for p in (ROOT / "marl").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    modules = {m.relative_to(ROOT).as_posix() for pkg in packages for m in pkg.glob("*.py")}
    confs = {"marl/conf/" + c.relative_to(ROOT / "conf").as_posix()
             for c in (ROOT / "conf").rglob("*.yaml")}
    assert len(packages) >= 8 and len(confs) >= 50, "the source tree was not found"
    return modules | confs


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("marl", "conf"):
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True)
    (path,) = out.glob("marl-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_every_package_module_and_conf_file_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    missing = sorted(expected_files() - set(wheel.namelist()))
    assert not missing, (f"the wheel lacks {missing}: add the package to [tool.setuptools] "
                         "packages in pyproject.toml")


def test_every_marl_package_is_listed_in_pyproject() -> None:
    """The same guard without a build: a new marl/**/__init__.py needs its line."""
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "marl").rglob("__init__.py") if "__pycache__" not in p.parts}
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert found - listed == set(), f"not in pyproject's packages: {sorted(found - listed)}"
    assert "marl.conf" in listed


def test_wheel_metadata_scripts_and_python_version(wheel: zipfile.ZipFile) -> None:
    version = PYPROJECT["project"]["version"]
    info = f"marl-{version}.dist-info"
    meta = wheel.read(f"{info}/METADATA").decode()
    assert "Requires-Python: >=3.11" in meta
    assert "Provides-Extra: jax" in meta and "Provides-Extra: docs" in meta
    eps = configparser.ConfigParser()
    eps.read_string(wheel.read(f"{info}/entry_points.txt").decode())
    assert dict(eps["console_scripts"]) == SCRIPTS


@pytest.mark.parametrize("target", sorted(SCRIPTS.values()))
def test_console_script_targets_are_callable(target: str) -> None:
    module, attr = target.split(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_torch_range_admits_the_tested_torch() -> None:
    (torch_req,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch")]
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req.removeprefix("torch"))


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert marl_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"marl {marl.__version__}"
    assert marl_main([]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("marl.train", "marl-train", "marl.evaluate", "--version"))


def test_unknown_argument_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert marl_main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bogus" in err and "--version" in err


MISSING = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if the extra were not installed
sys.argv = ["marl.train", *sys.argv[2:]]
from marl.train import main
main()
"""


@pytest.mark.parametrize(("hidden", "overrides", "extra"), [
    ("jax,jaxmarl", ["+experiment=coma_smax_3m"], "jax"),
    ("hydra_plugins.hydra_joblib_launcher",
     ["-m", "hydra/launcher=joblib_cpu", "+experiment=coma_bandit"], "sweep"),
    ("hydra_plugins.hydra_submitit_launcher",
     ["-m", "hydra/launcher=submitit_local_cpu", "+experiment=coma_bandit"], "sweep"),
    ("hydra_plugins.hydra_ray_launcher",
     ["-m", "hydra/launcher=ray_cpu", "+experiment=coma_bandit"], "ray"),
    ("hydra_plugins.hydra_optuna_sweeper", ["-m", "+experiment=coma_boxpush_optuna"], "sweep"),
])
def test_a_missing_extra_is_named_in_one_line(tmp_path: Path, hidden: str, overrides: list[str],
                                               extra: str) -> None:
    """From the checkout; tools/wheel-smoke checks the jax case from the installed wheel."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", MISSING, hidden, *overrides,
         "train.total_env_steps=64", f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled"})
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and f'pip install "marl[{extra}]"' in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()
