"""Actor updates (step 5 of :meth:`marl.algos.coma.learner.ComaLearner.update`), one module
each, one row each of :data:`ACTOR_UPDATES` (``algo.actor_update``).

An actor update is an object with

* ``uses_minibatches``: True when it calls the critic-training strategy's minibatch hooks
  (critics trained per PPO minibatch, or a value head on the actor's torso need it);
* ``keeps_graph``: True when step 1's unroll of the actors must keep its graph (the
  update differentiates that very forward pass); False when it re-runs the actor itself;
* ``validate(cfg)`` and ``check_with(cfg, train)``: config checks (one-line ConfigError);
* ``__call__(parts, ro, act, adv, x) -> ActorResult``: ``parts`` is the learner's
  :class:`~marl.algos.coma.interfaces.ComaParts` (spec, cfg, actor, the critics, the
  critic-training row; ``parts.step_actor(loss)`` takes the actor's clipped optimiser
  step), ``act`` step 1's :class:`~marl.algos.coma.interfaces.ActorPass`, ``adv`` the
  ``[T, B, N]`` advantage (detached, standardised if asked), ``x`` the advantage's
  inputs. An update with minibatches cuts its samples as a
  :class:`~marl.algos.coma.interfaces.Minibatch` record (``mb.take(idx)``), the
  critic-training row's own samples in ``mb.critic``, and calls that row's minibatch
  hooks (:mod:`marl.algos.coma.interfaces`).

A plugin (``algo.actor_update=my_module:MY_UPDATE``) is such an object in the user's own
module.
"""

from __future__ import annotations

from marl.algos.coma.updates.base import ActorResult
from marl.algos.coma.updates.pg import PolicyGradient
from marl.algos.coma.updates.ppo import PPOUpdate

ACTOR_UPDATES = {
    "pg": PolicyGradient(),
    "ppo": PPOUpdate(),
}
"""``algo.actor_update`` -> the actor update object."""

__all__ = ["ACTOR_UPDATES", "ActorResult", "PPOUpdate", "PolicyGradient"]
