"""The documentation site builds in strict mode and covers the code, and the README is short.

The site is built once (``properdocs build --strict``, with no warning, into a temporary
directory; skipped when the docs extra is not installed): then every public class and
function of every module of ``marl/`` (found with ``ast``, methods of public classes
included) must have its anchor in the API reference, every key of the config
dataclasses its row in the configuration reference, and every field of every dataclass
and NamedTuple of ``marl/`` a description (its docstring or its ``#`` comment).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    "pip install -e . && python -m marl.train +experiment=coma_boxpush",
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    'pip install -e ".[test]" && ruff check marl tests experiments && python -m pytest',
)


def public_names(path: Path) -> list[str]:
    """Public top-level classes and functions of a module, and the public methods of its
    public classes (``Class.method``)."""
    out = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("_"):
                continue
            out.append(node.name)
            if isinstance(node, ast.ClassDef):
                out += [f"{node.name}.{m.name}" for m in node.body
                        if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and not m.name.startswith("_")]
    return out


MARL_MODULES = sorted((ROOT / "marl").rglob("*.py"))


def page_of(path: Path, site: Path) -> tuple[str, Path]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts), site.joinpath("reference", *parts, "index.html")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    pytest.importorskip("properdocs", reason="the docs extra is not installed")
    env = {k: v for k, v in os.environ.items() if "MKDOCS_2_WARNING" not in k}
    proc = subprocess.run([sys.executable, "-m", "properdocs", "build", "--strict",
                           "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"properdocs build --strict failed:\n{proc.stderr[-4000:]}"
    # no warning for a reader to take for a failure, with no variable set to silence it
    assert "WARNING" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    return out


def test_every_public_class_and_function_is_in_the_api_reference(site: Path) -> None:
    missing = []
    modules = [p for p in sorted((ROOT / "marl").rglob("*.py")) if "__pycache__" not in p.parts]
    assert len(modules) > 40
    for path in modules:
        module, page = page_of(path, site)
        html = page.read_text(encoding="utf-8") if page.is_file() else ""
        if f'id="{module}"' not in html:
            missing.append(module)
        missing += [f"{module}.{n}" for n in public_names(path)
                    if f'id="{module}.{n}"' not in html]
    assert not missing, f"not in the API reference: {missing}"


def test_every_config_key_is_in_the_configuration_reference(site: Path) -> None:
    from marl.algos import LEARNERS
    from marl.config import Config
    from marl.envs import ENV_CONFIGS

    def keys(cls: type, prefix: str) -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            out.append(prefix + f.name)
            if isinstance(f.default_factory, type) and dataclasses.is_dataclass(
                    f.default_factory):
                out += keys(f.default_factory, f"{prefix}{f.name}.")
        return out

    html = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    expected = (keys(Config, "") + [k for c in ENV_CONFIGS.values() for k in keys(c, "env.")]
                + [k for f in LEARNERS.values() for k in keys(f.config, "algo.")])
    assert len(expected) > 100
    missing = [k for k in expected if f"<code>{k}</code>" not in html]
    assert not missing, f"not in the configuration reference: {missing}"


def test_algorithm_pages_quote_the_module_docstrings(site: Path) -> None:
    coma = (site / "algorithms" / "coma" / "index.html").read_text(encoding="utf-8")
    assert "Deliberate deviations from the paper" in coma
    assert "docstring:" not in coma  # every marker was replaced
    envs = (site / "envs" / "index.html").read_text(encoding="utf-8")
    assert "Initial positions. Every episode is solvable." in envs


def test_sphinx_roles_become_optional_cross_references() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    try:
        from sphinx_roles import convert
    finally:
        sys.path.pop(0)
    out = convert(":func:`to_config`, :class:`~marl.core.rollout.Rollout`, :mod:`.workers`",
                  "marl.config", "marl.envs.pettingzoo")
    assert re.findall(r'identifier="([^"]+)" optional><code>([^<]+)<', out) == [
        ("marl.config.to_config", "to_config"), ("marl.core.rollout.Rollout", "Rollout"),
        ("marl.envs.pettingzoo.workers", ".workers")]


def test_readme_fits_and_keeps_the_two_commands() -> None:
    assert len(README.splitlines()) <= 150
    for command in COMMANDS:
        assert command in README
    assert "3.11" in README and "properdocs serve" in README


def test_the_algorithm_pages_maths_is_rendered_mathml(site: Path) -> None:
    """arithmatex marks the maths and the build renders it as MathML (no TeX left for a
    renderer that an offline reader does not have)."""
    import re

    page = (site / "algorithms" / "coma" / "index.html").read_text(encoding="utf-8")
    blocks = re.findall(r'<div class="arithmatex">(.*?)</div>', page, re.S)
    inline = re.findall(r'<span class="arithmatex">(.*?)</span>', page, re.S)
    assert len(blocks) >= 4 and len(inline) >= 5, (len(blocks), len(inline))
    for element in blocks + inline:
        assert element.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"'), element
    assert all('display="block"' in b for b in blocks)
    assert "\\(" not in page and "\\[" not in page and "\\sum" not in page
    # the counterfactual baseline: a sum over a's actions, with the others' actions kept
    assert "&#x02211;" in blocks[1] and "&#x1D42E;" in blocks[1]


def test_a_dunder_module_keeps_its_name_in_the_nav(site: Path) -> None:
    """Markdown reads ``__main__`` as bold "main" (and the nav builder's escape left
    "_main_"): the API nav names it as it is."""
    import html
    import re

    page = (site / "reference" / "marl" / "report" / "index.html").read_text()
    link = re.search(r'href="\.\./__main__/" class="md-nav__link">(.*?)</a>', page, re.S)
    assert link is not None
    text = html.unescape(re.sub(r"<[^>]+>", "", link.group(1))).split()
    assert text == ["__main__"], text


def test_help_lists_the_config_groups_without_the_schemas() -> None:
    """``python -m marl.train --help`` (Hydra's help, composed as hydra.main does): every
    group of conf/ with its YAML options, and none of the internal ``<env>_schema``."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra

    from marl.build import CONF_DIR, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="config", return_hydra_config=True)
        text = GlobalHydra.instance().hydra.get_help(cfg.hydra.help, cfg, get_args_parser(),
                                                     resolve=False)
    groups = dict(line.split(": ", 1) for line in text.split("== Config ==")[0].splitlines()
                  if ": " in line)
    expected = {p.name: sorted(f.stem for f in p.glob("*.yaml"))
                for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"}
    assert set(groups) == set(expected), groups
    for group, options in expected.items():
        assert set(options) <= set(groups[group].split(", ")), group
    assert "plugin" in groups["env"].split(", ")
    assert "_schema" not in text


def nav_links(site: Path) -> dict[str, str]:
    """Site path (``reference/marl/``) -> the nav's label for it, read from the home page's
    sidebar (the theme renders the whole nav on every page)."""
    import html

    page = (site / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"#]*)"[^>]*class="md-nav__link[^"]*">(.*?)</a>', page,
                       re.S)
    return {href if href != "." else "": " ".join(html.unescape(re.sub(r"<[^>]+>", "", t))
                                                  .split()) for href, t in links}


def test_every_page_is_in_the_nav_and_named_as_its_module(site: Path) -> None:
    """No orphan page (the literate-nav SUMMARY.md files are read as the nav, not built),
    every nav link has its page, and an API page is named as its module."""
    pages = {("" if p.parent == site else p.parent.relative_to(site).as_posix() + "/")
             for p in site.rglob("index.html")}
    nav = nav_links(site)
    assert len(pages) > 100
    assert not [p for p in pages if "SUMMARY" in p]
    assert sorted(pages - set(nav)) == [], "built but not in the nav"
    assert sorted(set(nav) - pages) == [], "in the nav but not built"
    for href, label in nav.items():
        parts = href.strip("/").split("/")
        if href.startswith("reference/marl/"):
            assert label == parts[-1], (href, label)


def test_the_api_landing_page_lists_every_package_with_its_docstring(site: Path) -> None:
    page = (site / "reference" / "index.html").read_text(encoding="utf-8")
    rows = dict(re.findall(r'<tr>\s*<td><a href="([^"]+)"><code>[^<]+</code></a></td>\s*'
                           r"<td>(.*?)</td>", page, re.S))
    packages = sorted(p.parent for p in (ROOT / "marl").rglob("__init__.py"))
    assert len(packages) >= 10
    for pkg in packages:
        href = pkg.relative_to(ROOT).as_posix() + "/"
        assert href in rows, f"{href} not on the API landing page"
        first = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text()))
        words = re.sub(r"<[^>]+>", "", rows[href]).split()
        assert words and words[0] == first.split()[0].replace("`", ""), (href, words[:3])
    assert (site / "reference" / "marl" / "train" / "index.html").is_file()
    assert 'href="marl/train/"' in page  # the top-level modules too


def record_classes(body: list[ast.stmt], prefix: str = "") -> list[tuple[str, ast.ClassDef]]:
    """(dotted name, node) of every public dataclass and NamedTuple in ``body``, those
    nested in public classes too (``Outer.Inner``): the classes whose fields the API
    reference renders as attributes."""
    out = []
    for node in body:
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        name = prefix + node.name
        if any("dataclass" in ast.unparse(d) for d in node.decorator_list) or any(
                ast.unparse(b).rsplit(".", 1)[-1] == "NamedTuple" for b in node.bases):
            out.append((name, node))
        out += record_classes(node.body, f"{name}.")
    return out


def dataclass_fields(path: Path) -> list[tuple[str, str, bool]]:
    """(class, field, described in the source) for every field of every public dataclass
    and NamedTuple of a module (ClassVars are not fields). Described: a docstring under
    the field, or the comment that docs/scripts/sphinx_roles.py FieldComments turns into
    its docstring (a trailing ``# ...``, else the comment lines right above)."""
    sys.path.insert(0, str(ROOT / "docs" / "scripts"))
    try:
        from sphinx_roles import field_comment
    finally:
        sys.path.pop(0)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for cls, node in record_classes(ast.parse("\n".join(lines)).body):
        for field, nxt in zip(node.body, [*node.body[1:], None], strict=True):
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and (
                    "ClassVar" not in ast.unparse(field.annotation)):
                doc = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and \
                    isinstance(nxt.value.value, str) and bool(nxt.value.value.strip())
                comment = field_comment(lines, field.lineno, field.end_lineno or field.lineno)
                out.append((cls, field.target.id, doc or bool(comment)))
    return out


BARE_FIELDS_PENDING: set[str] = set()
"""Fields allowed to stay bare for now (none: a stale entry fails)."""


def bare_fields() -> tuple[list[str], int]:
    """``module.Class.field`` of every dataclass / NamedTuple field of ``marl/`` with no
    description in the source, and how many fields there are."""
    bare, count = [], 0
    for path in (p for p in MARL_MODULES if "__pycache__" not in p.parts):
        module = page_of(path, ROOT)[0]
        for cls, name, described in dataclass_fields(path):
            count += 1
            if not described:
                bare.append(f"{module}.{cls}.{name}")
    return bare, count


def test_every_dataclass_field_is_described_in_the_source() -> None:
    """Every field of every public dataclass and NamedTuple of ``marl/`` (config schemas
    or not) has a docstring or a field comment: none renders as an empty box."""
    bare, count = bare_fields()
    assert count > 250
    new = sorted(set(bare) - BARE_FIELDS_PENDING)
    assert not new, ("fields with neither a docstring nor a # comment (their API entry is "
                     f"an empty box): {new}")
    stale = sorted(BARE_FIELDS_PENDING - set(bare))
    assert not stale, f"described now: remove them from BARE_FIELDS_PENDING: {stale}"


def test_dataclass_fields_are_described_in_the_api_reference(site: Path) -> None:
    """Each field of a public dataclass or NamedTuple of ``marl/`` has its entry on its
    module's API page with a description: its docstring, or its source comment where it
    has none (docs/scripts/sphinx_roles.py FieldComments), not an empty box."""
    empty, count = [], 0
    for path in (p for p in MARL_MODULES if "__pycache__" not in p.parts):
        module, page_path = page_of(path, site)
        page = page_path.read_text(encoding="utf-8")
        for cls, name, _ in dataclass_fields(path):
            count += 1
            entry = page.partition(f'id="{module}.{cls}.{name}"')[2]
            entry = entry.partition('<div class="doc doc-object ')[0]
            if len(re.sub(r"<[^>]+>", "", entry.partition("doc-contents")[2]).split()) < 2:
                empty.append(f"{module}.{cls}.{name}")
    assert count > 250
    empty = sorted(set(empty) - BARE_FIELDS_PENDING)
    assert not empty, f"fields without a description in the API reference: {empty}"
