"""``python -m marl`` (or the ``marl`` console script): the version and the entry points.

``python -m marl --version`` prints ``marl <version>``; without arguments (or with
``--help``) it lists the entry points. Anything else is an error (exit status 2).
"""

from __future__ import annotations

import sys

import marl

ENTRY_POINTS = (
    ("python -m marl.train", "marl-train", "train: Hydra overrides, e.g. +experiment=coma_boxpush"),
    ("python -m marl.evaluate", "marl-evaluate", "greedy evaluation of a run: run_dir=<dir>"),
    ("python -m marl.bench", "", "throughput and memory benchmarks (--help)"),
    ("python -m marl", "marl", "this help; --version"),
)
"""(module command, console script, what it does) of every entry point."""


def usage() -> str:
    """The help text: the version and one line per entry point."""
    lines = [f"marl {marl.__version__}: multi-agent reinforcement learning centred on COMA",
             "", "entry points:"]
    for module, script, what in ENTRY_POINTS:
        alias = f" ({script})" if script else ""
        lines.append(f"  {module}{alias}\n      {what}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the version or the help; exit status 0, or 2 for an unknown argument."""
    argv = sys.argv[1:] if argv is None else argv
    if argv in ([], ["-h"], ["--help"]):
        print(usage())
        return 0
    if argv in (["--version"], ["-V"]):
        print(f"marl {marl.__version__}")
        return 0
    print(f"error: unknown argument(s) {' '.join(argv)!r}: use --version or --help",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
