"""The lines and tokens of a ``.dpomdp`` file: the layer under the grammar of
:mod:`marl.envs.dpomdp.parser`.

A file is read line by line; ``#`` starts a comment that runs to the end of the line,
blank lines are skipped. What is left are the logical lines, read in order through a
cursor (``peek`` / ``take``), and their tokens: integers, names, numbers (with a sign
and an exponent), probabilities, rows of numbers. A reader knows nothing of the model
the lines describe; every error it raises is a
:class:`~marl.envs.dpomdp.model.DPOMDPParseError` ``<file>:<line>: expected ...``.
"""

from __future__ import annotations

import re

import numpy as np

from marl.envs.dpomdp.model import PROB_TOL, DPOMDPParseError

INT = re.compile(r"\d+\Z")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*\Z")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


class LineReader:
    """A cursor over the logical (non-blank, comment-free) lines of one file, and the
    readers of the tokens on them."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines: list[tuple[int, str]] = []
        raw = text.splitlines()
        for no, line in enumerate(raw, 1):
            body = line.split("#", 1)[0].strip()
            if body:
                self.lines.append((no, body))
        self.last_no = max(len(raw), 1)
        self.pos = 0

    # ------------------------------------------------------------------ plumbing
    def fail(self, no: int, expected: str) -> DPOMDPParseError:
        return DPOMDPParseError(self.source, no, expected)

    def peek(self) -> tuple[int, str] | None:
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def take(self, expected: str) -> tuple[int, str]:
        line = self.peek()
        if line is None:
            raise self.fail(self.last_no, f"{expected}, got the end of the file")
        self.pos += 1
        return line

    def number(self, no: int, tok: str, what: str = "a number") -> float:
        if not NUMBER.match(tok):
            raise self.fail(no, f"{what}, got {tok!r}")
        return float(tok)

    def prob(self, no: int, tok: str) -> float:
        p = self.number(no, tok, "a probability")
        if not 0.0 <= p <= 1.0 + PROB_TOL:
            raise self.fail(no, f"a probability in [0, 1], got {tok}")
        return p

    def names_or_count(self, no: int, rest: str, what: str, default: str) -> tuple[str, ...]:
        toks = rest.split()
        if len(toks) == 1 and INT.match(toks[0]):
            n = int(toks[0])
            if n < 1:
                raise self.fail(no, f"at least one {what}, got {rest!r}")
            return tuple(default.format(i) for i in range(n))
        if not toks:
            raise self.fail(no, f"a number of {what}s or a list of {what} names")
        seen: set[str] = set()
        for t in toks:
            if not NAME.match(t):
                raise self.fail(no, f"a number of {what}s or {what} names (a letter, then "
                                    f"letters, digits, '_' or '-'), got {t!r}")
            if t in seen:
                raise self.fail(no, f"distinct {what} names, got {t!r} twice")
            seen.add(t)
        return tuple(toks)

    # ------------------------------------------------------------------ values
    def keyword(self, allowed: tuple[str, ...]) -> str | None:
        """Consume and return the next line if it is one of ``allowed`` alone."""
        line = self.peek()
        if line is not None and line[1] in allowed:
            self.pos += 1
            return line[1]
        return None

    def rows(self, no: int, n_rows: int, n_cols: int, probs: bool, what: str) -> np.ndarray:
        """The next ``n_rows`` lines of ``n_cols`` numbers each (the lines of numbers
        after the entry's line ``no``), as an ``[n_rows, n_cols]`` array."""
        got: list[tuple[int, list[str]]] = []
        while (line := self.peek()) is not None:
            toks = line[1].split()
            if not all(NUMBER.match(t) for t in toks):
                break
            got.append((line[0], toks))
            self.pos += 1
        if not got:
            nxt = self.peek()
            raise self.fail(nxt[0] if nxt else self.last_no,
                            f"{what} on the line(s) after line {no}")
        out = np.empty((n_rows, n_cols))
        for r, (rno, toks) in enumerate(got):
            if r >= n_rows:
                raise self.fail(rno, f"{what}: {n_rows} row(s), got a row {r + 1}")
            if len(toks) != n_cols:
                raise self.fail(rno, f"{what}: {n_cols} numbers per row, got {len(toks)}")
            out[r] = [self.prob(rno, t) if probs else self.number(rno, t) for t in toks]
        if len(got) != n_rows:
            raise self.fail(got[-1][0], f"{what}: {n_rows} row(s), got {len(got)}")
        return out
