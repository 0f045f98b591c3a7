"""The documentation site builds in strict mode and covers the code, and the README is short.

The site is built once (``properdocs build --strict``, with no warning, into a temporary
directory; skipped when the docs extra is not installed): then every public class and
function of every module of ``marl/`` (found with ``ast``, methods of public classes
included) must have its anchor in the API reference, and every key of the config
dataclasses its row in the configuration reference.
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
