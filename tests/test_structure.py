"""The package's boundaries and sizes, read from the source with ``ast``.

* the data-flow core (runner, rollout, policy, nets, returns) and the learner families
  import nothing from ``marl.envs`` except ``marl.envs.base`` (types only); config imports
  no env module at all;
* no entry point wires env, learner and runner itself: in ``marl/`` only ``build.py``
  calls ``make_vec_env`` or constructs a learner / ``Runner``; an experiment script (at
  any depth of ``experiments/``) may make a bare env or a bare learner, never two parts
  (that scripts never load each other by path: tests/test_experiment_scripts.py);
* every choice is a table row: no module compares a choice field of the config
  (``advantage``, ``actor_update``, ``critic_update``, ``learner``, ``mixer``) with a
  name -- it looks the name up in its table;
* no file of ``marl/`` (envs included) over 400 lines, no function over 50 lines of code
  (its docstring not counted); counting every line from ``def`` to its end, at most 3
  functions are over 40 lines, none over 50, and each over 40 says why beside its ``def``
  (``# over 40 lines: <reason>`` on the line above it or in its signature);
* the project names nothing outside itself (no design documents it does not contain);
* no import circle among ``marl/``'s modules (module-level imports; the check is proved
  on a two-module circle);
* COMA's strategies keep their small typed interfaces (:mod:`marl.algos.coma.interfaces`):
  no function there takes the ``learner`` (a hook gets ``ComaParts`` and tensors), no
  string-keyed dict carries a minibatch record's fields (``d["obs"]``, ``{"ret": ...}``,
  ``f"h0/{kind}"`` keys), and nothing in ``marl/algos/`` reads another object's
  ``_private`` attribute.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARL = sorted((ROOT / "marl").rglob("*.py"))
ENTRY_POINTS = [ROOT / "marl" / n for n in ("train.py", "evaluate.py", "bench.py")]
SCRIPTS = sorted((ROOT / "experiments").rglob("*.py"))
WIRING = {"make_vec_env", "Learner", "ComaLearner", "QLearner", "Runner"}
CHOICES = {"advantage", "actor_update", "critic_update", "learner", "mixer"}
MAX_LINES, MAX_FUNCTION = 400, 50


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


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


ENV_FREE = sorted([*(ROOT / "marl" / "core").glob("*.py"),
                   *(ROOT / "marl" / "algos").rglob("*.py")])


@pytest.mark.parametrize("path", ENV_FREE, ids=rel)
def test_core_and_learners_import_only_env_types(path):
    allowed = {"marl.envs.base", "marl.envs.base.EnvSpec", "marl.envs.base.VecEnv",
               "marl.envs.base.VecBuffers"}
    assert env_imports(path) <= allowed


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


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=rel)
def test_entry_points_wire_through_build(path):
    wiring = WIRING & _calls(path)
    assert not wiring, f"{path.name} builds {sorted(wiring)} itself: call marl.build.build"


@pytest.mark.parametrize("path", SCRIPTS, ids=rel)
def test_experiment_scripts_wire_through_build(path):
    wiring = WIRING & _calls(path)
    assert len(wiring) <= 1, f"{path.name} wires {sorted(wiring)} itself: call marl.build.build"


def test_bench_does_not_import_train():
    assert not {m for m in imported_modules(ROOT / "marl" / "bench.py")
                if m.startswith("marl.train")}


def _choice_comparisons(tree: ast.AST) -> list[str]:
    """``<x>.<choice> == "name"`` (or ``!=``, ``in (...)``) anywhere in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        attrs = [s.attr for s in sides if isinstance(s, ast.Attribute) and s.attr in CHOICES]
        names = [s for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)
                 or isinstance(s, ast.Tuple | ast.List | ast.Set)]
        if attrs and names:
            found.append(f"line {node.lineno}: {attrs[0]}")
    return found


@pytest.mark.parametrize("path", MARL, ids=rel)
def test_no_if_chain_on_a_choice_name(path):
    found = _choice_comparisons(ast.parse(path.read_text(encoding="utf-8")))
    assert not found, f"{rel(path)} compares a choice with a name ({found}): look it up " \
        "in its table instead"


def test_choice_check_sees_a_comparison():
    tree = ast.parse("if cfg.actor_update == 'ppo':\n    pass\n"
                     "ok = self.cfg.critic_update in ('a', 'b')\n")
    assert len(_choice_comparisons(tree)) == 2


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines, its docstring not counted."""
    length = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        length -= first.end_lineno - first.lineno + 1
    return length


@pytest.mark.parametrize("path", MARL, ids=rel)
def test_file_and_function_sizes(path):
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") <= MAX_LINES, f"{rel(path)} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = code_lines(node)
            assert n <= MAX_FUNCTION, f"{rel(path)}:{node.name} is {n} lines of code"


LONG, MAX_LONG, REASON = 40, 3, re.compile(r"#\s*over 40 lines:\s*\S")


def long_functions(paths: list[Path]) -> tuple[list[str], list[str]]:
    """(every function over LONG lines, ``def`` to its end, as "path:name (n)"; those of
    them over MAX_FUNCTION lines or without a reason beside their ``def``)."""
    long, bad = [], []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            n = node.end_lineno - node.lineno + 1
            if n <= LONG:
                continue
            start = (node.decorator_list[0] if node.decorator_list else node).lineno
            beside = lines[start - 2:node.body[0].lineno - 1]  # line above .. signature
            name = f"{rel(path)}:{node.name} ({n} lines)"
            long.append(name)
            if n > MAX_FUNCTION or not any(REASON.search(line) for line in beside):
                bad.append(name)
    return long, bad


def test_few_long_functions_each_with_its_reason():
    long, bad = long_functions(MARL)
    assert len(long) <= MAX_LONG, f"more than {MAX_LONG} functions over {LONG} lines: {long}"
    assert not bad, f"over {MAX_FUNCTION} lines, or over {LONG} without '# over 40 lines: " \
        f"<reason>' beside the def: {bad}"


def test_long_function_check_sees_length_and_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    body = "".join(f"    x{i} = {i}\n" for i in range(40))
    (tmp_path / "a.py").write_text(
        f"def short():\n    return 1\n\n\ndef bare():\n{body}\n\n"
        f"# over 40 lines: one table, read top to bottom\ndef reasoned():\n{body}\n\n"
        f"def huge():  # over 40 lines: no reason excuses 51\n{body}{body[:200]}")
    long, bad = long_functions([tmp_path / "a.py"])
    assert [n.split(":")[1].split()[0] for n in long] == ["bare", "reasoned", "huge"]
    assert [n.split(":")[1].split()[0] for n in bad] == ["bare", "huge"]


def test_size_check_counts_code_not_docstrings():
    fn = ast.parse('def f():\n    """doc\n\n    more"""\n    return 1\n').body[0]
    assert code_lines(fn) == 2


@pytest.mark.parametrize("path", [*MARL, *SCRIPTS, *sorted((ROOT / "tests").glob("*.py"))],
                         ids=rel)
def test_names_nothing_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for doc in (f"{name}.md" for name in ("DESIGN", "STYLE", "DEVELOPERS")):
        if doc in text and not (ROOT / doc).exists():
            pytest.fail(f"{rel(path)} cites {doc}, which is not in the repository")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(paths: list[Path]) -> dict[str, set[str]]:
    """Module -> the marl modules it imports at module level (``from marl.a import b``
    counts as marl.a.b when that is a module; ``if TYPE_CHECKING:`` blocks do not count)."""
    names = {_module_name(p): p for p in paths}
    graph = {}
    for name, path in names.items():
        out = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names
                        else node.module for a in node.names}
        graph[name] = {m for m in out if m in names and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    seen: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []
    cycles = []

    def visit(u: str) -> None:
        seen[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if seen.get(v) == 1:
                cycles.append([*path[path.index(v):], v])
            elif v not in seen:
                visit(v)
        path.pop()
        seen[u] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    return cycles


def test_no_import_circle_in_marl():
    assert import_cycles(import_graph(MARL)) == []


def test_the_circle_check_sees_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "marl"
    pkg.mkdir()
    (pkg / "a.py").write_text("from marl.b import x\n")
    (pkg / "b.py").write_text("import marl.a\nx = 1\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_cycles(import_graph(sorted(pkg.glob("*.py")))) == [
        ["marl.a", "marl.b", "marl.a"]]


STRATEGIES = sorted((ROOT / "marl" / "algos" / "coma").rglob("*.py"))
PRIVATE = re.compile(r"^_[a-z]")


def record_fields() -> set[str]:
    """The field names of the minibatch records: string keys that must not come back."""
    from dataclasses import fields

    from marl.algos.coma import critic_training, interfaces

    records = (interfaces.Minibatch, critic_training.CriticSamples,
               critic_training.ValueSamples)
    return {f.name for r in records for f in fields(r)} - {"critic"} | {
        "critic_loss", "critic_grad"}  # and the old ActorResult.extra keys


def _string_key(node: ast.AST | None, names: set[str]) -> bool:
    """``"obs"``, or an f-string starting with a name (``f"h0/{kind}"``)."""
    if isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        return isinstance(head, ast.Constant) and head.value.split("/")[0] in names
    return isinstance(node, ast.Constant) and node.value in names


def interface_violations(tree: ast.AST, names: set[str], strategy: bool = True
                         ) -> list[str]:
    """Where ``tree`` reads ``x._private`` of an object other than ``self``/``cls``, and
    (a ``strategy`` module) takes a ``learner`` argument or keys a dict by ``names``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and PRIVATE.match(node.attr) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"line {node.lineno}: private {ast.unparse(node)}")
        if not strategy:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            if any(p.arg == "learner" for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]):
                found.append(f"line {node.lineno}: {node.name}(learner, ...)")
        keys: list = []
        if isinstance(node, ast.Subscript):
            keys = [node.slice]
        elif isinstance(node, ast.Dict):
            keys = node.keys
        elif isinstance(node, ast.DictComp):
            keys = [node.key]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("get", "pop", "setdefault") and node.args:
            keys = [node.args[0]]
        if any(_string_key(k, names) for k in keys):
            found.append(f"line {node.lineno}: string-keyed {ast.unparse(node)[:40]}")
    return sorted(found, key=lambda f: int(f.split()[1].rstrip(":")))


@pytest.mark.parametrize("path", sorted((ROOT / "marl" / "algos").rglob("*.py")), ids=rel)
def test_strategies_keep_their_typed_interfaces(path):
    found = interface_violations(ast.parse(path.read_text(encoding="utf-8")),
                                 record_fields(), strategy=path in STRATEGIES)
    assert not found, f"{rel(path)}: {found} (see marl.algos.coma.interfaces)"


def test_interface_check_sees_the_learner_a_dict_and_a_private_call():
    tree = ast.parse(
        "def fit(self, learner: Any, ro):\n    self._ok = ro._private\n"
        "d = {'obs': 1}\nv = d['mask'] + d.get('adv') + x.q['central_q']\n"
        "m = {f'loss/{k}': 1, f'h0/{k}': 2}\nr = {f'ret/{k}': t for k, t in q}\n")
    found = interface_violations(tree, {"obs", "mask", "adv", "h0", "ret"})
    assert [f.split(": ")[1].split()[0] for f in found] == [
        "fit(learner,", "private", *["string-keyed"] * 5]
    assert interface_violations(tree, {"obs"}, strategy=False) == [
        "line 2: private ro._private"]
