"""The COMA paper's actor update: one policy-gradient step per fragment (eq. 5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from marl.algos.coma.advantages import AdvantageInputs
from marl.algos.coma.interfaces import ActorPass, ActorResult, ComaParts
from marl.algos.common import entropy, log_prob
from marl.core.rollout import Rollout

if TYPE_CHECKING:  # config imports this table; TrainConfig's module imports the families
    from marl.algos.coma.config import ComaConfig
    from marl.config import TrainConfig


class PolicyGradient:
    """Eq. 5's gradient: one step on ``-mean(mask * A^a * log pi^a(u^a))`` minus the
    entropy bonus on the actor's softmax, through step 1's own forward pass."""

    uses_minibatches = False
    keeps_graph = True

    def validate(self, cfg: ComaConfig) -> None:
        """Any advantage module works with the policy gradient."""

    def check_with(self, cfg: ComaConfig, train: TrainConfig) -> None:
        """Any fragment shape works."""

    def __call__(self, parts: ComaParts, ro: Rollout, act: ActorPass, adv: Tensor,
                 x: AdvantageInputs | None) -> ActorResult:
        mask = ro.alive[:-1].float()
        logp = log_prob(act.pi, ro.actions)
        n_alive = mask.sum().clamp_min(1.0)
        pg_loss = -(adv * logp * mask).sum() / n_alive
        ent = (entropy(act.soft) * mask).sum() / n_alive
        actor_loss = pg_loss - parts.cfg.entropy_coef * ent
        grad = parts.step_actor(actor_loss)
        return ActorResult(pg_loss.item(), ent.item(), grad)
