"""Sphinx roles in docstrings (:func:`x`, :class:`~a.b.C`, :mod:`m`, ...) as cross-references.

The docstrings of marl use Sphinx's roles; mkdocstrings would show them as literal text.
This griffe extension turns each into an *optional* autorefs link: a target that the API
reference renders becomes a link, any other one plain code, never a warning. A bare name
is looked up in the module of the docstring (``:func:`to_config``` in marl.config means
``marl.config.to_config``); ``~`` shows the last component only.

A second extension, FieldComments, gives a class attribute without a docstring (most
dataclass fields outside the config schemas) its source comment as docstring.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|obj|exc|const):`(~?)([^`<]+?)"
                  r"(?:\s*<([^>`]+)>)?`")


def convert(text: str, module: str, package: str | None = None) -> str:
    """``text`` with every Sphinx role replaced by an optional autoref (module: the dotted
    path bare names are looked up in; package: the one ``.name`` is relative to)."""

    def link(m: re.Match[str]) -> str:
        tilde, target, explicit = m.group(1), m.group(2).strip(), m.group(3)
        if explicit:  # :func:`title <target>`
            title, target = target, explicit.strip()
        else:
            title = target.rsplit(".", 1)[-1] if tilde else target
        target = target.removesuffix("()")
        if target.startswith("."):
            ident = f"{package or module.rpartition('.')[0]}{target}"
        elif target.split(".")[0] == "marl":
            ident = target
        else:
            ident = f"{module}.{target}"
        return (f'<autoref identifier="{html.escape(ident)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            mod = obj.module
            package = mod.path if mod.is_package else mod.path.rpartition(".")[0]
            obj.docstring.value = convert(obj.docstring.value, mod.path, package)


def field_comment(lines: list[str], lineno: int, endlineno: int) -> str | None:
    """The comment that documents the field at ``lineno`` (1-based) of ``lines``: its
    trailing ``# ...``, else the comment lines right above it."""
    import io
    import tokenize

    source = "\n".join(lines[lineno - 1:endlineno]) + "\n"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        tokens = []
    trailing = [t.string for t in tokens if t.type == tokenize.COMMENT]
    if trailing:
        return trailing[-1].lstrip("#").strip() or None
    above: list[str] = []
    for line in reversed(lines[:lineno - 1]):
        if not line.strip().startswith("#"):
            break
        above.insert(0, line.strip().lstrip("#").strip())
    return " ".join(above) or None


class FieldComments(griffe.Extension):
    """A class attribute (a dataclass field) without a docstring takes its comment as its
    docstring (``obs: Tensor  # [T+1, B, N, *O]``), so the API reference describes the
    field instead of showing an empty box. List it before SphinxRoles."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if (obj.docstring is None and obj.is_attribute and obj.parent is not None
                and obj.parent.is_class and obj.lineno and obj.filepath):
            lines = obj.lines_collection[obj.filepath]
            text = field_comment(lines, obj.lineno, obj.endlineno or obj.lineno)
            if text:
                obj.docstring = griffe.Docstring(text.replace("<", "&lt;"), lineno=obj.lineno,
                                                 parent=obj)
