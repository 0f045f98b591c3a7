"""Learner families side by side, and :data:`LEARNERS`, the one table that picks one.

* ``coma`` (:mod:`marl.algos.coma`): the on-policy family -- COMA, the paper's
  ablations, IPPO and MAPPO -- with its advantage modules, actor updates and
  critic-training strategies as table rows;
* ``vd`` (:mod:`marl.algos.vd`): off-policy value decomposition (VDN, QMIX).

``algo.learner`` names a row, or a plugin ``module:attr`` holding a
:class:`~marl.algos.base.LearnerFamily` of the user's own.
"""

from __future__ import annotations

from marl.algos.base import AlgoCommon, Learner, LearnerFamily
from marl.algos.coma.config import ComaConfig
from marl.algos.coma.learner import ComaLearner
from marl.algos.coma.stats import update_metrics
from marl.algos.vd.config import VDConfig
from marl.algos.vd.learner import QLearner, q_metrics
from marl.schema import lookup

LEARNERS: dict[str, LearnerFamily] = {
    "coma": LearnerFamily(ComaConfig, ComaLearner, update_metrics),
    "vd": LearnerFamily(VDConfig, QLearner, q_metrics,
                        episode_limit=lambda cfg: cfg.vd.episode_limit),
}
"""``algo.learner`` -> the family's config schema, learner class and metrics."""


def learner_family(name: str) -> LearnerFamily:
    """The row of :data:`LEARNERS` (or the plugin) called ``name``."""
    return lookup(LEARNERS, name, "algo.learner")


__all__ = ["LEARNERS", "AlgoCommon", "Learner", "LearnerFamily", "learner_family"]
