"""The maths of the coordination diagnosis (experiments/coordination/diagnose.py): where
in a batch of training episodes the team could take its joint plan, whether it did, and
what the critic and the counterfactual advantage say of the plan there.

Every function is a pure tensor function of one fragment of ``[T, B]`` steps (T time, B
envs, N = 2 agents, A actions, S hidden states), so it can be checked on hand-made
episodes. Two envs are read:

* the strict box (:mod:`marl.envs.boxpush`): a robot *pushes* in direction d when its
  cell plus d is the box's cell; a **joint push** is both robots pushing in the same
  direction in the same step (so from the same side: they share the cell next to the
  box); the **situations** are the states where both robots stand on one cell next to
  the box, and there the plan is the joint push toward the box, the safe joint action
  both staying;
* a Dec-POMDP (:mod:`marl.envs.dpomdp`, Dec-Tiger): the plan in hidden state s is the
  joint action of the highest reward ``argmax_ja R(s, ja)`` (both open the door without
  the tiger), the safe joint action the maximin one ``argmax_ja min_s R(s, ja)`` (both
  listen); the situations are the steps where the agents' joint belief (the model's
  posterior given the joint history) makes the plan of the true state pay more in
  expectation than the safe action.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl.algos import common
from marl.algos.coma.advantages import counterfactual_advantage
from marl.envs.boxpush.rules import ACTION_DELTAS

STAY = 0
"""Box pushing's action 0."""


# --------------------------------------------------------------------------- episodes
def first_episode(first: Tensor, ended: Tensor) -> Tensor:
    """``[T, B]`` bool: the step belongs to the env's first episode of the fragment
    (``first`` ``[T, B]`` True at t = 0 in every env), up to and including its end
    (``ended`` ``[T, B]``: terminated or truncated at t). False from then on, and where
    the fragment did not start with a fresh episode."""
    out = torch.zeros_like(ended)
    live = first[0].clone()
    for t in range(ended.shape[0]):
        out[t] = live
        live = live & ~ended[t]
    return out


def episode_fraction(event: Tensor, mask: Tensor) -> float:
    """Share of the envs whose masked episode (``mask`` ``[T, B]``) has at least one
    step with ``event`` ``[T, B]``; envs with no masked step do not count."""
    has = mask.any(0)
    hit = (event & mask).any(0)
    return float(hit[has].float().mean()) if has.any() else float("nan")


def episode_return(rewards: Tensor, mask: Tensor) -> float:
    """Mean over the envs with a masked step of the masked episode's return (the sum
    of ``rewards`` ``[T, B, N]``, mean over the agents)."""
    has = mask.any(0)
    ret = (rewards.mean(-1) * mask).sum(0)
    return float(ret[has].mean()) if has.any() else float("nan")


# --------------------------------------------------------------------------- the box
def box_cells(state: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Box pushing's state ``[..., 9]`` (normalised ``x / (W-1), y / (H-1)`` of robot 0,
    robot 1, box, hole, then t) -> robot cells ``[..., 2, 2]`` and the box's ``[..., 2]``
    as integer ``(x, y)``."""
    scale = torch.tensor([width - 1, height - 1], dtype=state.dtype)
    xy = torch.round(state[..., :6].unflatten(-1, (3, 2)) * scale).long()
    return xy[..., :2, :], xy[..., 2, :]


def push_directions(robots: Tensor, box: Tensor) -> Tensor:
    """``[..., 2]`` the action that makes each robot push (its cell plus the action's
    delta is the box's cell), 0 (stay) where the robot is not next to the box."""
    d = box[..., None, :] - robots  # [..., 2, 2]
    deltas = torch.as_tensor(ACTION_DELTAS)  # [5, 2]
    hit = (d[..., None, :] == deltas).all(-1)  # [..., 2, 5]
    hit[..., STAY] = False
    return torch.where(hit.any(-1), hit.long().argmax(-1), STAY)


def box_situation(state: Tensor, next_state: Tensor, actions: Tensor, width: int,
                  height: int) -> dict[str, Tensor]:
    """The strict box's reading of a fragment: ``state`` / ``next_state`` ``[T, B, 9]``
    (the state after each step; the final state where the episode ended), ``actions``
    ``[T, B, 2]``. Returns ``[T, B]`` masks ``where`` (both robots on one cell next to
    the box), ``plan_taken`` (a joint push), ``progress`` (the box moved) and the joint
    actions ``plan`` (the joint push, STAY outside the situations) and ``safe`` (both
    stay), ``[T, B, 2]``."""
    robots, box = box_cells(state, width, height)
    _, box_next = box_cells(next_state, width, height)
    dirs = push_directions(robots, box)  # [T, B, 2]
    pushing = (dirs > STAY) & (actions == dirs)
    where = (dirs[..., 0] > STAY) & (dirs[..., 0] == dirs[..., 1])
    joint = pushing.all(-1) & (actions[..., 0] == actions[..., 1])
    return {"where": where, "plan_taken": joint,
            "progress": (box_next != box).any(-1),
            "plan": torch.where(where[..., None], dirs, STAY),
            "safe": torch.full_like(actions, STAY)}


# --------------------------------------------------------------------------- Dec-POMDPs
def plan_and_safe(reward: Tensor, n_actions: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """From ``R(s, ja)`` ``[S, JA]`` (the last agent's action fastest): the plan of each
    state ``[S, N]`` (``argmax_ja R(s, ja)``) and the safe joint action ``[N]``
    (``argmax_ja min_s R(s, ja)``), as individual actions."""
    def split(ja: Tensor) -> Tensor:
        out, rest = [], ja
        for n in reversed(n_actions):
            out.append(rest % n)
            rest = rest // n
        return torch.stack(out[::-1], -1)
    return split(reward.argmax(-1)), split(reward.min(0).values.argmax())


def joint_index(actions: Tensor, n_actions: tuple[int, ...]) -> Tensor:
    """Individual actions ``[..., N]`` -> joint-action index ``[...]`` (last fastest)."""
    out = torch.zeros(actions.shape[:-1], dtype=torch.long)
    for i, n in enumerate(n_actions):
        out = out * n + actions[..., i]
    return out


def beliefs(start: Tensor, transition: Tensor, observation: Tensor, joint_actions: Tensor,
            joint_obs: Tensor) -> Tensor:
    """The joint belief ``b_t(s)`` ``[T, B, S]`` before each step of whole episodes that
    start at t = 0: ``b_0`` = ``start`` ``[S]``, then ``b_{t+1}(s') ~ O(jo_{t+1} | ja_t,
    s') sum_s b_t(s) T(s' | s, ja_t)``. ``transition`` ``[S, JA, S]``, ``observation``
    ``[JA, S, JO]``, ``joint_actions`` ``[T, B]``, ``joint_obs`` ``[T, B]`` (received
    after step t)."""
    t_len, b = joint_actions.shape
    out = torch.empty(t_len, b, start.shape[0], dtype=transition.dtype)
    bel = start.to(transition.dtype).expand(b, -1)
    for t in range(t_len):
        out[t] = bel
        ja, jo = joint_actions[t], joint_obs[t]
        pred = torch.einsum("bs,bsz->bz", bel, transition[:, ja].transpose(0, 1))
        lik = observation[ja, :, jo]  # [B, S']
        post = pred * lik
        bel = post / post.sum(-1, keepdim=True).clamp_min(1e-300)
    return out


def dpomdp_situation(true_state: Tensor, belief: Tensor, actions: Tensor, reward: Tensor,
                     n_actions: tuple[int, ...]) -> dict[str, Tensor]:
    """A Dec-POMDP's reading of a fragment of whole episodes: ``true_state`` ``[T, B]``
    (hidden state before each step), ``belief`` ``[T, B, S]``, ``actions`` ``[T, B, N]``,
    ``reward`` ``R(s, ja)`` ``[S, JA]``. Returns ``plan`` (the true state's plan) and
    ``safe`` ``[T, B, N]``; ``where`` (the belief makes the plan pay more than the safe
    action in expectation), ``plan_taken`` (the team played the plan), ``progress``
    (some agent left the safe action: on Dec-Tiger, any door opened) ``[T, B]``; and the
    expected immediate rewards under the belief of the plan and of the safe action,
    ``r_plan`` / ``r_safe`` ``[T, B]``."""
    plans, safe = plan_and_safe(reward, n_actions)
    plan = plans[true_state]  # [T, B, N]
    safe = safe.expand_as(plan)
    r_plan = (belief * reward.T.to(belief.dtype)[joint_index(plan, n_actions)]).sum(-1)
    r_safe = (belief * reward.T.to(belief.dtype)[joint_index(safe, n_actions)]).sum(-1)
    return {"where": r_plan > r_safe, "plan_taken": (actions == plan).all(-1),
            "progress": (actions != safe).any(-1), "plan": plan, "safe": safe,
            "r_plan": r_plan.float(), "r_safe": r_safe.float()}


# --------------------------------------------------------------------------- critic maths
def joint_q(q_rows: Tensor, joint: Tensor) -> Tensor:
    """The Q of one joint action from a COMA critic's output for it: ``q_rows``
    ``[..., N, A]`` (row a is ``Q(s, (u^-a, .))`` with the others' actions of ``joint``
    ``[..., N]``), each row read at a's own action of ``joint``, mean over the agents."""
    return q_rows.gather(-1, joint.unsqueeze(-1)).squeeze(-1).mean(-1)


def advantage_of(q_rows: Tensor, pi: Tensor, own: Tensor) -> Tensor:
    """COMA's counterfactual advantage (eq. 4) of each agent's action ``own`` ``[..., N]``
    (taken or not), the others' actions as in ``q_rows`` ``[..., N, A]``:
    ``Q(s, (u^-a, own^a)) - sum_u pi^a(u) Q(s, (u^-a, u))``; ``pi`` ``[..., N, A]``
    (:func:`marl.algos.coma.advantages.counterfactual_advantage` at ``own``)."""
    return counterfactual_advantage(q_rows, pi, own)[0]


def masked_mean(x: Tensor, mask: Tensor) -> dict[str, float | int]:
    """``{"mean": ..., "n": ...}`` of ``x`` where ``mask`` (same shape); mean NaN if none."""
    n = int(mask.sum())
    return {"mean": float(x[mask].mean()) if n else float("nan"), "n": n}


def partner(x: Tensor) -> Tensor:
    """``[..., 2]`` -> the other agent's entry for each agent (two agents)."""
    return x.flip(-1)


def advantage_split(adv: Tensor, actions: Tensor, plan: Tensor, safe: Tensor,
                    where: Tensor, taken_only: bool = False
                    ) -> dict[str, dict[str, float | int]]:
    """Mean advantage ``adv`` ``[T, B, 2]`` of each agent's plan action over the
    situations ``where`` ``[T, B]``, split by what its partner did: took its part of the
    plan (``partner_plan``), did not (``partner_not_plan``), played safe
    (``partner_safe``). ``taken_only``: only where the agent itself took its part of the
    plan (for an advantage of the taken action)."""
    w = where[..., None].expand_as(adv)
    if taken_only:
        w = w & (actions == plan)
    p_act, p_plan, p_safe = partner(actions), partner(plan), partner(safe)
    return {"partner_plan": masked_mean(adv, w & (p_act == p_plan)),
            "partner_not_plan": masked_mean(adv, w & (p_act != p_plan)),
            "partner_safe": masked_mean(adv, w & (p_act == p_safe))}


def return_split(g: Tensor, actions: Tensor, plan: Tensor, safe: Tensor, where: Tensor
                 ) -> dict[str, dict[str, float | int]]:
    """The Monte-Carlo return to go ``g`` ``[T, B, N]`` (mean over agents) in the
    situations ``where`` ``[T, B]`` after the team played the plan (``plan``), the safe
    joint action (``safe``) or anything else (``other``): what the critic's ``Q`` of the
    plan and of the safe action should be under the policy that acted."""
    g = g.mean(-1)
    is_plan, is_safe = (actions == plan).all(-1), (actions == safe).all(-1)
    return {"plan": masked_mean(g, where & is_plan), "safe": masked_mean(g, where & is_safe),
            "other": masked_mean(g, where & ~is_plan & ~is_safe)}


def deviation_split(adv: Tensor, actions: Tensor, safe: Tensor, mask: Tensor
                    ) -> dict[str, dict[str, float | int]]:
    """Mean advantage ``adv`` ``[T, B, 2]`` of the agents' taken actions where they left
    the safe action (``actions != safe``, steps ``mask`` ``[T, B]``), split by whether
    the partner played safe (``partner_safe``) or not (``partner_not_safe``): what the
    actor was told of leaving the safe plan, whatever the situation."""
    w = mask[..., None] & (actions != safe)
    p_safe = partner(actions) == partner(safe)
    return {"partner_safe": masked_mean(adv, w & p_safe),
            "partner_not_safe": masked_mean(adv, w & ~p_safe)}


def entropy(p: Tensor, mask: Tensor) -> float:
    """Mean entropy (nats) of the distributions ``p`` ``[..., N, A]`` over ``mask``
    ``[..., N]``."""
    h = common.entropy(p)
    return float(h[mask].mean()) if mask.any() else float("nan")


__all__ = ["advantage_of", "advantage_split", "beliefs", "box_cells", "box_situation",
           "deviation_split", "dpomdp_situation", "entropy", "episode_fraction", "episode_return",
           "first_episode", "joint_index", "joint_q", "masked_mean", "partner",
           "plan_and_safe", "push_directions", "return_split"]
