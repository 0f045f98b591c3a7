"""PPO's actor update (Schulman et al., 2017): the clipped surrogate, the (optionally
clipped) value error, and :class:`PPOUpdate`, the multi-epoch minibatch loop.
IPPO = iac_v + ppo, MAPPO = central_v + ppo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from marl.algos.coma.advantages import ADVANTAGES, AdvantageInputs, normalise
from marl.algos.coma.interfaces import ActorPass, ActorResult, ComaParts, CriticStats, Minibatch
from marl.algos.common import entropy, log_prob
from marl.core.policy import floor_mix, masked_softmax
from marl.core.rollout import Rollout
from marl.schema import check, lookup

if TYPE_CHECKING:  # config imports this table; TrainConfig's module imports the families
    from marl.algos.coma.config import ComaConfig
    from marl.config import TrainConfig


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

    def validate(self, cfg: ComaConfig) -> None:
        adv = lookup(ADVANTAGES, cfg.advantage, "algo.advantage")
        learned = [k for k, v in ADVANTAGES.items() if v.critics]
        check(bool(adv.critics), "algo.actor_update", cfg.actor_update,
              f"ppo needs a learned critic: algo.advantage={cfg.advantage} has none (its "
              f"Monte-Carlo returns are for pg); choose algo.advantage from {learned}")

    def check_with(self, cfg: ComaConfig, train: TrainConfig) -> None:
        samples, what = ((train.num_envs, "train.num_envs (B: a GRU actor is cut into "
                          "whole sequences)") if cfg.rnn else
                         (train.num_envs * train.fragment_len,
                          "train.num_envs x train.fragment_len (T x B samples)"))
        check(samples % cfg.ppo.minibatches == 0, "algo.ppo.minibatches", cfg.ppo.minibatches,
              f"must divide {what} = {samples}")

    def __call__(self, parts: ComaParts, ro: Rollout, act: ActorPass, adv: Tensor,
                 x: AdvantageInputs | None) -> ActorResult:
        opts = parts.cfg.ppo
        samples, rows = self._samples(parts, ro, act, adv, x)
        size = rows // opts.minibatches
        first_dev, sums, critics, used = None, {}, CriticStats(), 0
        for _ in range(opts.epochs):
            sums, critics, used = {}, CriticStats(), 0  # over the last epoch's minibatches
            perm = torch.randperm(rows, device=ro.obs.device)
            for i in range(opts.minibatches):
                idx = perm[i * size:(i + 1) * size]
                mb = samples.take(idx)
                if not bool(mb.mask.any()):
                    continue  # no living sample: nothing to step on
                used += 1
                h0 = ro.h0[idx] if parts.actor.rnn else \
                    ro.h0.new_zeros(size, parts.spec.n_agents, 0)
                out = self._step(parts, mb, h0)
                critics.add(parts.critic_training.after_minibatch(parts, mb))
                dev = out.pop("ratio_dev")
                first_dev = dev if first_dev is None else first_dev
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
        if not used:
            raise ValueError("the fragment has no step with a living agent: nothing for "
                             "PPO to learn from")
        sums = {k: v / used for k, v in sums.items()}
        value_loss = sums.pop("value_loss", None)  # a value head's (minibatch_loss)
        return ActorResult(sums.pop("pg_loss"), sums.pop("entropy"), sums.pop("grad_norm"),
                           {"first_ratio_dev": first_dev, **sums}, critics.mean(used),
                           value_loss)

    @staticmethod
    def _samples(parts: ComaParts, ro: Rollout, act: ActorPass, adv: Tensor,
                 x: AdvantageInputs | None) -> tuple[Minibatch, int]:
        """The fragment's samples as ``[T, rows]`` (GRU: minibatches of env sequences) or
        ``[1, T*B]`` (feed-forward: minibatches of single steps), and ``rows``."""
        opts = parts.cfg.ppo
        t_len, b = ro.actions.shape[:2]
        rnn = parts.actor.rnn
        rows = b if rnn else t_len * b
        if (rows // opts.minibatches) * opts.minibatches != rows:
            raise ValueError(f"algo.ppo.minibatches = {opts.minibatches} must divide the "
                             f"fragment's {rows} samples")
        data: Minibatch = Minibatch(
            obs=ro.obs[:-1], prev=ro.prev_actions[:-1], first=ro.first[:-1],
            actions=ro.actions, mask=ro.alive[:-1].float(),
            counted=(torch.ones_like(ro.alive[:-1], dtype=torch.float32)
                     if opts.dead_in_means else ro.alive[:-1].float()),
            adv=adv, logp_old=log_prob(act.pi, ro.actions),
            eps=ro.eps[:, None].expand(t_len, b),
            amask=ro.action_mask[:-1] if parts.spec.has_action_mask else None,
            critic=parts.critic_training.minibatch_inputs(parts, ro, x))
        if not rnn:
            data = data.map(lambda v: v.reshape(1, t_len * b, *v.shape[2:]))
        return data, rows

    @staticmethod
    def _step(parts: ComaParts, mb: Minibatch, h0: Tensor) -> dict[str, float]:
        """One PPO minibatch (tensors ``[T', b, N, ...]``): forward, loss, clipped step."""
        opts, training = parts.cfg.ppo, parts.critic_training
        logits, v = training.unroll(parts.actor, mb.obs, mb.prev, mb.first, h0)
        soft = masked_softmax(logits, mb.amask)
        pi = floor_mix(soft, mb.eps[..., None, None], mb.amask)
        logp = log_prob(pi, mb.actions)
        mask = mb.mask
        n_alive = mask.sum().clamp_min(1.0)
        n_counted = mb.counted.sum().clamp_min(1.0)  # n_alive, or every agent-step
        adv = normalise(mb.adv, mb.counted > 0) if opts.minibatch_normalize else mb.adv
        surrogate, ratio = ppo_objective(logp, mb.logp_old, adv, opts.clip)
        pg_loss = -(surrogate * mask).sum() / n_counted
        ent = (entropy(soft) * mask).sum() / n_counted
        loss = pg_loss - parts.cfg.entropy_coef * ent
        value = training.minibatch_loss(v, mb, mb.counted, n_counted)
        if value is not None:
            loss = loss + value[0]
        grad = parts.step_actor(loss)
        with torch.no_grad():
            log_r = logp - mb.logp_old
            clipped = ((ratio - 1.0).abs() > opts.clip).float()
            out = {
                "pg_loss": pg_loss.item(), "entropy": ent.item(), "grad_norm": grad,
                "clip_frac": float((clipped * mask).sum() / n_alive),
                # k3 estimator of KL(pi_old || pi) (Schulman's "approximating KL")
                "approx_kl": float((((ratio - 1.0) - log_r) * mask).sum() / n_alive),
                "ratio_dev": float(((ratio - 1.0).abs() * mask).max()),
            }
            if value is not None:
                out["value_loss"] = value[1].item()
            return out
