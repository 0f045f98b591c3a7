"""Dead policy nets on the bandit: how often the default actor init starts with a whole
layer dead, and that ``algo.actor_init: mirrored`` never does.

The bandit's observation is a constant, so each ReLU of the actor is either active for
every input or dead for good. With 5 units per layer and the default init (orthogonal
weights, zero biases) a whole layer is dead at init for about 1 seed in 11; then only the
output biases learn, too slowly for 0.95 in 2,000 Adam steps at lr 1e-3.

    python experiments/classics/mirrored_init.py [n_seeds]
"""

from __future__ import annotations

import sys

import torch

from marl.algos.coma.config import ComaConfig
from marl.algos.coma.learner import Learner
from marl.envs.bandit import BanditCore


def dead_seeds(init: str, n_seeds: int = 64) -> list[int]:
    """Seeds whose [5, 5] actor has a layer with no active unit on the bandit's input
    (seeded as the Trainer seeds it: the actor is the first thing drawn)."""
    env = BanditCore(num_envs=1)
    obs = torch.ones(1, 1, 1)
    dead = []
    for seed in range(n_seeds):
        torch.manual_seed(seed)
        net = Learner(env.spec, ComaConfig(actor_hidden=[5, 5], actor_init=init)).actor.nets[0]
        none = torch.full((1, 1), env.spec.n_actions)
        h1 = torch.relu(net.encoder(obs) + net.id_emb(torch.zeros(1, dtype=torch.long))
                        + net.act_emb(none))
        h2 = torch.relu(net.head[0](h1))
        if not (h1 > 0).any() or not (h2 > 0).any():
            dead.append(seed)
    return dead


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    for init in ("orthogonal", "mirrored"):
        dead = dead_seeds(init, n)
        print(f"actor_init={init}: seeds 0..{n - 1} with a dead actor layer at init: "
              f"{dead} ({len(dead)}/{n})")
