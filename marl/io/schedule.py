"""When a training run logs, evaluates and checkpoints: three env-step cadences."""

from __future__ import annotations

from typing import Any


class Schedule:
    """The next env step of each cadence; ``None`` = never (evaluation, checkpoints).
    A cadence is advanced past ``env_steps`` *before* the work it triggers is saved, so
    a checkpoint holds the next due step and a resume does not repeat the work."""

    def __init__(self, log_every: int, eval_every: int, ckpt_every: int):
        self.every = {"log": log_every, "eval": eval_every, "ckpt": ckpt_every}
        self.next: dict[str, int | None] = {k: (v or None) for k, v in self.every.items()}

    def due(self, what: str, env_steps: int) -> bool:
        nxt = self.next[what]
        return nxt is not None and env_steps >= nxt

    def advance(self, what: str, env_steps: int) -> None:
        while self.next[what] is not None and self.next[what] <= env_steps:  # type: ignore[operator]
            self.next[what] += self.every[what]  # type: ignore[operator]

    def state(self) -> dict[str, Any]:
        return {"next_log": self.next["log"], "next_eval": self.next["eval"],
                "next_ckpt": self.next["ckpt"]}

    def load(self, state: dict[str, Any], env_steps: int) -> None:
        """Restore a checkpoint's counters. A checkpoint of an older marl may hold a
        checkpoint step it was written at: advance it, so no extra one follows."""
        self.next = {"log": state["next_log"], "eval": state["next_eval"],
                     "ckpt": state["next_ckpt"]}
        if self.every["ckpt"]:
            self.next["ckpt"] = self.next["ckpt"] or self.every["ckpt"]
            self.advance("ckpt", env_steps)
        else:  # checkpoint.every_env_steps=0 on resume: only at the end
            self.next["ckpt"] = None
