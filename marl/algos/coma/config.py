"""The COMA family's config: the common block plus what COMA, its ablations, IPPO and
MAPPO read (``conf/algo/coma.yaml`` and the files that extend it).

Each choice is a row of a table, and each row checks what it needs of the rest:
``advantage`` (:data:`marl.algos.coma.advantages.ADVANTAGES`), ``actor_update``
(:data:`marl.algos.coma.updates.ACTOR_UPDATES`), ``critic_update``
(:data:`marl.algos.coma.critic_training.CRITIC_TRAINING`). Any of them may be a plugin
``module:attr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marl.algos.base import AlgoCommon
from marl.algos.coma.advantages import ADVANTAGES
from marl.algos.coma.critic_training import CRITIC_TRAINING
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.core.nets import ACTOR_INPUTS, CONV_TORSOS
from marl.core.returns import TEAM_REWARDS
from marl.schema import check, lookup


@dataclass
class ComaConfig(AlgoCommon):
    """COMA and the on-policy learner's hyperparameters (``conf/algo/coma.yaml``)."""

    advantage: str = "coma"
    """Advantage module, a row of marl.algos.coma.advantages.ADVANTAGES: coma (the
    paper's), the ablations central_qv, central_v, iac_v, iac_q, reinforce, COMA's fixes
    coma_return, coma_ob, coma_ob_return, or a plugin module:attr (an Advantage)."""
    actor_lr: float = 5e-4
    """Actor learning rate."""
    critic_lr: float = 5e-4
    """Critic learning rate."""
    conv_torso: str = "nature"
    """Image observations: the actor's conv stack, nature (Mnih et al. 2015) or dqn2013
    (Mnih et al. 2013, ~3x cheaper; marl.core.nets.CONV_TORSOS)."""
    conv_bf16: bool = False
    """Image observations: run the actor's conv stack in bfloat16 (CPU autocast). Faster
    only on CPUs with bf16 instructions (AMX, avx512_bf16)."""
    actor_init: str = "orthogonal"
    """orthogonal, or mirrored (paired ReLU units start as negations: no dead layer at
    init; for very narrow actors on constant inputs, like the bandit's 5 units)."""
    actor_inputs: list[str] = field(default_factory=lambda: list(ACTOR_INPUTS))
    """What the actor sees besides its observation: agent_id (a shared actor tells the
    agents apart) and last_action (its previous action), both as in the COMA paper; []
    gives the observation alone (JaxMARL's MAPPO actor)."""
    critic_hidden: list[int] = field(default_factory=lambda: [128, 128])
    """Critic MLP widths."""
    critic_own_obs: bool = True
    """Give the centralised critic the agent's own observation besides the state."""
    critic_updates: int = 1
    """Critic gradient steps per fragment, before the actor step (critic_update=fragment)."""
    critic_update: str = "fragment"
    """How the critics learn (marl.algos.coma.critic_training.CRITIC_TRAINING): fragment
    (``critic_updates`` steps per fragment on TD(lambda) targets from the target critic,
    the paper's); ppo (one step on each of the actor's PPO minibatches, on targets from
    the critic itself, as MAPPO's and CleanRL's code); shared_torso (ppo with one V-critic
    on the actor's own input: a value head on the actor's torso, trained in the same
    backward pass)."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus on the actor's softmax."""
    normalize_advantage: bool = False
    """Standardise advantages per fragment before the actor step."""
    reinforce_baseline: bool = False
    """reinforce only: subtract a learned central V(s) (and bootstrap from it at cuts)."""
    return_reset_on_reward: bool = False
    """reinforce only: end the discounted sum at every non-zero reward (pg-pong's points)."""
    actor_update: str = "pg"
    """pg (the paper's policy gradient, one step per fragment), ppo (clipped surrogate,
    several epochs over minibatches of the fragment), or a plugin module:attr."""
    clip: float = 0.2
    """ppo: the surrogate's clip range, ratio kept in [1 - clip, 1 + clip]; > 0."""
    epochs: int = 4
    """ppo: passes over the fragment per update; >= 1."""
    minibatches: int = 4
    """ppo: minibatches per epoch; must divide T x B samples (B envs with rnn)."""
    value_coef: float = 0.5
    """shared_torso: weight of the value loss beside the actor's loss."""
    value_clip: float | None = None
    """shared_torso: clip the new value to old value +- this in the value loss (PPO's
    value clipping); null = off."""
    lr_anneal_steps: int = 0
    """Anneal actor and critic learning rates linearly to 0 over this many env steps
    (counted as T x B per update); 0 = constant. Over the whole run:
    ``algo.lr_anneal_steps='${train.total_env_steps}'``."""
    negative_advantage_scale: float = 1.0
    """eta of the optimistic advantage (Zhao et al. 2024): the actor sees max(A, 0) +
    eta * min(A, 0), before any standardisation; in [0, 1], 1 = unchanged."""
    optimistic_others: float = 0.0
    """w of the others' best reply (Pareto-AC, Christianos et al. 2023): the advantage
    reads (1 - w) Q(s, (u^-a, .)) + w max_{u^-a'} Q(s, (u^-a', .)); in [0, 1], 0 = off.
    Needs a centralised Q-critic (coma, central_qv)."""
    team_reward: str = "off"
    """sum or mean: every agent is trained on the sum / mean of the rewards of the agents
    that acted (the paper's one team reward, for envs with per-agent rewards); off: each
    agent's own reward."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_ranges()
        lookup(ACTOR_UPDATES, self.actor_update, "algo.actor_update").validate(self)
        lookup(CRITIC_TRAINING, self.critic_update, "algo.critic_update").validate(self)
        self._check_advantage_options()

    def _check_ranges(self) -> None:
        for k in ("actor_lr", "critic_lr", "clip", "value_coef"):
            check(getattr(self, k) > 0, f"algo.{k}", getattr(self, k), "must be > 0")
        for k in ("critic_updates", "epochs", "minibatches"):
            check(getattr(self, k) >= 1, f"algo.{k}", getattr(self, k), "must be >= 1")
        check(self.actor_init in ("orthogonal", "mirrored"), "algo.actor_init",
              self.actor_init, "choose orthogonal or mirrored")
        check(set(self.actor_inputs) <= set(ACTOR_INPUTS), "algo.actor_inputs",
              list(self.actor_inputs), f"choose a subset of {list(ACTOR_INPUTS)}")
        check(self.conv_torso in CONV_TORSOS, "algo.conv_torso", self.conv_torso,
              f"choose one of {list(CONV_TORSOS)}")
        hidden = list(self.critic_hidden)
        check(len(hidden) >= 1 and all(h >= 1 for h in hidden), "algo.critic_hidden", hidden,
              "must be a non-empty list of positive widths")
        check(self.team_reward in TEAM_REWARDS, "algo.team_reward", self.team_reward,
              f"choose one of {list(TEAM_REWARDS)}")
        check(self.entropy_coef >= 0, "algo.entropy_coef", self.entropy_coef, "must be >= 0")
        check(self.lr_anneal_steps >= 0, "algo.lr_anneal_steps", self.lr_anneal_steps,
              "must be >= 0")
        check(self.value_clip is None or self.value_clip > 0, "algo.value_clip",
              self.value_clip, "must be null or > 0")

    def _check_advantage_options(self) -> None:
        """The options that change only the actor's advantage, against the module."""
        adv = lookup(ADVANTAGES, self.advantage, "algo.advantage")
        takes = [k for k, v in ADVANTAGES.items() if v.baseline_critics]
        check(not self.reinforce_baseline or bool(adv.baseline_critics),
              "algo.reinforce_baseline", self.reinforce_baseline,
              f"only algo.advantage in {takes} takes a learned baseline")
        eta = self.negative_advantage_scale
        check(0.0 <= eta <= 1.0, "algo.negative_advantage_scale", eta, "must be in [0, 1]")
        # Without a learned baseline reinforce's "advantage" is the raw return, whose sign
        # says nothing about better or worse than expected: the transform has no meaning.
        check(eta == 1.0 or adv.critics or self.reinforce_baseline,
              "algo.negative_advantage_scale", eta,
              f"with algo.advantage={self.advantage} it needs algo.reinforce_baseline=true "
              "(the raw return has no sign to be optimistic about); use 1.0 otherwise")
        w = self.optimistic_others
        check(0.0 <= w <= 1.0, "algo.optimistic_others", w, "must be in [0, 1]")
        q_modules = [k for k, v in ADVANTAGES.items() if "central_q" in v.critics]
        check(w == 0.0 or "central_q" in adv.critics, "algo.optimistic_others", w,
              f"needs the centralised Q-critic of algo.advantage in {q_modules} (the "
              f"others' best reply is a max over its joint actions); use 0.0 otherwise")

    def check_with(self, train: Any) -> None:
        lookup(ACTOR_UPDATES, self.actor_update, "algo.actor_update").check_with(self, train)
