"""Scripted SMAX policies: what simple, fixed rules win against the heuristic enemy.

The learned policies of the ablation table stop near 48% on 3m; this prints the win rate
of hand-written rules on the same env (JaxMARL's HeuristicEnemySMAX, the same reset
distribution), so a plateau can be read against them:

    python experiments/smax/scripted.py --map 3m --episodes 1024

Rules (each unit on its own; SMAX's discrete actions are 0-3 diagonal moves, 4 stop,
5 + j attack enemy j, attacks only available in range):

* ``random``: uniform over the available actions.
* ``hold_first`` / ``hold_weakest``: stand still (action 4) until an enemy is in range,
  then shoot the lowest-numbered / the weakest enemy in range.
* ``advance_first`` / ``advance_weakest``: the same, but move toward the enemy's side
  (the diagonal that closes the distance at the start) while none is in range.
"""

from __future__ import annotations

import argparse
import json

RULES = ("random", "hold_first", "hold_weakest", "advance_first", "advance_weakest")


def win_rates(map_name: str, episodes: int, seed: int = 0) -> dict[str, dict[str, float]]:
    import jax
    import jax.numpy as jnp
    import jaxmarl
    from jaxmarl.environments.smax import map_name_to_scenario

    env = jaxmarl.make("HeuristicEnemySMAX", scenario=map_name_to_scenario(map_name))
    n_allies, n_move = env.num_allies, env.num_movement_actions  # stop is n_move - 1
    limit = env.max_steps + 1  # JaxMARL's episodes last at most max_steps + 1 steps

    # the diagonal that moves toward the enemy: the one whose decoded vector has the
    # largest x component (allies start on the left, enemies on the right)
    moves = jnp.stack([env._decode_discrete_actions(jnp.array([a]))[0][0]
                       for a in range(n_move - 1)])
    advance = int(jnp.argmax(moves[:, 0]))

    def act(rule: str, state, avail, key):
        if rule == "random":
            return jax.random.categorical(key, jnp.where(avail > 0, 0.0, -jnp.inf))
        in_range = avail[:, n_move:] > 0  # [N, enemies]
        health = state.state.unit_health[n_allies:]
        score = (-health[None] if rule.endswith("weakest")
                 else -jnp.arange(in_range.shape[1])[None].astype(jnp.float32))
        target = n_move + jnp.where(in_range, score, -jnp.inf).argmax(1)
        idle = advance if rule.startswith("advance") else n_move - 1
        return jnp.where(in_range.any(1), target, idle)

    def episode(rule: str, key):
        key, k = jax.random.split(key)
        _, state = env.reset(k)

        def step(carry, _):
            key, state, done, won, ret = carry
            key, ka, ks = jax.random.split(key, 3)
            av = env.get_avail_actions(state)
            avail = jnp.stack([av[a] for a in env.agents])
            acts = act(rule, state, avail, ka)
            _, nxt, rew, dones, _ = env.step_env(
                ks, state, {a: acts[i] for i, a in enumerate(env.agents)})
            over = dones["__all__"] & ~done
            alive = nxt.state.unit_alive
            won = won | (over & ~alive[n_allies:].any() & alive[:n_allies].any())
            ret = ret + jnp.where(done, 0.0, rew[env.agents[0]])
            state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state, nxt)
            return (key, state, done | dones["__all__"], won, ret), None

        init = (key, state, jnp.array(False), jnp.array(False), jnp.array(0.0))
        (_, _, _, won, ret), _ = jax.lax.scan(step, init, None, length=limit)
        return won, ret

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    out = {}
    for rule in RULES:
        won, ret = jax.jit(jax.vmap(lambda k, r=rule: episode(r, k)))(keys)
        out[rule] = {"win_rate": float(won.mean()), "return_mean": float(ret.mean())}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", default="3m", help="SMAX scenario (3m, 2s3z, 5m_vs_6m, ...)")
    p.add_argument("--episodes", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    res = win_rates(args.map, args.episodes, args.seed)
    for rule, r in res.items():
        print(f"{args.map:10s} {rule:16s} win {r['win_rate']:.3f}  return {r['return_mean']:.3f}")
    print(json.dumps({"map": args.map, "episodes": args.episodes, "seed": args.seed,
                      "rules": res}))


if __name__ == "__main__":
    main()
