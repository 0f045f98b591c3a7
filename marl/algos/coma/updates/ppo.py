"""PPO's actor update (Schulman et al., 2017): the clipped surrogate, the (optionally
clipped) value error, and :class:`PPOUpdate`, the multi-epoch minibatch loop.
IPPO = iac_v + ppo, MAPPO = central_v + ppo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from marl.algos.coma.advantages import ADVANTAGES, normalise
from marl.algos.coma.updates.base import ActorPass, ActorResult
from marl.algos.common import entropy, guarded_step, log_prob
from marl.core.policy import floor_mix, masked_softmax
from marl.core.rollout import Rollout
from marl.schema import check, lookup


@dataclass
class PPOOptions:
    """``algo.ppo``: the options of PPO's actor update (``algo.actor_update=ppo``)."""

    clip: float = 0.2
    """The surrogate's clip range, ratio kept in [1 - clip, 1 + clip]; > 0."""
    epochs: int = 4
    """Passes over the fragment per update; >= 1."""
    minibatches: int = 4
    """Minibatches per epoch; must divide T x B samples (B envs with rnn)."""
    minibatch_normalize: bool = False
    """Standardise the advantage in every minibatch, inside the loss (JaxMARL's and
    CleanRL's PPO); ``algo.normalize_advantage`` standardises once per fragment."""
    dead_in_means: bool = False
    """Count every agent-step in the losses' means and in the minibatch standardisation,
    a dead agent's too (JaxMARL's: no mask anywhere). A dead agent's policy terms still
    give no gradient (there it has one legal action), so this scales the actor's loss
    by the living share; the critic regresses on dead agents' states as well. False:
    only the living agents' steps (the masked means)."""

    def __post_init__(self) -> None:
        check(self.clip > 0, "algo.ppo.clip", self.clip, "must be > 0")
        for k in ("epochs", "minibatches"):
            check(getattr(self, k) >= 1, f"algo.ppo.{k}", getattr(self, k), "must be >= 1")


def ppo_objective(logp: Tensor, logp_old: Tensor, adv: Tensor, clip: float
                  ) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate (Schulman et al., 2017, eq. 7), per sample, to maximise:
    ``min(r A, clip(r, 1 - clip, 1 + clip) A)`` with ``r = exp(logp - logp_old)``.

    All ``[...]``; ``logp_old`` and ``adv`` are constants (no gradient through them).
    Returns (objective, ratio)."""
    ratio = torch.exp(logp - logp_old.detach())
    adv = adv.detach()
    return torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv), ratio


def value_error(v: Tensor, v_old: Tensor, ret: Tensor, clip: float | None) -> Tensor:
    """Per-sample value loss ``0.5 (V - G)^2``; with ``clip``, PPO's clipped variant
    ``0.5 max((V - G)^2, (V_old + clip(V - V_old, -clip, clip) - G)^2)``."""
    err = (v - ret.detach()) ** 2
    if clip is not None:
        v_clip = v_old + (v - v_old).clamp(-clip, clip)
        err = torch.max(err, (v_clip - ret.detach()) ** 2)
    return 0.5 * err


class PPOUpdate:
    """PPO's actor update: ``epochs`` passes over the fragment in ``minibatches`` random
    minibatches, one clipped optimiser step each on :func:`ppo_objective` (plus whatever
    the critic-training strategy adds: a value head's loss through the same torso, or a
    step of each separate critic on the same minibatch).

    ``pi_old`` is the exploring policy that acted: step 1's pass, made without a graph
    under the fragment's own epsilon, so ``r == 1`` on the first minibatch. Samples are
    the T x B steps of a feed-forward actor, or the B env sequences of a GRU actor
    (replayed from ``ro.h0``). A minibatch with no living agent is skipped, not stepped
    (Adam's momentum would still move the weights on its zero loss). Returns the last
    epoch's means and ``first_ratio_dev`` (max ``|r - 1|`` of the very first minibatch,
    0 up to rounding), ``clip_frac`` and ``approx_kl``."""

    uses_minibatches = True
    keeps_graph = False
    options = PPOOptions
    options_key = "ppo"

    def validate(self, cfg: Any) -> None:
        adv = lookup(ADVANTAGES, cfg.advantage, "algo.advantage")
        learned = [k for k, v in ADVANTAGES.items() if v.critics]
        check(bool(adv.critics), "algo.actor_update", cfg.actor_update,
              f"ppo needs a learned critic: algo.advantage={cfg.advantage} has none (its "
              f"Monte-Carlo returns are for pg); choose algo.advantage from {learned}")

    def check_with(self, cfg: Any, train: Any) -> None:
        samples, what = ((train.num_envs, "train.num_envs (B: a GRU actor is cut into "
                          "whole sequences)") if cfg.rnn else
                         (train.num_envs * train.fragment_len,
                          "train.num_envs x train.fragment_len (T x B samples)"))
        check(samples % cfg.ppo.minibatches == 0, "algo.ppo.minibatches", cfg.ppo.minibatches,
              f"must divide {what} = {samples}")

    def __call__(self, learner: Any, ro: Rollout, act: ActorPass, adv: Tensor,
                 x: Any) -> ActorResult:
        cfg = learner.cfg
        data, rows = self._samples(learner, ro, act, adv, x)
        mb = rows // cfg.ppo.minibatches
        first_dev, sums, used = None, {}, 0
        for _ in range(cfg.ppo.epochs):
            sums, used = {}, 0  # sums over the last epoch's minibatches
            perm = torch.randperm(rows, device=ro.obs.device)
            for i in range(cfg.ppo.minibatches):
                idx = perm[i * mb:(i + 1) * mb]
                # index_select: ~5x faster than v[:, idx] on the uint8 frames
                d = {k: v.index_select(1, idx) for k, v in data.items()}
                if not bool(d["mask"].any()):
                    continue  # no living sample: nothing to step on
                used += 1
                h0 = ro.h0[idx] if learner.actor.rnn else \
                    ro.h0.new_zeros(mb, learner.spec.n_agents, 0)
                out = self._step(learner, d, h0)
                out.update(learner.critic_training.after_minibatch(learner, d))
                dev = out.pop("ratio_dev")
                first_dev = dev if first_dev is None else first_dev
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
        if not used:
            raise ValueError("the fragment has no step with a living agent: nothing for "
                             "PPO to learn from")
        sums = {k: v / used for k, v in sums.items()}
        return ActorResult(sums.pop("pg_loss"), sums.pop("entropy"), sums.pop("grad_norm"),
                           {"first_ratio_dev": first_dev, **sums})

    @staticmethod
    def _samples(learner: Any, ro: Rollout, act: ActorPass, adv: Tensor, x: Any
                 ) -> tuple[dict[str, Tensor], int]:
        """The fragment's tensors as ``[T, rows]`` (GRU: minibatches of env sequences) or
        ``[1, T*B]`` (feed-forward: minibatches of single steps), and ``rows``."""
        cfg = learner.cfg
        t_len, b = ro.actions.shape[:2]
        rnn = learner.actor.rnn
        rows = b if rnn else t_len * b
        if (rows // cfg.ppo.minibatches) * cfg.ppo.minibatches != rows:
            raise ValueError(f"algo.ppo.minibatches = {cfg.ppo.minibatches} must divide the "
                             f"fragment's {rows} samples")
        data = {
            "obs": ro.obs[:-1], "prev": ro.prev_actions[:-1], "first": ro.first[:-1],
            "actions": ro.actions, "mask": ro.alive[:-1].float(), "adv": adv,
            "counted": (torch.ones_like(ro.alive[:-1], dtype=torch.float32)
                        if cfg.ppo.dead_in_means else ro.alive[:-1].float()),
            "logp_old": log_prob(act.pi, ro.actions), "eps": ro.eps[:, None].expand(t_len, b),
        }
        if learner.spec.has_action_mask:
            data["amask"] = ro.action_mask[:-1]
        data.update(learner.critic_training.minibatch_inputs(learner, ro, x))
        return {k: v if rnn else v.reshape(1, t_len * b, *v.shape[2:])
                for k, v in data.items()}, rows

    @staticmethod
    def _step(learner: Any, d: dict[str, Tensor], h0: Tensor) -> dict[str, float]:
        """One PPO minibatch (tensors ``[T', b, N, ...]``): forward, loss, clipped step."""
        cfg = learner.cfg
        amask = d.get("amask")
        logits, v = learner.critic_training.unroll(learner.actor, d["obs"], d["prev"],
                                                   d["first"], h0)
        soft = masked_softmax(logits, amask)
        pi = floor_mix(soft, d["eps"][..., None, None], amask)
        logp = log_prob(pi, d["actions"])
        mask = d["mask"]
        n_alive = mask.sum().clamp_min(1.0)
        n_counted = d["counted"].sum().clamp_min(1.0)  # n_alive, or every agent-step
        adv = d["adv"]
        if cfg.ppo.minibatch_normalize:
            adv = normalise(adv, d["counted"] > 0)
        surrogate, ratio = ppo_objective(logp, d["logp_old"], adv, cfg.ppo.clip)
        pg_loss = -(surrogate * mask).sum() / n_counted
        ent = (entropy(soft) * mask).sum() / n_counted
        loss = pg_loss - cfg.entropy_coef * ent
        extra, value_loss = learner.critic_training.minibatch_loss(
            learner, v, d, d["counted"], n_counted)
        if value_loss is not None:
            loss = loss + extra
        grad = guarded_step(loss, learner.actor.parameters(), learner.actor_opt, cfg.grad_clip,
                            "actor")
        with torch.no_grad():
            log_r = logp - d["logp_old"]
            clipped = ((ratio - 1.0).abs() > cfg.ppo.clip).float()
            out = {
                "pg_loss": pg_loss.item(), "entropy": ent.item(), "grad_norm": grad,
                "clip_frac": float((clipped * mask).sum() / n_alive),
                # k3 estimator of KL(pi_old || pi) (Schulman's "approximating KL")
                "approx_kl": float((((ratio - 1.0) - log_r) * mask).sum() / n_alive),
                "ratio_dev": float(((ratio - 1.0).abs() * mask).max()),
            }
            if value_loss is not None:
                out["value_loss"] = value_loss.item()
            return out
