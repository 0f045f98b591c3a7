"""Advantage maths as pure tensor functions.

Shape letters: T time, B envs, N agents, A actions. Leading axes are free: every
function works on ``[..., A]`` / ``[...]`` so it can be tested on a single state.

The COMA paper (Foerster et al., AAAI 2018) compares its counterfactual advantage with
ablations that use a different critic but the same actor update; these functions are
those advantages. :data:`ADVANTAGES` is the one table of them: ``algo.advantage`` name ->
the critics it trains and the function that computes it from :class:`AdvantageInputs`.
The config validates against its keys and the learner reads it; nothing else branches
on the name. The policy maths (softmax, epsilon floor, sampling) is in :mod:`marl.core.policy`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from marl.core.returns import discounted_returns


def counterfactual_advantage(q: Tensor, pi: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """COMA's counterfactual advantage (paper eq. 4).

    ``A^a(s, u) = Q(s, u) - sum_{u'^a} pi^a(u'^a | tau^a) Q(s, (u^{-a}, u'^a))``.

    The centralised critic outputs, for agent a, ``Q(s, (u^{-a}, .))`` for every
    replacement of a's own action with the others' actions held fixed, so the
    baseline is one dot product per agent.

    Args:
        q: ``[..., A]`` critic output Q(s, (u^-a, u')) for every own action u'.
        pi: ``[..., A]`` agent a's policy (zero on masked actions, so they never count).
        actions: ``[...]`` int64, a's taken action.
    Returns:
        (advantage ``[...]``, baseline ``[...]``).
    """
    if q.shape != pi.shape or q.shape[:-1] != actions.shape:
        raise ValueError(
            f"q {tuple(q.shape)} and pi {tuple(pi.shape)} must be [..., A] and actions "
            f"{tuple(actions.shape)} their leading shape"
        )
    q_taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    # Masked actions have pi == 0; where() keeps a garbage or infinite Q there out of the sum.
    baseline = torch.where(pi > 0, pi * q, torch.zeros_like(q)).sum(-1)
    return q_taken - baseline, baseline


def q_minus_v(q: Tensor, v: Tensor, actions: Tensor) -> Tensor:
    """``Q(s, u)[u^a] - V(s)``: the central-QV ablation's advantage. q ``[..., A]``, v ``[...]``."""
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - v


def return_minus_v(returns: Tensor, v: Tensor) -> Tensor:
    """``G^lambda_t - V(s_t)``: the central-V / IAC-V advantage (a TD(lambda) error sum)."""
    return returns - v


def normalise(x: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Standardise ``x`` over the entries where ``mask`` is True (Karpathy's trick)."""
    if mask is None:
        return (x - x.mean()) / (x.std(unbiased=False) + eps)
    m = mask.to(x.dtype)
    n = m.sum().clamp_min(1.0)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) / (var.sqrt() + eps) * m


def optimistic(adv: Tensor, eta: float) -> Tensor:
    """Optimistic advantage (Zhao et al., ICML 2024, "Optimistic Multi-Agent Policy
    Gradient"): a Leaky ReLU of slope ``eta`` on the advantage,
    ``A' = max(A, 0) + eta * min(A, 0)``.

    ``eta = 0`` drops negative advantages (the paper's clipped OptiMAPPO), ``eta = 1``
    returns ``A`` bit for bit (one of the two terms is an exact zero, the other is
    multiplied by 1.0). Elementwise, any shape; ``eta`` in [0, 1].
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta = {eta!r} must be in [0, 1]")
    return adv.clamp_min(0.0) + eta * adv.clamp_max(0.0)


MAX_JOINT_ACTIONS = 4096
"""Most joint actions :func:`joint_actions` enumerates (|A|^(N-1) critic passes)."""


def joint_actions(n_agents: int, n_actions: int) -> Tensor:
    """``[A^(N-1), N]`` int64: the joint actions whose sum is 0 modulo A.

    For every agent a they hold every joint action of the *others* exactly once (a's own
    entry is then fixed by the sum), so a max over them is a max over u^-a for all agents
    at once: |A|^(N-1) critic passes instead of |A|^N. Raises ValueError naming the count
    when it exceeds :data:`MAX_JOINT_ACTIONS`."""
    size = n_actions ** (n_agents - 1)
    if size > MAX_JOINT_ACTIONS:
        raise ValueError(
            f"algo.optimistic_others needs the {n_actions}^{n_agents - 1} = {size} joint "
            f"actions of the others enumerated, more than {MAX_JOINT_ACTIONS}: use it on "
            f"smaller action spaces")
    others = itertools.product(range(n_actions), repeat=n_agents - 1)
    head = torch.tensor(list(others), dtype=torch.long).reshape(size, n_agents - 1)
    last = (-head.sum(-1, keepdim=True)) % n_actions
    return torch.cat([head, last], -1)


def best_others_q(q_of: Callable[[Tensor], Tensor], joint: Tensor, lead: tuple[int, ...]
                  ) -> Tensor:
    """Pareto-AC's conditional-optimal Q (Christianos, Papoudakis & Albrecht, TMLR 2023):
    ``Q*(s, u^a) = max_{u^-a} Q(s, (u^-a, u^a))`` for every agent a and own action u^a.

    Args:
        q_of: joint action ``[..., N]`` -> COMA critic output ``[..., N, A]``, row a
            ``Q(s, (u^-a, .))`` (it ignores a's own entry of the joint action).
        joint: ``[J, N]`` the joint actions to maximise over (:func:`joint_actions`).
        lead: the leading shape ``...`` of the states (``(T, B)`` in the learner).
    Returns:
        ``[..., N, A]``; row a is the max over every u^-a that appears in ``joint``.
    """
    best = None
    for u in joint:  # one critic pass per joint action: [..., N, A] each
        q = q_of(u.expand(*lead, u.shape[0]))
        best = q if best is None else torch.maximum(best, q)
    if best is None:
        raise ValueError("joint must hold at least one joint action")
    return best


def optimistic_others(q: Tensor, q_best: Tensor, w: float) -> Tensor:
    """The Q an agent's advantage reads with the others' best reply weighted by ``w``
    (``algo.optimistic_others``): ``(1 - w) Q(s, (u^-a, .)) + w max_{u^-a'} Q(s, (u^-a',
    .))``, all ``[..., A]``, ``q`` at the others' taken actions, ``q_best`` from
    :func:`best_others_q`. ``w = 0`` returns ``q`` bit for bit (``torch.lerp``), ``w = 1``
    returns ``q_best``: Pareto-AC's conditional-optimal Q (Christianos, Papoudakis &
    Albrecht, TMLR 2023), whose actor target is ``Q* - V(s)``; here any module reading
    the central Q takes it (coma: the counterfactual baseline over Q*).

    Why: COMA's advantage of a's safe action is positive whenever a's *own* exploration
    drags the baseline down (penalty game, uniform a, partner plays 0: ``Q(., 0) = [-100,
    0, 10]``, A(safe) = 0 + 30), and scaling negative advantages (:func:`optimistic`)
    passes that +30 untouched. Valued against the partner's best reply the safe action
    is worth 2 and the others 10: A(safe) = 2 - 22/3 < 0, the sign itself changes.
    Why w < 1: with w = 1 both optima (0, 2) and (2, 0) are worth 10 to each agent and
    nothing couples the agents' choices between them (a shared actor then drifts to the
    same action, (0, 0) = -100); a share of the taken actions' Q makes a's reply to what
    the partner actually plays count and breaks the tie.
    """
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w = {w!r} must be in [0, 1]")
    if q.shape != q_best.shape:
        raise ValueError(f"q {tuple(q.shape)} and q_best {tuple(q_best.shape)} must match")
    return torch.lerp(q, q_best, w)


# ---------------------------------------------------------------- the one table


@dataclass
class AdvantageInputs:
    """Everything an advantage module may read, for one fragment (all ``[T, B, N]``
    unless said). ``q`` holds the critics' outputs on the fragment (before this
    fragment's critic step; ``[T, B, N, A]`` for Q-critics, ``[T, B, N, 1]`` for
    V-critics), ``targets`` their TD(lambda) targets and ``next_values`` the (target)
    critics' values of the next situation, each keyed by critic kind.

    ``next_values`` are *not* zeroed at terminal steps: where ``terminated`` is True the
    entry is the critic's value of whatever follows in the fragment (the next episode's
    first state), so a module that bootstraps from it masks it with ``~terminated``
    itself, as :func:`marl.core.returns.td_lambda_targets` does. At a truncation it is
    the value of the final state the env reported. ``options`` is the advantage row's own
    options block (its ``options`` dataclass, ``algo.<options_key>.*``), or None."""

    pi: Tensor  # [T, B, N, A] the exploring policy that acted
    actions: Tensor  # [T, B, N] int64
    rewards: Tensor  # [T, B, N] each agent's reward after algo.team_reward (off: its own)
    terminated: Tensor  # per agent: the env's terminal or the agent's own death
    truncated: Tensor  # per agent: time limit
    # by critic kind, e.g. central_q: outputs before this fragment's critic steps,
    # [T, B, N, A] (Q) or [T, B, N, 1] (V); central_q_best for algo.optimistic_others
    q: dict[str, Tensor]
    targets: dict[str, Tensor]  # by critic kind: [T, B, N] TD(lambda) targets G_t
    # by critic kind: [T, B, N] the (target) critic's value of the situation after t
    # (Q of the next action taken, or V), not zeroed where terminated
    next_values: dict[str, Tensor]
    gamma: float  # the discount, algo.gamma
    options: Any = None  # the advantage row's options block (algo.<options_key>), or None


AdvantageFn = Callable[[AdvantageInputs], tuple[Tensor, Tensor]]
"""(advantage ``[T, B, N]``, baseline ``[T, B, N]``) from the fragment's inputs."""


def coma(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """Paper eq. 4 on the centralised Q-critic."""
    return counterfactual_advantage(x.q["central_q"], x.pi, x.actions)


def iac_q(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """The counterfactual baseline on independent Q(o^a, .) critics."""
    return counterfactual_advantage(x.q["local_q"], x.pi, x.actions)


def central_qv(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """``Q(s, u)[u^a] - V(s)`` with a centralised Q- and V-critic."""
    v = x.q["central_v"].squeeze(-1)
    return q_minus_v(x.q["central_q"], v, x.actions), v


def central_v(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """``G^lambda_t - V(s_t)`` with a centralised V-critic."""
    v = x.q["central_v"].squeeze(-1)
    return return_minus_v(x.targets["central_v"], v), v


def iac_v(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """``G^lambda_t - V(o^a_t)`` with independent V-critics."""
    v = x.q["local_v"].squeeze(-1)
    return return_minus_v(x.targets["local_v"], v), v


@dataclass
class ReinforceOptions:
    """``algo.reinforce``: the options of the ``reinforce`` advantage."""

    baseline: bool = False
    """Subtract a learned central V(s) (and bootstrap from it where the sum is cut)."""
    reset_on_reward: bool = False
    """End the discounted sum at every non-zero reward (pg-pong's "each point is an
    episode")."""


def reinforce(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """Discounted Monte-Carlo return within the fragment (reset at episode ends, and at
    every non-zero reward with ``reinforce.reset_on_reward``), minus a learned central
    V(s) when that critic is trained (then bootstrapped from V(s') where the sum is cut)."""
    reset = x.options is not None and x.options.reset_on_reward
    term = x.terminated | (x.rewards != 0) if reset else x.terminated
    if "central_v" in x.q:
        v = x.q["central_v"].squeeze(-1)
        returns = discounted_returns(x.rewards, term, x.truncated, x.gamma,
                                     bootstrap=x.next_values["central_v"])
        return returns - v, v
    returns = discounted_returns(x.rewards, term, x.truncated, x.gamma)
    return returns, torch.zeros_like(returns)


class Advantage(NamedTuple):
    """One row of :data:`ADVANTAGES`."""

    critics: tuple[str, ...]
    """Critic kinds it trains (see :class:`marl.algos.coma.critics.CriticNet`)."""
    fn: AdvantageFn
    """Computes (advantage, baseline)."""
    baseline_critics: tuple[str, ...] = ()
    """Critics it trains only when its options' ``baseline`` is set (a learned
    baseline)."""
    options: type | None = None
    """Its options dataclass (typed, checked in ``__post_init__``), or None."""
    options_key: str | None = None
    """Where its options live: ``algo.<options_key>.*``."""

    def trains(self, options: Any) -> tuple[str, ...]:
        """The critic kinds it trains under its ``options``."""
        with_baseline = bool(getattr(options, "baseline", False))
        return self.critics + (self.baseline_critics if with_baseline else ())


# ------------------------------------- fixes for COMA on StarCraft (issue 33)


def optimal_baseline(q: Tensor, pi: Tensor) -> Tensor:
    """Kuba et al.'s optimal baseline (NeurIPS 2021, "Settling the Variance of Multi-Agent
    Policy Gradients", Sec. 4, the softmax surrogate): the baseline for agent a that
    minimises the variance of its policy gradient, with the gradient's norm taken
    with respect to the softmax's logits x, ``||grad_x log pi(u)||^2 = ||e_u - pi||^2 =
    1 - 2 pi(u) + ||pi||^2 =: M(u)``:

    ``b*(s, u^-a) = sum_u pi(u) M(u) Q(s, (u^-a, u)) / sum_u pi(u) M(u)``,

    whose denominator is ``1 - ||pi||^2``. COMA's baseline is the same sum with M = 1.
    Where the policy is deterministic (denominator < 1e-6: every weight vanishes) the
    baseline is COMA's, ``Q`` of the one action. ``q``, ``pi`` ``[..., A]`` (pi zero on
    masked actions); returns ``[...]``. With an epsilon floor ``pi`` is the exploring
    policy, so M is that of its own logits only when eps = 0 (the PPO rows)."""
    if q.shape != pi.shape:
        raise ValueError(f"q {tuple(q.shape)} and pi {tuple(pi.shape)} must match")
    avail = pi > 0
    m = 1.0 - 2.0 * pi + (pi * pi).sum(-1, keepdim=True)  # ||e_u - pi||^2 >= 0
    w = torch.where(avail, pi * m, torch.zeros_like(pi))
    den = w.sum(-1)
    num = torch.where(avail, w * q, torch.zeros_like(q)).sum(-1)
    coma_b = torch.where(avail, pi * q, torch.zeros_like(q)).sum(-1)
    ok = den > 1e-6
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), coma_b)


def coma_return(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """COMA's counterfactual baseline subtracted from the Q-critic's TD(lambda) return
    instead of from its Q: ``A^a = G^lambda_t - sum_u pi^a(u) Q(s, (u^-a, u))``.

    ``G^lambda_t`` is the critic's own regression target (``targets["central_q"]``,
    bootstrapped along the taken joint actions), so ``A = (G^lambda - Q(s, u)) + A_coma``:
    COMA's advantage plus the critic's TD(lambda) error on the taken joint action -- the
    GAE-style (Schulman et al., ICLR 2016) advantage of central-V / MAPPO, with the
    counterfactual baseline in place of V(s). The baseline does not depend on a's own
    action, so the gradient stays unbiased whatever the critic's error; what the
    critic gets wrong about ``Q(s, u)`` of the taken action no longer enters A directly
    (the sampled return does). Foerster et al. (2018) subtract the baseline from Q;
    this is the TD(lambda)/GAE variant of their estimator that MARL codebases such as
    EPyMARL (``q_nstep``) and Kuba et al. (2021, Sec. 5, on MAPPO) build from returns."""
    _, baseline = counterfactual_advantage(x.q["central_q"], x.pi, x.actions)
    return x.targets["central_q"] - baseline, baseline


def coma_ob(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """``Q(s, u)[u^a] - b*(s, u^-a)``: the optimal baseline (:func:`optimal_baseline`,
    Kuba et al. 2021) in place of COMA's on the same centralised Q-critic."""
    q = x.q["central_q"]
    b = optimal_baseline(q, x.pi)
    return q.gather(-1, x.actions.unsqueeze(-1)).squeeze(-1) - b, b


def coma_ob_return(x: AdvantageInputs) -> tuple[Tensor, Tensor]:
    """Both: ``G^lambda_t - b*(s, u^-a)`` (:func:`coma_return` with the optimal baseline)."""
    b = optimal_baseline(x.q["central_q"], x.pi)
    return x.targets["central_q"] - b, b


ADVANTAGES: dict[str, Advantage] = {
    "coma": Advantage(("central_q",), coma),
    "central_qv": Advantage(("central_q", "central_v"), central_qv),
    "central_v": Advantage(("central_v",), central_v),
    "iac_v": Advantage(("local_v",), iac_v),
    "iac_q": Advantage(("local_q",), iac_q),
    "reinforce": Advantage((), reinforce, baseline_critics=("central_v",),
                           options=ReinforceOptions, options_key="reinforce"),
    "coma_return": Advantage(("central_q",), coma_return),
    "coma_ob": Advantage(("central_q",), coma_ob),
    "coma_ob_return": Advantage(("central_q",), coma_ob_return),
}
"""``algo.advantage`` -> the critics it trains and the function that computes it."""
