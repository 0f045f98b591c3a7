"""Pages generated at build time (mkdocs-gen-files): they follow the code, never hand-edited.

* ``reference/``: one page per module of ``marl/`` (walked recursively), each
  ``::: marl.<module>`` for mkdocstrings, a landing page listing the packages and the
  top-level modules with one line each (their docstrings' first paragraphs), and the
  navigation (literate-nav SUMMARY.md);
* ``configuration.md``: every config dataclass (``marl.config``, the env schemas of
  ``marl.envs.ENV_CONFIGS``) as a table of key, type, default and the field's docstring,
  and the options of every config group of ``conf/``;
* ``results/``: the experiment pages (``experiments/**``) with links that leave
  ``experiments/`` turned into repository paths;
* ``changelog.md``: CHANGELOG.md.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sphinx_roles import convert  # noqa: E402


# ---------------------------------------------------------------- API reference
def module_names() -> list[tuple[str, ...]]:
    """Dotted parts of every module and package of marl/, sorted."""
    out = []
    for path in sorted((ROOT / "marl").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append(parts[:-1] if parts[-1] == "__init__" else parts)
    return sorted(out)


def write_reference() -> None:
    nav = mkdocs_gen_files.Nav()
    for parts in module_names():
        is_pkg = (ROOT.joinpath(*parts) / "__init__.py").is_file()
        doc = Path(*parts, "index.md") if is_pkg else Path(*parts).with_suffix(".md")
        # a dunder name's underscores as entities, or Markdown reads __main__ as bold "main"
        nav[tuple(p.replace("_", "&#95;") if p.startswith("__") else p for p in parts)] = \
            doc.as_posix()
        with mkdocs_gen_files.open(Path("reference", doc), "w") as f:
            f.write(f"::: {'.'.join(parts)}\n")
        src = Path(*parts, "__init__.py") if is_pkg else Path(*parts).with_suffix(".py")
        mkdocs_gen_files.set_edit_path(Path("reference", doc), Path("..", src))
    with mkdocs_gen_files.open("reference/index.md", "w") as f:
        f.write(api_landing())
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as f:
        f.writelines(["* [Overview](index.md)\n", *nav.build_literate_nav()])


def summary_line(parts: tuple[str, ...]) -> str:
    """The first paragraph of a module's docstring, on one line, its roles as links."""
    path = ROOT.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    module = ".".join(parts)
    line = cell(doc.split("\n\n")[0])
    return convert(line, module, module if path.name == "__init__.py" else None)


def api_landing() -> str:
    """reference/index.md: every package of marl/, then every top-level module, with the
    first paragraph of its docstring."""
    names = module_names()
    packages = [p for p in names if (ROOT.joinpath(*p) / "__init__.py").is_file()]
    modules = [p for p in names if len(p) == 2 and p not in packages]

    def rows(items: list[tuple[str, ...]]) -> list[str]:
        out = ["| module | what it holds |", "|---|---|"]
        for parts in items:
            page = "/".join(parts) + ("/index.md" if parts in packages else ".md")
            out.append(f"| [`{'.'.join(parts)}`]({page}) | {summary_line(parts)} |")
        return out

    return "\n".join(["# API reference", "",
                      "One page per module of `marl/`, generated from its docstrings. The "
                      "packages, then the modules at the top (the entry points among them); "
                      "each line is the first paragraph of the module's docstring.", "",
                      "## Packages", "", *rows(packages), "",
                      "## Top-level modules", "", *rows(modules), ""])


# ---------------------------------------------------------- configuration reference
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the attribute docstring under it in the source, over cls's MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return value if not dataclasses.is_dataclass(value) else "(section below)"
    return "(required)"


def ref(cls: type) -> str:
    ident = f"{cls.__module__}.{cls.__qualname__}"
    return f'<autoref identifier="{ident}" optional><code>{cls.__qualname__}</code></autoref>'


def table(cls: type, prefix: str, out: list[str], seen: set[type]) -> None:
    """Append the section of ``cls`` (keys under ``prefix``), then its nested sections."""
    seen.add(cls)
    doc = inspect.cleandoc(cls.__doc__ or "")
    out += [f"### `{prefix.rstrip('.') or '(root)'}`", "",
            f"Schema: {ref(cls)}. {cell(doc)}", "",
            "| key | type | default | what it is |", "|---|---|---|---|"]
    docs, nested = field_docs(cls), []
    for f in dataclasses.fields(cls):
        default = default_of(f)
        out.append(f"| `{prefix}{f.name}` | `{cell(str(f.type))}` | "
                   f"`{cell(repr(default))}` | {cell(docs.get(f.name, ''))} |")
        factory = f.default_factory  # type: ignore[misc]
        if isinstance(factory, type) and dataclasses.is_dataclass(factory):
            nested.append((factory, f"{prefix}{f.name}."))
    out.append("")
    for sub, sub_prefix in nested:
        table(sub, sub_prefix, out, seen)


def config_groups() -> list[str]:
    out = ["## Config groups", "",
           "Pick one option of a group with `<group>=<option>` (an experiment with "
           "`+experiment=<option>`); the options are the YAML files of `conf/`.", "",
           "| group | options |", "|---|---|"]
    for group in sorted(p for p in (ROOT / "conf").rglob("*") if p.is_dir()):
        names = sorted(p.stem for p in group.glob("*.yaml"))
        if names:
            rel = group.relative_to(ROOT / "conf").as_posix()
            out.append(f"| `{rel}` | {', '.join(f'`{n}`' for n in names)} |")
    return out + [""]


def write_configuration() -> None:
    import marl.config as mc
    from marl.envs import ENV_CONFIGS

    try:  # learner families, each with its own config schema (``algo.learner``)
        from marl.algos import LEARNERS
    except ImportError:
        LEARNERS = {}

    out = ["# Configuration reference", "",
           "Generated from the config dataclasses at build time: every key, its type, its "
           "default and the docstring the field has in the source. A run's values come from "
           "`conf/` (YAML) merged into these schemas, then the command line's overrides "
           "(`key=value`); a misspelt key, a wrong type or an out-of-range value stops the run "
           "before anything is written, naming the key and what is allowed.", "",
           *config_groups(), "## The run", ""]
    seen: set[type] = set()
    table(mc.Config, "", out, seen)
    if LEARNERS:
        out += ["## Learners", "",
                "`algo=<option>` picks a YAML of `conf/algo/`, typed by the config schema of "
                "its learner family (`algo.learner`, a row of `marl.algos.LEARNERS`):", ""]
        for name, family in sorted(LEARNERS.items()):
            out += [f"#### algo.learner: `{name}`", ""]
            table(family.config, "algo.", out, seen)
    out += ["## Environments", "",
            "`env=<option>` picks a YAML of `conf/env/`, typed by the schema of its "
            "`env.name`:", ""]
    for name, cls in sorted(ENV_CONFIGS.items()):
        out += [f"#### env.name: `{name}`", ""]
        table(cls, "env.", out, seen)
    others = sorted((c for _, c in inspect.getmembers(mc, inspect.isclass)
                     if dataclasses.is_dataclass(c) and c.__module__ == mc.__name__
                     and c not in seen), key=lambda c: c.__name__)
    if others:
        out += ["## Other config sections", ""]
        for cls in others:
            table(cls, f"{cls.__name__}: ", out, seen)
    with mkdocs_gen_files.open("configuration.md", "w") as f:
        f.write("\n".join(out).replace("### `env.`", "### `env`")
                .replace("### `algo.`", "### `algo`") + "\n")


# ------------------------------------------------------------------- results pages
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def dest(rel: str) -> str:
    """Site path of ``experiments/<...>``: under results/, the index as results/index.md."""
    return "results/index.md" if rel == "experiments/README.md" else \
        "results/" + rel.removeprefix("experiments/")


def fix_links(text: str, src: str, files: set[str]) -> str:
    """Links of experiments/<...>/<file>: to another file of experiments/ follow it to its
    site path, to the top README go to the site's home, any other become repository paths."""
    here, site_here = posixpath.dirname(src), posixpath.dirname(dest(src))

    def sub(m: re.Match[str]) -> str:
        label, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+:|^#|^/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo = posixpath.normpath(posixpath.join(here, path))
        if repo.rstrip("/") + "/README.md" in files:
            repo = repo.rstrip("/") + "/README.md"
        suffix = f"#{anchor}" if anchor else ""
        if repo in files:
            return f"{label}({posixpath.relpath(dest(repo), site_here)}{suffix})"
        if repo == "README.md":
            return f"{label}({posixpath.relpath('index.md', site_here)})"
        text = label[2:-1] if label.startswith("!") else label[1:-1]
        return f"{text} (`{repo}`)"

    return LINK.sub(sub, text)


def write_results() -> None:
    exp = ROOT / "experiments"
    files = {p.relative_to(ROOT).as_posix() for p in exp.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    for rel in sorted(files):
        if rel.endswith(".md"):
            text = fix_links((ROOT / rel).read_text(encoding="utf-8"), rel, files)
            with mkdocs_gen_files.open(dest(rel), "w") as f:
                f.write(text)
        else:
            with mkdocs_gen_files.open(dest(rel), "wb") as f:
                f.write((ROOT / rel).read_bytes())
    studies = sorted(p.parent.relative_to(exp).as_posix() for p in exp.glob("*/README.md"))
    if "experiments/README.md" not in files:
        with mkdocs_gen_files.open("results/index.md", "w") as f:
            f.write("# Results\n\nOne page per study: commands, results, plots.\n\n"
                    + "\n".join(f"* [{s}]({s}/README.md)" for s in studies) + "\n")
    with mkdocs_gen_files.open("results/SUMMARY.md", "w") as f:
        f.write("\n".join(["* [Overview](index.md)", *results_nav(exp, exp, 0)]) + "\n")


def _title(page: Path) -> str:
    """A page's first ``# `` heading, else its file name."""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip().replace("[", "(").replace("]", ")")
    return page.stem


def results_nav(exp: Path, folder: Path, depth: int) -> list[str]:
    """Every page of ``experiments/`` in the nav (literate-nav lines, relative to
    results/): a section per folder, its README first, then its other pages, then its
    subfolders with pages."""
    pad, lines = "    " * depth, []
    pages = sorted(folder.glob("*.md"), key=lambda p: (p.name != "README.md", p.name))
    for page in pages:
        if page.parent == exp and page.name == "README.md":
            continue  # the overview
        lines.append(f"{pad}* [{_title(page)}]({page.relative_to(exp).as_posix()})")
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        inner = results_nav(exp, sub, depth + 1)
        if inner:
            lines += [f"{pad}* {sub.name}", *inner]
    return lines

write_reference()
write_configuration()
write_results()
with mkdocs_gen_files.open("changelog.md", "w") as _f:
    _f.write((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
