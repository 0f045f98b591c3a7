"""What limits an actor-critic on SMAX: its critic against Monte-Carlo returns, and its
advantage against the spread of the critic over the agent's own actions.

``python experiments/smax/diagnose.py RUN_DIR [RUN_DIR ...] [--checkpoint FILE]
[--envs 64] [--steps 250] [--seed S] [--json OUT]`` rebuilds each run from its own
config (:func:`marl.build.build`), loads its newest checkpoint (or ``--checkpoint``),
collects one fragment of ``--steps`` steps in ``--envs`` fresh envs with the *training*
policy (the epsilon of the checkpoint's env step), and then, with the learner's own
functions (its actor pass and advantage inputs, the critics' inputs of
:func:`marl.algos.coma.critic_training.critic_batches`, the advantage module of
``algo.advantage``, the TD(lambda) targets of the critics' training):

* the critic's error against the Monte-Carlo return ``G_t`` (discounted team return to
  the episode's end; a unit that dies continues with the team's return, as the critic's
  targets do): bias and RMS, overall, by the episode's time step (buckets of 10) and by
  the unit's fate (``survives``: alive at the episode's end; ``dies later``; ``last
  step``: the step it dies in), with the explained variance ``1 - Var(G - Q) / Var(G)``;
* the same error of the TD(lambda) target the critic is trained on (``G^lambda``);
* the advantage the actor sees, ``|A|`` (mean), against the spread of the critic over
  the agent's own available actions under its policy, ``sd_pi Q = sqrt(sum_u pi(u)
  (Q(s, (u^-a, u)) - b)^2)`` and ``max - min`` (Q-critics only), and the correlation of
  ``A`` with the Monte-Carlo advantage ``G_t - b`` (b: the module's baseline) and the
  slope of ``G_t - b`` regressed on ``A`` (1: A is unbiased for the advantage the returns
  show; 0: A is noise); the same for every advantage module the run's critics can feed
  (on a COMA run: coma, coma_return, coma_ob, coma_ob_return, from the same critic),
  all against one reference baseline (COMA's, with a Q-critic), so that a module whose
  own baseline varies a lot does not look correlated through that baseline alone.

Only steps of episodes that ended by termination inside the fragment count (a
Monte-Carlo return needs the episode's end; SMAX's time limit cuts few episodes, their
share is printed). The envs start fresh, so every step before an env's last episode end
belongs to a complete episode.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from marl.algos.coma.advantages import ADVANTAGES
from marl.algos.coma.critic_training import critic_batches
from marl.build import build
from marl.core.returns import discounted_returns, td_lambda_targets
from marl.evaluate import load_run_config
from marl.io.checkpoint import latest_checkpoint, load_checkpoint

FATES = ("survives", "dies later", "last step")


def episode_steps(first: Tensor) -> Tensor:
    """``[T, B]`` index of each step within its episode, from ``first`` ``[T, B]``."""
    out = torch.zeros(first.shape, dtype=torch.long)
    for t in range(1, first.shape[0]):
        out[t] = torch.where(first[t], 0, out[t - 1] + 1)
    return out


def complete_terminated(terminated: Tensor, truncated: Tensor) -> tuple[Tensor, Tensor]:
    """``[T, B]`` masks: the step belongs to an episode that ended inside the fragment by
    termination, and the same for truncation (walked backwards from each episode end)."""
    t_len, b = terminated.shape
    term, trunc = torch.zeros(t_len, b, dtype=torch.bool), torch.zeros(t_len, b, dtype=torch.bool)
    cur_term = torch.zeros(b, dtype=torch.bool)
    cur_trunc = torch.zeros(b, dtype=torch.bool)
    for t in range(t_len - 1, -1, -1):
        ends = terminated[t] | truncated[t]
        cur_term = torch.where(ends, terminated[t], cur_term)
        cur_trunc = torch.where(ends, truncated[t], cur_trunc)
        term[t], trunc[t] = cur_term, cur_trunc
    return term, trunc


def fate(alive: Tensor, stays: Tensor, first: Tensor) -> Tensor:
    """``[T, B, N]`` index into :data:`FATES`: 2 where the unit leaves after t, 1 where it
    leaves later in the episode, 0 where it is still in at the episode's end."""
    leaves_now = alive & ~stays
    out = torch.zeros(alive.shape, dtype=torch.long)
    later = torch.zeros(alive.shape[1:], dtype=torch.bool)
    for t in range(alive.shape[0] - 1, -1, -1):
        out[t] = torch.where(leaves_now[t], 2, torch.where(later, 1, 0))
        later = (later | leaves_now[t]) & ~first[t][:, None]  # an episode start cuts it
    return out


def module_stats(adv: Tensor, ref: Tensor, g: Tensor, m: Tensor) -> dict[str, float]:
    """|A|, corr(A, G - ref) and the slope of G - ref on A of one advantage module's
    advantage over mask ``m``; ``ref`` is one reference baseline for every module (so a
    module's own baseline cannot correlate A with G - b through b itself)."""
    adv = adv[m]
    mc = g[m] - ref[m]
    cov = torch.cov(torch.stack([adv, mc]))
    return {"adv_abs": float(adv.abs().mean()),
            "corr": float(cov[0, 1] / (cov[0, 0] * cov[1, 1]).sqrt().clamp_min(1e-12)),
            "slope": float(cov[0, 1] / cov[0, 0].clamp_min(1e-12))}


def q_spread(q: Tensor, pi: Tensor, m: Tensor, t_ep: Tensor) -> dict:
    """How much a Q-critic's output ``[..., A]`` varies over the agent's own available
    actions: the sd under pi around COMA's baseline ``sum_u pi(u) Q(u)``, and max - min;
    means over mask ``m``, and the sd by episode step (buckets of 10)."""
    avail = pi > 0
    b = torch.where(avail, pi * q, 0.0).sum(-1, keepdim=True)
    sd = torch.where(avail, pi * (q - b) ** 2, 0.0).sum(-1).sqrt()
    rng = torch.where(avail, q, -1e9).amax(-1) - torch.where(avail, q, 1e9).amin(-1)
    return {"q_spread_sd_pi": float(sd[m].mean()), "q_spread_max_min": float(rng[m].mean()),
            "q_spread_by_t": {f"{lo}-{lo + 9}": float(sd[m & (t_ep >= lo) & (t_ep < lo + 10)]
                                                      .mean()) for lo in range(0, 60, 10)}}


def err_stats(err: Tensor, g: Tensor, m: Tensor) -> dict[str, float]:
    """Bias, RMS and explained variance of ``err = pred - g`` over mask ``m``."""
    e, gv = err[m], g[m]
    if e.numel() == 0:
        return {"n": 0}
    ev = 1.0 - float(e.var(unbiased=False) / gv.var(unbiased=False).clamp_min(1e-12))
    return {"n": int(e.numel()), "bias": float(e.mean()), "rms": float(e.pow(2).mean().sqrt()),
            "explained_var": ev}


@torch.no_grad()
def analyse(run_dir: Path, checkpoint: Path | None, envs: int, steps: int, seed: int) -> dict:
    cfg = load_run_config(run_dir)
    ckpt = checkpoint or latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise SystemExit(f"no checkpoint in {run_dir / 'checkpoints'}")
    state = load_checkpoint(ckpt)
    cfg.train.fragment_len = steps
    torch.manual_seed(seed)
    env, learner, runner = build(cfg, envs, seed=seed)
    learner.load_networks(state["learner"])
    env_steps = int(state.get("env_steps", 0))
    learner.policy.anneal(env_steps)
    ro = runner.collect(learner.policy)
    ro = type(ro)(**{k: (v.clone() if isinstance(v, Tensor) else v)
                     for k, v in vars(ro).items()})  # out of inference mode
    a = cfg.algo
    alive = ro.alive[:-1]
    act = learner.actor_pass(ro)  # the exploring policy that acted, as the update sees it
    stays, x = learner.advantage_inputs(ro, act)  # who stays after t; the advantage's inputs
    now, nxt = critic_batches(learner.parts, ro, act.hs, stays)
    g = discounted_returns(x.rewards, ro.terminated, ro.truncated, a.gamma, stays=stays)
    term_ep, trunc_ep = complete_terminated(ro.terminated, ro.truncated)
    valid = alive & term_ep[..., None]
    t_ep = episode_steps(ro.first[:-1])[..., None].expand_as(alive)
    fates = fate(alive, stays, ro.first[:-1])
    pi = x.pi
    out: dict = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "env_steps": env_steps,
                 "advantage": a.advantage, "eps": float(ro.eps[0]),
                 "share_truncated": float((alive & trunc_ep[..., None]).sum()
                                          / (alive & (term_ep | trunc_ep)[..., None]).sum()),
                 "critics": {}}
    for kind, critic in learner.critics.items():
        x.q[kind] = critic.net(now)
        x.next_values[kind] = critic.values(
            nxt, target=learner.critic_training.bootstrap_from_target)
        x.targets[kind] = td_lambda_targets(x.rewards, x.next_values[kind], ro.terminated,
                                            ro.truncated, a.gamma, a.td_lambda, stays=stays)
        pred = critic.values(now)
        c = {"all": err_stats(pred - g, g, valid),
             "target_all": err_stats(x.targets[kind] - g, g, valid),
             "by_t": {f"{lo}-{lo + 9}": err_stats(pred - g, g, valid & (t_ep >= lo)
                                                 & (t_ep < lo + 10)) for lo in range(0, 100, 10)},
             "by_fate": {f: err_stats(pred - g, g, valid & (fates == i))
                         for i, f in enumerate(FATES)},
             "mean_G": float(g[valid].mean()), "sd_G": float(g[valid].std())}
        out["critics"][kind] = c
    adv, base = learner.compute_advantage(x)
    mc_adv = g - base
    va = valid
    out["adv_abs"] = float(adv[va].abs().mean())
    out["adv_sd"] = float(adv[va].std())
    out["corr_adv_mc"] = float(torch.corrcoef(torch.stack([adv[va], mc_adv[va]]))[0, 1])
    out["mc_adv_abs"] = float(mc_adv[va].abs().mean())
    # slope of the Monte-Carlo advantage on A: 1 if A is unbiased for it, 0 if A is noise
    out["slope_mc_on_adv"] = float(torch.cov(torch.stack([adv[va], mc_adv[va]]))[0, 1]
                                   / adv[va].var().clamp_min(1e-12))
    q = x.q.get("central_q", x.q.get("local_q"))
    if q is not None:
        out.update(q_spread(q, pi, va, t_ep))
    ref = ADVANTAGES["coma"].fn(x)[1] if "central_q" in x.q else base  # COMA's baseline
    out["modules"] = {name: module_stats(row.fn(x)[0], ref, g, va)
                      for name, row in ADVANTAGES.items()
                      if row.critics and set(row.critics) <= set(x.q)}
    ent = -(pi * pi.clamp_min(1e-10).log()).sum(-1)
    out["policy_entropy"] = float(ent[va].mean())
    out["n_avail"] = float((pi > 0).sum(-1).float()[va].mean())
    return out


def show(r: dict) -> None:
    print(f"\n{r['run_dir']} @ {r['env_steps']} env steps ({r['advantage']}, eps "
          f"{r['eps']:.3f}); share of steps in truncated episodes (excluded): "
          f"{r['share_truncated']:.3f}")
    for kind, c in r["critics"].items():
        a, tg = c["all"], c["target_all"]
        print(f"  {kind}: G mean {c['mean_G']:.3f} sd {c['sd_G']:.3f}; critic - G: bias "
              f"{a['bias']:+.3f} rms {a['rms']:.3f} expl.var {a['explained_var']:.2f} "
              f"(n={a['n']}); its TD(lambda) target - G: bias {tg['bias']:+.3f} rms "
              f"{tg['rms']:.3f}")
        print("    by t:    " + "  ".join(f"{k}: {v['bias']:+.2f}/{v['rms']:.2f}"
                                          for k, v in c["by_t"].items() if v["n"]))
        print("    by fate: " + "  ".join(f"{k}: {v['bias']:+.3f}/{v['rms']:.3f} (n={v['n']})"
                                          for k, v in c["by_fate"].items() if v["n"]))
    print(f"  |A| {r['adv_abs']:.4f} (sd {r['adv_sd']:.4f}); |G - b| {r['mc_adv_abs']:.3f}; "
          f"corr(A, G - b) {r['corr_adv_mc']:.3f}, slope of G - b on A "
          f"{r['slope_mc_on_adv']:.2f}; policy entropy {r['policy_entropy']:.2f} "
          f"over {r['n_avail']:.1f} available actions")
    if "q_spread_sd_pi" in r:
        print(f"  Q over own actions: sd under pi {r['q_spread_sd_pi']:.4f}, max - min "
              f"{r['q_spread_max_min']:.4f}; by t: " + "  ".join(
                  f"{k}: {v:.4f}" for k, v in r["q_spread_by_t"].items()))
    print("  every module on the same critics (|A| / corr(A, G - b) / slope of G - b on A; b "
          "COMA's baseline for all): "
          + "  ".join(f"{k}: {v['adv_abs']:.4f} / {v['corr']:.3f} / {v['slope']:.2f}"
                      for k, v in r["modules"].items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = [analyse(d, args.checkpoint, args.envs, args.steps, args.seed)
               for d in args.run_dirs]
    for r in results:
        show(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
