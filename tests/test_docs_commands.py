"""Every ``python -m marl.train`` command in docs/, the README and experiments/' READMEs
composes in-process, so a documented command cannot go stale; so does every run of the
experiments' run.sh scripts, as ``LIST=1 bash run.sh`` prints them.

A command is read to the end of its line (joining ``\\`` continuations; an inline one to
its closing backtick) and up to the first shell operator. Loop variables (``for e in a b;
do``) and assignments (``S="seed=0,1"``) of the same file are expanded, ``<placeholder>``s
take an example value, a sweep's comma list is composed value by value, and what names
a machine or the output directory (``hydra.*``: the launcher, the run and sweep dirs) is
left out: composing it needs the cluster or the run.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from marl.build import compose_config

SOURCES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
                  *(ROOT / "experiments").rglob("README.md")])
PLACEHOLDERS = {"<map>": "3m", "<algo>": "coma", "<S>": "0", "<s>": "0", "<seed>": "0",
                "<name>": "coma_boxpush", "<exp>": "coma_boxpush"}
LEFT_OUT = ("hydra.", "hydra/", "-m", "--multirun")
_OPERATOR = re.compile(r"\s(?:;|&&|\|\|?|>|2>&1|&|#)(?:\s|$)|`|\)\s*$|;\s*(?:done|fi)\b")
_FOR = re.compile(r"for (\w+) in ([^;]+); do")
_ASSIGN = re.compile(r"^\s*(\w+)=\"([^\"$]*)\"\s*$", re.M)


def _commands(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    found = []
    for m in re.finditer(r"python -m marl\.train\b", text):
        line_no = text.count("\n", 0, m.start()) + 1
        rest = text[m.end():]
        out = ""
        for line in rest.split("\n"):
            cut = _OPERATOR.search(" " + line)
            if cut:
                out += line[:max(cut.start() - 1, 0)]
                break
            if line.rstrip().endswith("\\"):
                out += line.rstrip()[:-1] + " "
                continue
            out += line
            break
        found.append((line_no, out.strip()))
    return found


def _variables(path: Path, line_no: int) -> dict[str, list[str]]:
    """Loop variables of the lines up to the command, and the file's plain assignments."""
    lines = path.read_text().splitlines()[:line_no]
    env = {k: [v] for k, v in _ASSIGN.findall("\n".join(lines))}
    for line in lines[-4:]:
        for var, values in _FOR.findall(line):
            env[var] = values.split()
    return env


def _expand(cmd: str, env: dict[str, list[str]]) -> list[str]:
    """``$v``, ``${v}`` and the two cuts the pages use, ``${v#*:}`` (after the first
    colon) and ``${v%%:*}`` (before it), for every combination of the loop values."""
    names = [v for v in env if re.search(rf"\$\{{?{v}\b", cmd)]
    out = []
    for combo in itertools.product(*(env[v] for v in names)):
        c = cmd
        for var, value in zip(names, combo, strict=True):
            c = c.replace(f"${{{var}#*:}}", value.partition(":")[2])
            c = c.replace(f"${{{var}%%:*}}", value.partition(":")[0])
            c = re.sub(rf"\$\{{?{var}\b\}}?", value, c)
        out.append(c)
    return out or [cmd]


def _override_sets(args: list[str]) -> list[list[str]]:
    """A sweep's comma lists, value by value (the others at their first value)."""
    kept = [a for a in args if not a.startswith(LEFT_OUT) and a != '"$@"' and "=" in a]
    swept = {i: a.split("=", 1)[1].split(",") for i, a in enumerate(kept)
             if "," in a and not re.search(r"[\[{(]", a)}
    first = [a if i not in swept else f"{a.split('=', 1)[0]}={swept[i][0]}"
             for i, a in enumerate(kept)]
    sets = [first]
    for i, values in swept.items():
        for v in values[1:]:
            sets.append([*first[:i], f"{kept[i].split('=', 1)[0]}={v}", *first[i + 1:]])
    return sets


def _cases():
    for path in SOURCES:
        for line_no, cmd in _commands(path):
            for c in _expand(cmd, _variables(path, line_no)):
                for k, v in PLACEHOLDERS.items():
                    c = c.replace(k, v)
                yield pytest.param(c, id=f"{path.relative_to(ROOT)}:{line_no}")


CASES = list(_cases())


def test_the_docs_hold_commands_to_check():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("cmd", CASES)
def test_a_documented_command_composes(cmd):
    args = shlex.split(cmd)
    assert "$" not in " ".join(a for a in args if not a.startswith(LEFT_OUT)), \
        f"unexpanded variable in {cmd!r}"
    for overrides in _override_sets(args):
        compose_config(overrides)


# ------------------------------------------------------------- the run.sh scripts
RUN_SCRIPTS = sorted((ROOT / "experiments").rglob("run.sh"))


def _listed_runs(script: Path, tmp: Path) -> list[str]:
    """The runs ``LIST=1 bash run.sh`` prints (each run's overrides, one line a run),
    with the seed set to 0: one composition per distinct run."""
    out = subprocess.run(["bash", str(script), str(tmp / "runs"), "1"], capture_output=True,
                         text=True, env={**os.environ, "LIST": "1"}, timeout=60, check=True)
    assert not (tmp / "runs").exists(), f"{script} ran something under LIST=1"
    return sorted({re.sub(r"\bseed=\d+", "seed=0", line).strip()
                   for line in out.stdout.splitlines() if line.strip()})


@pytest.mark.parametrize("script", [s for s in RUN_SCRIPTS if "LIST=1" in s.read_text()],
                         ids=lambda s: str(s.relative_to(ROOT)))
def test_every_run_of_a_run_script_composes(script, tmp_path):
    runs = _listed_runs(script, tmp_path)
    assert len(runs) >= 3, runs
    for line in runs:
        compose_config([a for a in shlex.split(line) if not a.startswith(LEFT_OUT)])


def test_every_run_script_has_a_dry_run():
    assert RUN_SCRIPTS and all("LIST=1" in s.read_text() for s in RUN_SCRIPTS), \
        [str(s) for s in RUN_SCRIPTS if "LIST=1" not in s.read_text()]
