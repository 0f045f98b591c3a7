"""What every actor update returns and the step-1 pass it starts from (defined with the
other typed interfaces in :mod:`marl.algos.coma.interfaces`)."""

from __future__ import annotations

from marl.algos.coma.interfaces import ActorPass, ActorResult

__all__ = ["ActorPass", "ActorResult"]
