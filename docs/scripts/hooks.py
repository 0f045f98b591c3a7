"""MkDocs hooks: ``<!-- docstring: marl.x.y -->`` in a page becomes that module's
docstring; the maths pymdownx.arithmatex marks (``$...$``, ``$$...$$``) becomes MathML.

The algorithm and env pages quote the module docstrings (the equations, the deviations
from the papers, the env rules) instead of copying them, so they follow the code. The
docstring is read from the source with ``ast`` (nothing is imported) and its Sphinx roles
become cross-references (sphinx_roles.convert). A marker naming a module that does not
exist, or one without a docstring, fails the build.

Maths is rendered at build time (latex2mathml), into MathML that browsers draw natively:
the site needs no JavaScript and no web font for it, and reads the same offline. The
arithmatex element (``span``/``div`` of class ``arithmatex``) stays around it. A formula
latex2mathml cannot read fails the build, naming the page.

The literate-nav files (``reference/SUMMARY.md``, ``results/SUMMARY.md``, written by
gen_pages.py) are the nav, not pages: once literate-nav has read them they are dropped, so
the site holds no orphan ``SUMMARY/`` page.
"""

from __future__ import annotations

import ast
import html
import re
import sys
from pathlib import Path
from typing import Any

from properdocs.plugins import event_priority

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sphinx_roles import convert  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*docstring:\s*([\w.]+)\s*-->")
# pymdownx.arithmatex with generic: true: \(...\) inline in a span, \[...\] in a div
MATH = re.compile(r'<(span|div) class="arithmatex">\s*\\([(\[])(.*?)\\[)\]]\s*</\1>', re.S)


@event_priority(-200)  # after literate-nav's on_files (-100), which reads the nav files
def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    nav_file = config.plugins["literate-nav"].config.nav_file
    for file in [f for f in files if f.src_uri.rpartition("/")[2] == nav_file]:
        files.remove(file)
    return files


def module_docstring(module: str) -> str:
    path = ROOT.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    if not path.is_file():
        raise ValueError(f"docstring marker: no module {module} ({path})")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not doc:
        raise ValueError(f"docstring marker: module {module} has no docstring")
    return convert(doc, module, module if path.name == "__init__.py" else None)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda m: module_docstring(m.group(1)), markdown)


def mathml(match: re.Match[str], page: str) -> str:
    from latex2mathml.converter import convert

    tag, opening, tex = match.groups()
    try:
        rendered = convert(html.unescape(tex).strip(),
                           display="block" if opening == "[" else "inline")
    except Exception as e:  # noqa: BLE001 - any parse failure fails the build, named
        raise ValueError(f"{page}: cannot render the maths {tex!r}: {e}") from e
    return f'<{tag} class="arithmatex">{rendered}</{tag}>'


def on_page_content(content: str, page: Any, **kwargs: Any) -> str:
    return MATH.sub(lambda m: mathml(m, page.file.src_uri), content)
