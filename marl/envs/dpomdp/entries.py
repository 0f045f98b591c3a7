"""The T, O and R entries of a ``.dpomdp`` file and the model they make (the grammar:
:mod:`marl.envs.dpomdp.parser`)."""

from __future__ import annotations

import numpy as np

from marl.envs.dpomdp.model import PROB_TOL, DecPOMDP

MAX_FULL_REWARD = 50_000_000
"""Largest |S| * |JA| * |S| * |JO| table kept for rewards that depend on s' or jo."""


class EntryParser:
    """The entries part of the parser: what follows the preamble. The methods it calls
    and does not define (``take``, ``joint``, ``states_of``, ``rows``, ...) are the
    preamble parser's (:class:`marl.envs.dpomdp.parser.Parser`)."""

    def entry(self) -> None:
        """One ``T:``, ``O:`` or ``R:`` entry (its line and the rows that follow it)."""
        no, body = self.take("an entry")
        fields = body.split(":")
        key = fields[0].strip()
        rest = [f.strip() for f in fields[1:]]
        if key not in ("T", "O", "R") or not rest:
            raise self.fail(no, f"an entry 'T: ...', 'O: ...' or 'R: ...', got {body!r}")
        getattr(self, f"entry_{key}")(no, rest)

    def entry_T(self, no: int, f: list[str]) -> None:
        """``T:`` with fields ``f`` after the key: a probability, a row or a matrix."""
        S = self.S
        if len(f) == 4 and f[3]:
            ja, s, s2 = self.joint(no, f[0], "action"), self.states_of(no, f[1]), \
                self.states_of(no, f[2])
            self.T[np.ix_(s, ja, s2)] = self.prob(no, f[3])
        elif len(f) == 3 and not f[2]:
            ja, s = self.joint(no, f[0], "action"), self.states_of(no, f[1])
            if self.keyword(("uniform",)):
                row = np.full(S, 1.0 / S)
            else:
                row = self.rows(no, 1, S, True, f"a row of {S} probabilities or 'uniform'")[0]
            self.T[np.ix_(s, ja)] = row
        elif len(f) == 2 and not f[1]:
            ja = self.joint(no, f[0], "action")
            kw = self.keyword(("uniform", "identity"))
            if kw == "uniform":
                mat = np.full((S, S), 1.0 / S)
            elif kw == "identity":
                mat = np.eye(S)
            else:
                mat = self.rows(no, S, S, True,
                                f"{S} rows of {S} probabilities, 'uniform' or 'identity'")
            self.T[:, ja, :] = mat[:, None, :]
            s = np.arange(S)
        else:
            raise self.fail(no, "'T: <joint action> : <state> : <state> : <probability>', "
                                "'T: <joint action> : <state> :' or 'T: <joint action> :' "
                                "(rows on the following lines)")
        self.t_line[np.ix_(s, ja)] = no

    def entry_O(self, no: int, f: list[str]) -> None:
        """``O:`` with fields ``f`` after the key: a probability, a row or a matrix."""
        S, JO = self.S, self.JO
        if len(f) == 4 and f[3]:
            ja, s2, jo = self.joint(no, f[0], "action"), self.states_of(no, f[1]), \
                self.joint(no, f[2], "observation")
            self.O[np.ix_(ja, s2, jo)] = self.prob(no, f[3])
        elif len(f) == 3 and not f[2]:
            ja, s2 = self.joint(no, f[0], "action"), self.states_of(no, f[1])
            if self.keyword(("uniform",)):
                row = np.full(JO, 1.0 / JO)
            else:
                row = self.rows(no, 1, JO, True, f"a row of {JO} probabilities or 'uniform'")[0]
            self.O[np.ix_(ja, s2)] = row
        elif len(f) == 2 and not f[1]:
            ja = self.joint(no, f[0], "action")
            if self.keyword(("uniform",)):
                mat = np.full((S, JO), 1.0 / JO)
            else:
                mat = self.rows(no, S, JO, True, f"{S} rows of {JO} probabilities or 'uniform'")
            self.O[ja] = mat[None]
            s2 = np.arange(S)
        else:
            raise self.fail(no, "'O: <joint action> : <state> : <joint observation> : "
                                "<probability>', 'O: <joint action> : <state> :' or "
                                "'O: <joint action> :' (rows on the following lines)")
        self.o_line[np.ix_(ja, s2)] = no

    def entry_R(self, no: int, f: list[str]) -> None:
        """``R:`` with fields ``f`` after the key: a reward, a row or a matrix (applied in
        file order by :meth:`finish`)."""
        S, JO = self.S, self.JO
        if len(f) == 5 and f[4]:
            ja, s = self.joint(no, f[0], "action"), self.states_of(no, f[1])
            s2 = None if f[2] == "*" else self.states_of(no, f[2])
            jo = None if f[3].split() in (["*"], ["*"] * self.n) else \
                self.joint(no, f[3], "observation")
            value = self.number(no, f[4], "a reward")
        elif len(f) == 4 and not f[3]:
            ja, s = self.joint(no, f[0], "action"), self.states_of(no, f[1])
            s2, jo = self.states_of(no, f[2]), np.arange(JO)
            value = self.rows(no, 1, JO, False, f"a row of {JO} rewards (one per joint "
                                                "observation)")[0]
        elif len(f) == 3 and not f[2]:
            ja, s = self.joint(no, f[0], "action"), self.states_of(no, f[1])
            s2, jo = np.arange(S), np.arange(JO)
            value = self.rows(no, S, JO, False, f"{S} rows (end states) of {JO} rewards "
                                                "(joint observations)")
        else:
            raise self.fail(no, "'R: <joint action> : <state> : <state> : <joint "
                                "observation> : <reward>', 'R: <joint action> : <state> : "
                                "<state> :' or 'R: <joint action> : <state> :' (rows on the "
                                "following lines)")
        if not np.isfinite(value).all():
            raise self.fail(no, "finite rewards")
        self.r_ops.append((no, s, ja, s2, jo, value))

    # ------------------------------------------------------------------ the model
    def finish(self) -> DecPOMDP:
        """Check the rows (when strict), apply the rewards and build the model."""
        S, JA, JO = self.S, self.JA, self.JO
        if self.strict:
            self.check_rows(self.T.sum(-1), self.t_line, "T", self.row_name_T)
            self.check_rows(self.O.sum(-1), self.o_line, "O", self.row_name_O)
            self.T /= self.T.sum(-1, keepdims=True)
            self.O /= self.O.sum(-1, keepdims=True)
        full_ops = [op for op in self.r_ops if op[3] is not None or op[4] is not None]
        if not full_ops:
            reward = np.zeros((S, JA))
            for _, s, ja, _, _, value in self.r_ops:
                reward[np.ix_(s, ja)] = value
            reward_full = None
        else:
            if S * JA * S * JO > MAX_FULL_REWARD:
                raise self.fail(full_ops[0][0], f"rewards that do not depend on the end "
                                f"state and observation ('* : *'): R(s, ja, s', jo) would "
                                f"have {S * JA * S * JO} entries")
            reward_full = np.zeros((S, JA, S, JO))
            for _, s, ja, s2, jo, value in self.r_ops:
                s2 = np.arange(S) if s2 is None else s2
                jo = np.arange(JO) if jo is None else jo
                reward_full[np.ix_(s, ja, s2, jo)] = value
            reward = np.einsum("sat,ato,sato->sa", self.T, self.O, reward_full)
        if self.cost:
            reward = -reward
            reward_full = None if reward_full is None else -reward_full
        arrays = [self.start, self.T, self.O, reward, reward_full]
        for arr in arrays:
            if arr is not None:
                arr.setflags(write=False)
        return DecPOMDP(
            name=self.name, agents=self.agents, states=self.states, actions=self.actions,
            observations=self.observations, start=self.start, transition=self.T,
            observation=self.O, reward=reward, reward_full=reward_full,
            discount=self.discount, source=self.source,
        )

    def row_name_T(self, s: int, ja: int) -> str:
        return f"T(. | s={self.states[s]}, ja={self.joint_name(ja)})"

    def row_name_O(self, ja: int, s2: int) -> str:
        return f"O(. | ja={self.joint_name(ja)}, s'={self.states[s2]})"

    def joint_name(self, ja: int) -> str:
        idx = np.unravel_index(ja, self.A)
        return " ".join(self.actions[i][a] for i, a in enumerate(idx))

    def check_rows(self, sums: np.ndarray, lines: np.ndarray, table: str, row_name) -> None:
        """A parse error naming the first row (in file order) whose ``sums`` is not 1;
        ``lines`` holds the last line that set each row (0: never set)."""
        bad = np.abs(sums - 1.0) > PROB_TOL
        if not bad.any():
            return
        # the first bad row in file order (rows no entry set come last)
        cand = np.argwhere(bad)
        order = np.where(lines[bad] > 0, lines[bad], np.iinfo(np.int64).max)
        i, j = cand[int(np.argmin(order))]
        line = int(lines[i, j])
        what = f"the probabilities {row_name(i, j)} to sum to 1"
        if line == 0:
            raise self.fail(self.last_no, f"{what}: no {table} entry sets them")
        raise self.fail(line, f"{what}, got {sums[i, j]:.9g} (this is the last {table} "
                              "entry that sets one of them)")
