"""Why a COMA-family run does not find the joint plan: per kept checkpoint (every 250k
env steps), in training-policy episodes, how often the plan is played, what the critic
says of it and what advantage the actor sees.

    python experiments/coordination/diagnose.py RUN_DIR [RUN_DIR ...] \\
        [--episodes 512] [--seed 12345] [--out FILE.json]
    python experiments/coordination/diagnose.py --tables FILE.json   # Markdown tables

For every checkpoint in ``RUN_DIR/checkpoints`` (oldest first) it rebuilds the run from
its own config (:func:`marl.build.build`), loads the networks, sets the exploration
epsilon of the checkpoint's env step and collects one fragment in ``--episodes`` fresh
envs, one episode-length long; each env's first episode counts (so exactly
``--episodes`` whole episodes). Then, with the learner's own passes (its actor pass,
advantage inputs, critics and advantage module; :mod:`marl.analysis.coordination` for
the maths):

* ``return_mean``: the episodes' mean return (strict box: the share solved);
* ``frac_plan_episodes`` / ``frac_progress_episodes``: the share of episodes with at
  least one joint push / one box move (strict box), with the team opening the door
  without the tiger / anyone opening a door (Dec-Tiger);
* ``q_plan`` / ``q_safe``: the Q-critic's ``Q(s, u)`` of the joint plan and of the safe
  joint action (both stay / both listen) in the situations (both robots on one cell
  next to the box / the joint belief favours the plan), each agent's row read at its
  own action, mean over agents; on Dec-Tiger also outside the situations
  (``*_elsewhere``), and the expected immediate rewards under the joint belief
  (``r_plan`` / ``r_safe``, ``r_plan_elsewhere``: the immediate part of what a critic
  of the joint history would say);
* ``g_after``: the Monte-Carlo return to go (discounted with ``algo.gamma``) in the
  situations after the team played the plan / the safe joint action / anything else,
  what ``q_plan`` / ``q_safe`` should be under the policy that acted;
* ``adv_q``: COMA's counterfactual advantage (eq. 4, from the Q-critic) of each agent's
  part of the plan in the situations, split by the partner's action (plan / not plan /
  safe); ``adv_module``: the run's own advantage module (``algo.advantage``, before any
  standardisation) where the agent took its part of the plan, split the same way;
  ``adv_module_leave_safe``: the same module's advantage wherever an agent left the
  safe action (moved / opened a door), split by whether its partner played safe;
* ``entropy``: the actor's softmax entropy (nats) over all steps and in the situations.

A recurrent critic (``algo.critic_net=gru``) is read at a counterfactual joint action
one step at a time (its history keeps the actions taken). A run without a Q-critic
reports ``V`` in the situations and no Q or ``adv_q``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from marl.algos.coma.critic_training import critic_batches
from marl.analysis.coordination import (
    advantage_of,
    advantage_split,
    beliefs,
    box_situation,
    deviation_split,
    dpomdp_situation,
    entropy,
    episode_fraction,
    episode_return,
    first_episode,
    joint_index,
    joint_q,
    masked_mean,
    return_split,
)
from marl.build import build
from marl.core.returns import discounted_returns, td_lambda_targets
from marl.core.rollout import TIMEOUTS
from marl.envs.dpomdp.config import resolve_problem
from marl.envs.dpomdp.parser import load_cached
from marl.evaluate import load_run_config
from marl.io.checkpoint import load_checkpoint


def next_situation(ro) -> tuple[Tensor, Tensor]:
    """State and observations after each step ``[T, B, ...]``: the final ones where the
    episode ended there."""
    ended = ro.terminated | ro.truncated
    state = torch.where(ended[..., None], ro.final_state, ro.state[1:])
    obs = torch.where(ended[..., None, None], ro.final_obs, ro.obs[1:])
    return state, obs


def read_box(cfg, ro) -> dict[str, Tensor]:
    state, _ = next_situation(ro)
    return box_situation(ro.state[:-1], state, ro.actions, cfg.env.width, cfg.env.height)


def read_dpomdp(cfg, ro) -> dict[str, Tensor]:
    model = load_cached(resolve_problem(cfg.env.problem)[1])
    n_s, n_o = model.n_states, max(model.n_obs)
    _, obs = next_situation(ro)
    own_obs = obs[..., :n_o].argmax(-1)  # [T, B, N] what each agent heard after t
    joint_obs = joint_index(own_obs, model.n_obs)
    ja = joint_index(ro.actions, model.n_actions)
    bel = beliefs(torch.tensor(model.start), torch.tensor(model.transition),
                  torch.tensor(model.observation), ja, joint_obs)
    return dpomdp_situation(ro.state[:-1, :, :n_s].argmax(-1), bel, ro.actions,
                            torch.tensor(model.reward), model.n_actions)


READERS = {"boxpush": (read_box, lambda env: env.max_steps),
           "dpomdp": (read_dpomdp, lambda env: env.horizon)}
"""env.name -> (the reading of its fragment (:mod:`marl.analysis.coordination`), the
episode length of its config)."""


def q_of(critic, now, actions: Tensor, joint: Tensor) -> Tensor:
    """The critic's output ``[T, B, N, A]`` at joint action ``joint`` ``[T, B, N]``; a
    recurrent critic gets it one step at a time, the taken ``actions`` elsewhere."""
    if not critic.net.recurrent:
        return critic.output(replace(now, actions=joint))
    out = []
    for t in range(actions.shape[0]):
        u = actions.clone()
        u[t] = joint[t]
        out.append(critic.output(replace(now, actions=u))[t])
    return torch.stack(out)


@torch.no_grad()
def rollout(cfg, ckpt: Path, episodes: int, seed: int):
    """(learner, fragment, actor pass, advantage inputs, critic batch, env steps) of one
    checkpoint, the critics' outputs and targets filled in as the update's."""
    state = load_checkpoint(ckpt)
    torch.manual_seed(seed)
    _, learner, runner = build(cfg, episodes, seed=seed)
    learner.load_networks(state["learner"])
    env_steps = int(state["env_steps"])
    learner.policy.anneal(env_steps)
    ro = runner.collect(learner.policy)
    ro = type(ro)(**{k: (v.clone() if isinstance(v, Tensor) else v)
                     for k, v in vars(ro).items()})  # out of inference mode
    ro = TIMEOUTS[cfg.algo.timeouts](ro)
    act = learner.actor_pass(ro)
    stays, x = learner.advantage_inputs(ro, act)
    now, nxt = critic_batches(learner.parts, ro, act.hs, stays)
    for kind, critic in learner.critics.items():
        critic.begin(now)
        x.q[kind] = critic.output(now)
        x.next_values[kind] = critic.values(
            nxt, target=learner.critic_training.bootstrap_from_target)
        x.targets[kind] = td_lambda_targets(x.rewards, x.next_values[kind], ro.terminated,
                                            ro.truncated, cfg.algo.gamma,
                                            cfg.algo.td_lambda, stays=stays)
    return learner, ro, act, x, now, env_steps


def critic_stats(learner, now, ro, x, sit: dict, mask: Tensor) -> dict:
    """Q of the plan and of the safe joint action, and COMA's advantage of the plan."""
    where = sit["where"] & mask
    out: dict = {}
    critic = dict(learner.critics.items()).get("central_q")
    if critic is None:
        v = next(iter(x.q.values()))[..., 0].mean(-1)
        return {"v_where": masked_mean(v, where), "q_plan": None, "q_safe": None}
    q_plan = joint_q(q_of(critic, now, ro.actions, sit["plan"]), sit["plan"])
    q_safe = joint_q(q_of(critic, now, ro.actions, sit["safe"]), sit["safe"])
    out["q_plan"], out["q_safe"] = masked_mean(q_plan, where), masked_mean(q_safe, where)
    if "r_plan" in sit:  # a Dec-POMDP: the plan of the true state is defined everywhere
        out["q_plan_elsewhere"] = masked_mean(q_plan, ~sit["where"] & mask)
        out["q_safe_elsewhere"] = masked_mean(q_safe, ~sit["where"] & mask)
        out["r_plan_elsewhere"] = masked_mean(sit["r_plan"], ~sit["where"] & mask)
        out["r_plan"], out["r_safe"] = (masked_mean(sit[k], where) for k in ("r_plan", "r_safe"))
        out["by_t"] = {str(t): {"where": int(where[t].sum()),
                                "q_plan": masked_mean(q_plan[t], where[t])["mean"],
                                "q_safe": masked_mean(q_safe[t], where[t])["mean"],
                                "q_plan_elsewhere": masked_mean(
                                    q_plan[t], ~sit["where"][t] & mask[t])["mean"]}
                       for t in range(where.shape[0])}
    adv = advantage_of(x.q["central_q"], x.pi, sit["plan"])
    out["adv_q"] = advantage_split(adv, ro.actions, sit["plan"], sit["safe"], where)
    return out


def checkpoint_row(cfg, ckpt: Path, episodes: int, seed: int) -> dict:
    learner, ro, act, x, now, env_steps = rollout(cfg, ckpt, episodes, seed)
    with torch.no_grad():
        sit = READERS[cfg.env.name][0](cfg, ro)
        mask = first_episode(ro.first[:-1], ro.terminated | ro.truncated)
        adv_mod, _ = learner.compute_advantage(x)
        g = discounted_returns(x.rewards, ro.terminated, ro.truncated, cfg.algo.gamma)
        row = {"env_steps": env_steps, "eps": float(ro.eps[0]),
               "episodes": int(mask.any(0).sum()),
               "return_mean": episode_return(ro.rewards, mask),
               "frac_plan_episodes": episode_fraction(sit["plan_taken"], mask),
               "frac_progress_episodes": episode_fraction(sit["progress"], mask),
               "situations": int((sit["where"] & mask).sum()),
               "plan_steps": int((sit["plan_taken"] & mask).sum()),
               **critic_stats(learner, now, ro, x, sit, mask),
               "g_after": return_split(g, ro.actions, sit["plan"], sit["safe"],
                                       sit["where"] & mask),
               "adv_module": advantage_split(adv_mod, ro.actions, sit["plan"], sit["safe"],
                                             sit["where"] & mask, taken_only=True),
               "adv_module_leave_safe": deviation_split(adv_mod, ro.actions, sit["safe"],
                                                        mask),
               "entropy": entropy(act.soft, mask[..., None] & ro.alive[:-1]),
               "entropy_where": entropy(act.soft, (mask & sit["where"])[..., None]
                                        & ro.alive[:-1])}
    return row


def diagnose(run_dir: Path, episodes: int, seed: int) -> dict:
    cfg = load_run_config(run_dir)
    if cfg.env.name not in READERS:
        raise SystemExit(f"error: {run_dir}: env.name={cfg.env.name!r} has no reading here; "
                         f"use one of {sorted(READERS)}")
    cfg.train.fragment_len = READERS[cfg.env.name][1](cfg.env)
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    if not ckpts:
        raise SystemExit(f"error: no checkpoint in {run_dir / 'checkpoints'}")
    torch.set_num_threads(1)
    rows = []
    for ckpt in ckpts:
        rows.append(checkpoint_row(cfg, ckpt, episodes, seed))
        show(rows[-1])
    return {"run_dir": str(run_dir), "env": cfg.env.name, "name": cfg.name,
            "advantage": cfg.algo.advantage, "actor_update": cfg.algo.actor_update,
            "critic_net": cfg.algo.critic_net, "seed": cfg.seed, "episodes": episodes,
            "diag_seed": seed, "rows": rows}


def finite(x):
    """``x`` with every NaN (a mean over no step) as None: strict JSON."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x


def fmt(d: dict | None, key: str = "mean") -> str:
    return "n/a" if not d else f"{d[key]:+.3f}"


def show(r: dict) -> None:
    a, m = r.get("adv_q") or {}, r["adv_module"]
    print(f"{r['env_steps']:>9} eps {r['eps']:.3f}  return {r['return_mean']:+.3f}"
          f"  plan ep {r['frac_plan_episodes']:.3f}"
          f"  progress ep {r['frac_progress_episodes']:.3f}  situations {r['situations']}"
          f"  Q plan {fmt(r.get('q_plan'))} safe {fmt(r.get('q_safe'))}"
          f"  G plan {fmt(r['g_after']['plan'])} safe {fmt(r['g_after']['safe'])}"
          f"  A(plan | partner plan) {fmt(a.get('partner_plan'))}"
          f" (n {a.get('partner_plan', {}).get('n', 0)})"
          f" | not {fmt(a.get('partner_not_plan'))}"
          f"  module {fmt(m['partner_plan'])} | {fmt(m['partner_not_plan'])}"
          f"  leave safe {fmt(r['adv_module_leave_safe']['partner_safe'])}"
          f"  H {r['entropy']:.3f}", flush=True)


COLUMNS = (
    ("env steps", lambda r: f"{r['env_steps'] / 1e6:.2f}M"),
    ("eps", lambda r: f"{r['eps']:.3f}"),
    ("return", lambda r: f"{r['return_mean']:.4g}"),
    ("plan episodes", lambda r: f"{r['frac_plan_episodes']:.3f}"),
    ("progress episodes", lambda r: f"{r['frac_progress_episodes']:.3f}"),
    ("situations", lambda r: str(r["situations"])),
    ("Q plan / safe", lambda r: f"{mean(r.get('q_plan'))} / {mean(r.get('q_safe'))}"),
    ("Q plan / safe outside", lambda r: f"{mean(r.get('q_plan_elsewhere'))} / "
                                        f"{mean(r.get('q_safe_elsewhere'))}"),
    ("E_b R plan / safe", lambda r: f"{mean(r.get('r_plan'))} / {mean(r.get('r_safe'))}"),
    ("E_b R plan outside", lambda r: mean(r.get("r_plan_elsewhere"))),
    ("G plan / safe", lambda r: f"{mean(r['g_after']['plan'])} / "
                                f"{mean(r['g_after']['safe'])}"),
    ("A plan: partner plan / not", lambda r: (
        f"{mean((r.get('adv_q') or {}).get('partner_plan'))} (n {count(r, 'partner_plan')})"
        f" / {mean((r.get('adv_q') or {}).get('partner_not_plan'))}")),
    ("A leave safe: partner safe / not", lambda r: (
        f"{mean(r['adv_module_leave_safe']['partner_safe'])} / "
        f"{mean(r['adv_module_leave_safe']['partner_not_safe'])}")),
    ("entropy", lambda r: f"{r['entropy']:.3f}"),
)
"""The results page's table per run: one row per checkpoint (a column that is n/a on
every row of a run is left out)."""


def mean(d: dict | None) -> str:
    return "n/a" if not d or d["n"] == 0 or d["mean"] is None else f"{d['mean']:.3g}"


def count(r: dict, key: str) -> int:
    return int(((r.get("adv_q") or {}).get(key) or {}).get("n", 0))


def tables(results: list[dict]) -> str:
    """Markdown: one table per run of :data:`COLUMNS`."""
    out = []
    for res in results:
        cols = [(c, f) for c, f in COLUMNS
                if any(f(r).replace("n/a", "").strip(" /") for r in res["rows"])]
        out.append(f"\n{res['name']} (`{res['run_dir']}`, {res['advantage']} + "
                   f"{res['actor_update']}, critic {res['critic_net']}, seed {res['seed']}, "
                   f"{res['episodes']} episodes per checkpoint)\n")
        out.append("| " + " | ".join(c for c, _ in cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += ["| " + " | ".join(f(r) for _, f in cols) + " |" for r in res["rows"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="*", type=Path)
    p.add_argument("--tables", type=Path, default=None,
                   help="print the Markdown tables of a diagnosis JSON (nothing runs)")
    p.add_argument("--episodes", type=int, default=512)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.tables:
        print(tables(json.loads(args.tables.read_text())))
        return 0
    results = []
    for d in args.run_dirs:
        print(d, flush=True)
        results.append(diagnose(d, args.episodes, args.seed))
    if args.out:
        args.out.write_text(json.dumps(finite(results), indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
