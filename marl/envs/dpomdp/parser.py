"""The ``.dpomdp`` text format of the MADP toolbox: a loader of discrete Dec-POMDPs.

The format is the one MADP's ``problems/example.dpomdp`` documents (shipped in
``problems/``). A file is read line by line; ``#`` starts a comment that runs to the end
of the line, blank lines are skipped. It holds a preamble, exactly once each and in
this order::

    agents: 2                       (a count, or agent names)
    discount: 1.0                   (stored, not used: episodes sum rewards undiscounted)
    values: reward                  (or cost: the rewards are then the negated entries)
    states: tiger-left tiger-right  (a count, or state names)
    start: ...                      (see below)
    actions:                        (then one line per agent: a count, or action names)
    observations:                   (then one line per agent: a count, or observation names)

``start`` is one of ``start: <state>`` (a name or an index), ``start:`` followed by a
line ``uniform`` or a line of |S| probabilities (also accepted on the ``start:`` line),
``start include: <states>`` (uniform over them) or ``start exclude: <states>``
(uniform over the others).

Then any number of entries, a later one overwriting what an earlier one set::

    T: <ja> : <s> : <s'> : p         T: <ja> : <s> :   + a row of |S| numbers, or uniform
    T: <ja> :  + |S| rows of |S| numbers (row s, column s'), or uniform, or identity
    O: <ja> : <s'> : <jo> : p        O: <ja> : <s'> :  + a row of |JO| numbers, or uniform
    O: <ja> :  + |S| rows of |JO| numbers (row s', column jo), or uniform
    R: <ja> : <s> : <s'> : <jo> : r  R: <ja> : <s> : <s'> :  + a row of |JO| numbers
    R: <ja> : <s> :  + |S| rows of |JO| numbers (row s', column jo)

A state is a name, an index or ``*`` (every state). A joint action ``<ja>`` is ``*``,
a joint-action index, or one individual action per agent (a name, an index or ``*``);
joint observations ``<jo>`` likewise. Joint indices enumerate individual indices with
the last agent fastest (``np.ravel_multi_index`` order). Numbers may carry a sign and
an exponent. Entries never set are 0.

After the file, every row of T (``T(.|s, ja)``) and of O (``O(.|ja, s')``) must sum to
1 within :data:`PROB_TOL` (then it is renormalised). Anything else is a
:class:`DPOMDPParseError`, one line ``<file>:<line>: expected ...``.

Rewards that depend on the end state or the joint observation are kept as the full
table ``R(s, ja, s', jo)`` (the env pays the realised entry); :attr:`DecPOMDP.reward`
is always the expectation ``R(s, ja) = sum_{s', jo} T O R(s, ja, s', jo)``.

Differences from MADP's own parser: a joint action or observation needs either one
token (``*`` or a joint index) or exactly one token per agent (MADP also takes any
number of ``*`` for observations); a single action name is a joint action only with
one agent; out-of-range indices and duplicate names are errors; and R entries keep
"a later entry overwrites" semantics for every form (MADP adds end-state specific
rewards onto R(s, ja) with the T and O known at that point of the file).
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from marl.envs.dpomdp.entries import MAX_FULL_REWARD, EntryParser
from marl.envs.dpomdp.model import PROB_TOL, DecPOMDP, DPOMDPParseError
from marl.envs.dpomdp.reader import INT, NAME, LineReader
from marl.schema import ConfigError

__all__ = ["MAX_FULL_REWARD", "PROB_TOL", "DPOMDPParseError", "DecPOMDP", "load",
           "load_cached", "parse", "problem_name"]

_PREAMBLE = ("agents", "discount", "values", "states", "start", "actions", "observations")


def _read_text(path: Path) -> str:
    """The text of ``path``, gunzipped when it is gzip data (whatever its name)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the .dpomdp file ({e.strerror or e})") from e
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ConfigError(f"{path}: not a valid gzip file ({e})") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DPOMDPParseError(str(path), line, "UTF-8 text") from None


def problem_name(path: str | os.PathLike) -> str:
    """``dir/GridSmall.dpomdp.gz`` -> ``GridSmall``."""
    name = Path(path).name
    for suffix in (".gz", ".dpomdp"):
        name = name.removesuffix(suffix)
    return name


def load(path: str | os.PathLike, strict: bool = True) -> DecPOMDP:
    """Parse the ``.dpomdp`` (or gzipped ``.dpomdp.gz``) file at ``path``.

    Args:
        path: the file.
        strict: check that every row of T and O sums to 1 (and renormalise them);
            False only for inspecting syntax examples whose numbers are not a model.

    Raises:
        DPOMDPParseError: ``<file>:<line>: expected ...`` for anything that does not parse.
        ConfigError: when the file cannot be read.
    """
    path = Path(path)
    return parse(_read_text(path), source=str(path), name=problem_name(path), strict=strict)


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> DecPOMDP:
    return load(path)


def load_cached(path: str | os.PathLike) -> DecPOMDP:
    """:func:`load` (strict), parsed once per file version (path, mtime, size)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the .dpomdp file ({e.strerror or e})") from e
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


def parse(text: str, source: str = "<string>", name: str | None = None,
          strict: bool = True) -> DecPOMDP:
    """Parse ``.dpomdp`` text (see the module docstring); ``source`` names it in errors."""
    return Parser(text, source, name or problem_name(source), strict).run()


class Parser(EntryParser, LineReader):
    """One pass over the logical (non-blank, comment-free) lines of one file: the
    preamble here, the entries in :class:`~marl.envs.dpomdp.entries.EntryParser`, the
    lines and their tokens in :class:`~marl.envs.dpomdp.reader.LineReader`."""

    def __init__(self, text: str, source: str, name: str, strict: bool) -> None:
        super().__init__(text, source)
        self.name, self.strict = name, strict

    # ------------------------------------------------------------------ preamble
    def header(self, key: str) -> tuple[int, str, str]:
        """The next line as (line, key, rest) where it starts with ``key ... :``."""
        order = ", ".join(_PREAMBLE)
        no, body = self.take(f"'{key}:' (the preamble is {order}, in this order)")
        k, sep, rest = body.partition(":")
        k = " ".join(k.split())
        if not sep or k.split(" ")[0] != key:
            raise self.fail(no, f"'{key}:' (the preamble is {order}, in this order), "
                                f"got {body!r}")
        return no, k, rest.strip()

    def run(self) -> DecPOMDP:
        no, _, rest = self.header("agents")
        self.agents = self.names_or_count(no, rest, "agent", "agent_{}")
        self.n = len(self.agents)
        no, _, rest = self.header("discount")
        toks = rest.split()
        if len(toks) != 1:
            raise self.fail(no, f"'discount: <number>', got {rest!r}")
        self.discount = self.number(no, toks[0], "a discount factor")
        no, _, rest = self.header("values")
        if rest not in ("reward", "cost"):
            raise self.fail(no, f"'values: reward' or 'values: cost', got {rest!r}")
        self.cost = rest == "cost"
        no, _, rest = self.header("states")
        self.states = self.names_or_count(no, rest, "state", "{}")
        self.S = len(self.states)
        self.state_ix = {s: i for i, s in enumerate(self.states)}
        self.start = self.parse_start()
        self.actions = self.per_agent("actions", "action")
        self.observations = self.per_agent("observations", "observation")
        self.action_ix = [{a: i for i, a in enumerate(acts)} for acts in self.actions]
        self.obs_ix = [{o: i for i, o in enumerate(obs)} for obs in self.observations]
        self.A = tuple(len(a) for a in self.actions)
        self.Z = tuple(len(o) for o in self.observations)
        self.JA, self.JO = math.prod(self.A), math.prod(self.Z)
        S, JA, JO = self.S, self.JA, self.JO
        self.T = np.zeros((S, JA, S))
        self.O = np.zeros((JA, S, JO))
        self.t_line = np.zeros((S, JA), np.int64)
        self.o_line = np.zeros((JA, S), np.int64)
        self.r_ops: list[tuple] = []
        while self.peek() is not None:
            self.entry()
        return self.finish()

    def parse_start(self) -> np.ndarray:
        no, key, rest = self.header("start")
        S = self.S
        if key in ("start include", "start exclude"):
            toks = rest.split()
            if not toks:
                raise self.fail(no, f"'{key}: <states>' with at least one state")
            chosen = np.zeros(S, bool)
            for t in toks:
                if t == "*":
                    raise self.fail(no, f"state names or indices after '{key}:', got '*'")
                chosen[self.states_of(no, t)] = True
            if key == "start exclude":
                chosen = ~chosen
            if not chosen.any():
                raise self.fail(no, "at least one start state left after 'start exclude:'")
            return chosen / chosen.sum()
        if key != "start":
            raise self.fail(no, f"'start:', 'start include:' or 'start exclude:', got {key!r}")
        toks = rest.split()
        if not toks:  # the distribution follows on the next line
            no, body = self.take("'uniform' or a row of start probabilities after 'start:'")
            toks = body.split()
            if toks == ["uniform"]:
                return np.full(S, 1.0 / S)
        elif len(toks) == 1 and (INT.match(toks[0]) or NAME.match(toks[0])):
            b0 = np.zeros(S)
            b0[self.states_of(no, toks[0])] = 1.0
            return b0
        if len(toks) != S:
            raise self.fail(no, f"'uniform' or {S} start probabilities (one per state), got "
                                f"{len(toks)} value(s)")
        b0 = np.array([self.prob(no, t) for t in toks])
        if abs(b0.sum() - 1.0) > PROB_TOL:
            raise self.fail(no, f"start probabilities that sum to 1, got {b0.sum():.9g}")
        return b0 / b0.sum()

    def per_agent(self, key: str, what: str) -> tuple[tuple[str, ...], ...]:
        no, _, rest = self.header(key)
        if rest:
            raise self.fail(no, f"nothing after '{key}:' (one line per agent follows)")
        out = []
        for i in range(self.n):
            no, body = self.take(f"the {what}s of agent {i} ({self.agents[i]}) on a line "
                                 f"of their own after '{key}:'")
            if ":" in body:
                raise self.fail(no, f"the {what}s of agent {i} ({self.agents[i]}): one line "
                                    f"per agent ({self.n}) after '{key}:', got {body!r}")
            out.append(self.names_or_count(no, body, what, "{}"))
        return tuple(out)

    # ------------------------------------------------------------------ indices
    def states_of(self, no: int, tok: str) -> np.ndarray:
        """The state indices ``tok`` (a name, an index or ``*``) stands for."""
        if tok == "*":
            return np.arange(self.S)
        if INT.match(tok):
            if int(tok) < self.S:
                return np.array([int(tok)])
            raise self.fail(no, f"a state index in 0..{self.S - 1}, got {tok}")
        if tok in self.state_ix:
            return np.array([self.state_ix[tok]])
        raise self.fail(no, f"a state (an index 0..{self.S - 1}{_names_hint(self.states)} "
                            f"or '*'), got {tok!r}")

    def joint(self, no: int, field: str, kind: str) -> np.ndarray:
        """The joint indices a joint action (``kind='action'``) or joint observation
        field stands for."""
        sizes, lookup, names = ((self.A, self.action_ix, self.actions) if kind == "action"
                                else (self.Z, self.obs_ix, self.observations))
        total = math.prod(sizes)
        toks = field.split()
        form = (f"a joint {kind}: '*', a joint {kind} index 0..{total - 1} or {self.n} "
                f"individual {kind}s (names, indices or '*', one per agent)")
        if not toks:
            raise self.fail(no, f"{form}, got nothing")
        if len(toks) == 1 and (self.n > 1 or toks[0] == "*" or INT.match(toks[0])):
            if toks[0] == "*":
                return np.arange(total)
            if INT.match(toks[0]) and int(toks[0]) < total:
                return np.array([int(toks[0])])
            raise self.fail(no, f"{form}, got {field.strip()!r}")
        if len(toks) != self.n:
            raise self.fail(no, f"{form}, got {len(toks)} tokens {field.strip()!r}")
        per_agent = []
        for i, tok in enumerate(toks):
            k = sizes[i]
            if tok == "*":
                per_agent.append(range(k))
            elif INT.match(tok) and int(tok) < k:
                per_agent.append([int(tok)])
            elif tok in lookup[i]:
                per_agent.append([lookup[i][tok]])
            else:
                raise self.fail(no, f"{_a(kind)} of agent {i} ({self.agents[i]}): an index "
                                    f"0..{k - 1}{_names_hint(names[i])} or '*', got {tok!r}")
        combos = np.array(list(itertools.product(*per_agent)), np.int64)
        return np.ravel_multi_index(tuple(combos.T), sizes).astype(np.int64)



def _a(word: str) -> str:
    """``word`` with its indefinite article."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _names_hint(names: tuple[str, ...]) -> str:
    """``, a name of ['a', 'b']`` for named items; nothing for unnamed (index) ones."""
    named = [n for n in names if not n.isdigit()]
    if not named:
        return ""
    shown = named[:8]
    more = ", ..." if len(named) > 8 else ""
    return ", a name of [" + ", ".join(repr(n) for n in shown) + more + "]"
