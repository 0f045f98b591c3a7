"""A worked plugin: COMA's counterfactual advantage with a *uniform* baseline.

COMA (eq. 4) subtracts ``sum_u' pi^a(u') Q(s, (u^-a, u'))``, the value of agent a's
counterfactual actions weighted by its own policy. This toy weights them uniformly over
the actions a may take (those its exploring policy gives mass to):

    A^a = Q(s, u)[u^a] - mean_{u' available} Q(s, (u^-a, u'))[u']

It is still a baseline that does not depend on a's own action, so the policy gradient
stays unbiased; it ignores what a's policy already prefers, so its variance is larger
once the policy is sharp. The file is all a researcher writes: no edit of ``marl/``.

Run it (from the repository's root; ``plugin_path`` is recorded with the run, so a
resume, ``marl.evaluate`` and sweep workers import it the same way)::

    python -m marl.train +experiment=coma_boxpush 'plugin_path=[experiments/plugins]' \\
        algo.advantage=uniform_baseline:ADVANTAGE algo.name=coma_uniform
"""

from __future__ import annotations

from torch import Tensor

from marl.algos.coma.advantages import Advantage, AdvantageInputs


def uniform_counterfactual(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """(advantage, baseline), both ``[T, B, N]``, from the centralised Q-critic's
    ``[T, B, N, A]`` output and the exploring policy ``x.pi`` ``[T, B, N, A]``."""
    q = x.q["central_q"]
    available = (x.pi > 0).to(q.dtype)  # the epsilon floor covers every allowed action
    baseline = (q * available).sum(-1) / available.sum(-1).clamp_min(1.0)
    taken = q.gather(-1, x.actions[..., None]).squeeze(-1)
    return taken - baseline, baseline


ADVANTAGE = Advantage(critics=("central_q",), fn=uniform_counterfactual)
"""The row ``algo.advantage=uniform_baseline:ADVANTAGE`` names: the critics it trains
and the function that computes it."""
