"""MkDocs hook: ``<!-- docstring: marl.x.y -->`` in a page becomes that module's docstring.

The algorithm and env pages quote the module docstrings (the equations, the deviations
from the papers, the env rules) instead of copying them, so they follow the code. The
docstring is read from the source with ``ast`` (nothing is imported) and its Sphinx roles
become cross-references (sphinx_roles.convert). A marker naming a module that does not
exist, or one without a docstring, fails the build.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sphinx_roles import convert  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*docstring:\s*([\w.]+)\s*-->")


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
