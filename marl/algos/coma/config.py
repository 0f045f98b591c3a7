"""The COMA family's config: the common block plus what COMA, its ablations, IPPO and
MAPPO read (``conf/algo/coma.yaml`` and the files that extend it).

Each choice is a row of a table, and each row checks what it needs of the rest:
``advantage`` (:data:`marl.algos.coma.advantages.ADVANTAGES`), ``actor_update``
(:data:`marl.algos.coma.updates.ACTOR_UPDATES`), ``critic_update``
(:data:`marl.algos.coma.critic_training.CRITIC_TRAINING`). Any of them may be a plugin
``module:attr``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from marl.algos.base import AlgoCommon
from marl.algos.coma.advantages import ADVANTAGES, ReinforceOptions
from marl.algos.coma.critic_training import (
    CRITIC_TRAINING,
    MinibatchCriticOptions,
    SharedTorsoOptions,
)
from marl.algos.coma.updates import ACTOR_UPDATES
from marl.algos.coma.updates.ppo import PPOOptions
from marl.core.critic_nets import CRITIC_NETS
from marl.core.nets import ACTOR_INPUTS, CONV_TORSOS, GRU_INITS
from marl.core.returns import TEAM_REWARDS
from marl.core.rollout import TIMEOUTS
from marl.schema import ConfigError, check, lookup


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
    gru_init: str = "torch"
    """The GRU actor's init (marl.core.nets.GRU_INITS): torch (its default) or flax
    (flax's GRUCell: lecun-normal input kernels, orthogonal recurrent ones, zero
    biases; JaxMARL's)."""
    timeouts: str = "bootstrap"
    """A time-limit truncation (marl.core.rollout.TIMEOUTS): bootstrap from the final
    state, or terminal (nothing follows it: JaxMARL's SMAX baselines)."""
    actor_inputs: list[str] = field(default_factory=lambda: list(ACTOR_INPUTS))
    """What the actor sees besides its observation: agent_id (a shared actor tells the
    agents apart) and last_action (its previous action), both as in the COMA paper; []
    gives the observation alone (JaxMARL's MAPPO actor)."""
    critic_hidden: list[int] = field(default_factory=lambda: [128, 128])
    """Critic widths (gru: the first is the GRU's size, after a dense layer as wide)."""
    critic_net: str = "mlp"
    """The critics' network (marl.core.critic_nets.CRITIC_NETS): mlp (feed-forward on
    each step's input, the paper's), or gru (a GRU over the input's history, carried
    across fragments; JaxMARL's MAPPO critic). Either for every critic kind."""
    critic_own_obs: bool = True
    """Give the centralised critic the agent's own observation besides the state."""
    critic_updates: int = 1
    """Critic gradient steps per fragment, before the actor step (the fragment and ppo
    critic rows' regression steps; shared_torso has none)."""
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
    actor_update: str = "pg"
    """pg (the paper's policy gradient, one step per fragment), ppo (clipped surrogate,
    several epochs over minibatches of the fragment), or a plugin module:attr."""
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

    ppo: PPOOptions = field(default_factory=PPOOptions)
    """Options of ``actor_update=ppo`` (clip, epochs, minibatches)."""
    shared_torso: SharedTorsoOptions = field(default_factory=SharedTorsoOptions)
    """Options of ``critic_update=shared_torso`` (value_coef, value_clip)."""
    critic_ppo: MinibatchCriticOptions = field(default_factory=MinibatchCriticOptions)
    """Options of ``critic_update=ppo`` (value_coef, value_clip)."""
    reinforce: ReinforceOptions = field(default_factory=ReinforceOptions)
    """Options of ``advantage=reinforce`` (baseline, reset_on_reward)."""
    plugin_options: dict[str, Any] = field(default_factory=dict)
    """Option blocks of the chosen plugin rows, by the row's ``options_key``: set on the
    command line as ``+algo.<options_key>.<name>=...``, checked by the row's own
    ``options`` dataclass (see docs/extending.md)."""

    FLAT_NAMES: ClassVar[dict[str, str]] = {
        "clip": "ppo.clip", "epochs": "ppo.epochs", "minibatches": "ppo.minibatches",
        "value_coef": "shared_torso.value_coef", "value_clip": "shared_torso.value_clip",
        "reinforce_baseline": "reinforce.baseline",
        "return_reset_on_reward": "reinforce.reset_on_reward",
    }
    """marl 0.2's flat option names -> where they live now (deprecated aliases; stored
    configs are upgraded silently)."""

    def chosen_rows(self) -> dict[str, Any]:
        """``{"advantage": row, "actor_update": row, "critic_update": row}``."""
        return chosen_rows(self.advantage, self.actor_update, self.critic_update)

    def options(self, row: Any) -> Any:
        """The options object of a chosen ``row`` (None if it declares none)."""
        key = getattr(row, "options_key", None)
        if key is None:
            return None
        if key in self.plugin_options:
            return row.options(**self.plugin_options[key])
        return getattr(self, key)

    @classmethod
    def upgrade_raw(cls, raw: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
        """The composed ``algo`` mapping before typing (``explicit``: the ``algo.`` keys
        the command line set, without ``algo.``): flat 0.2 names of a stored config moved
        under their rows (:func:`marl.config.rewrite_deprecated` moves the command line's
        before Hydra composes), the chosen
        plugin rows' option blocks checked and moved to ``plugin_options``, and an option
        block set on the command line for a row this run does not use refused."""
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        for old, new in cls.FLAT_NAMES.items():  # a config written before the move
            if old in raw:
                block, name = new.split(".")
                raw.setdefault(block, {})[name] = raw.pop(old)
        rows = chosen_rows(raw.get("advantage", "coma"), raw.get("actor_update", "pg"),
                           raw.get("critic_update", "fragment"))
        used = {getattr(r, "options_key", None) for r in rows.values()}
        fields = {f.name for f in dataclasses.fields(cls)}
        plugins = dict(raw.get("plugin_options") or {})
        for table, row in rows.items():
            key = getattr(row, "options_key", None)
            if key is None or key in fields:
                continue
            block = raw.pop(key, None) or plugins.get(key) or {}
            known = [f.name for f in dataclasses.fields(row.options)]
            for name in block:
                check(name in known, f"algo.{key}.{name}", block[name],
                      f"not an option of algo.{table}={raw.get(table)}: it has {known}")
            plugins[key] = dataclasses.asdict(row.options(**block))
        raw["plugin_options"] = plugins
        for key in sorted(explicit):
            block = key.split(".")[0]
            if block in OWN_BLOCKS and block not in used:
                table, name = OWN_BLOCKS[block]
                raise ConfigError(f"algo.{key} is invalid here: it is an option of "
                                  f"algo.{table}={name}, and this run has algo.{table}="
                                  f"{raw.get(table, DEFAULTS[table])}")
        return raw

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_ranges()
        lookup(ACTOR_UPDATES, self.actor_update, "algo.actor_update").validate(self)
        lookup(CRITIC_TRAINING, self.critic_update, "algo.critic_update").validate(self)
        self._check_advantage_options()
        self._check_critic_net()

    def _check_critic_net(self) -> None:
        """A recurrent critic needs whole sequences wherever it learns."""
        check(self.critic_net in CRITIC_NETS, "algo.critic_net", self.critic_net,
              f"choose one of {list(CRITIC_NETS)}")
        if not CRITIC_NETS[self.critic_net].recurrent:
            return
        training = lookup(CRITIC_TRAINING, self.critic_update, "algo.critic_update")
        check(not training.value_head, "algo.critic_net", self.critic_net,
              f"algo.critic_update={self.critic_update}'s critic is a head on the actor's "
              "torso (a GRU with algo.rnn=true): use mlp")
        minibatches = lookup(ACTOR_UPDATES, self.actor_update, "algo.actor_update")
        check(self.rnn or not minibatches.uses_minibatches, "algo.critic_net",
              self.critic_net, f"a GRU critic learns on whole env sequences: "
              f"algo.actor_update={self.actor_update} cuts a feed-forward actor's fragment "
              "into single steps; set algo.rnn=true")
        check(self.optimistic_others == 0.0, "algo.critic_net", self.critic_net,
              "algo.optimistic_others maximises over one step's joint actions, which a "
              "GRU critic carries into its history: use mlp")

    def _check_ranges(self) -> None:
        for k in ("actor_lr", "critic_lr"):
            check(getattr(self, k) > 0, f"algo.{k}", getattr(self, k), "must be > 0")
        check(self.critic_updates >= 1, "algo.critic_updates", self.critic_updates,
              "must be >= 1")
        check(self.actor_init in ("orthogonal", "mirrored"), "algo.actor_init",
              self.actor_init, "choose orthogonal or mirrored")
        check(set(self.actor_inputs) <= set(ACTOR_INPUTS), "algo.actor_inputs",
              list(self.actor_inputs), f"choose a subset of {list(ACTOR_INPUTS)}")
        check(self.gru_init in GRU_INITS, "algo.gru_init", self.gru_init,
              f"choose one of {list(GRU_INITS)}")
        check(self.timeouts in TIMEOUTS, "algo.timeouts", self.timeouts,
              f"choose one of {list(TIMEOUTS)}")
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

    def _check_advantage_options(self) -> None:
        """The options that change only the actor's advantage, against the module."""
        adv = lookup(ADVANTAGES, self.advantage, "algo.advantage")
        learned_baseline = bool(adv.trains(self.options(adv))) and not adv.critics
        eta = self.negative_advantage_scale
        check(0.0 <= eta <= 1.0, "algo.negative_advantage_scale", eta, "must be in [0, 1]")
        # Without a learned baseline reinforce's "advantage" is the raw return, whose sign
        # says nothing about better or worse than expected: the transform has no meaning.
        check(eta == 1.0 or adv.critics or learned_baseline,
              "algo.negative_advantage_scale", eta,
              f"with algo.advantage={self.advantage} it needs algo.reinforce.baseline=true "
              "(the raw return has no sign to be optimistic about); use 1.0 otherwise")
        w = self.optimistic_others
        check(0.0 <= w <= 1.0, "algo.optimistic_others", w, "must be in [0, 1]")
        q_modules = [k for k, v in ADVANTAGES.items() if "central_q" in v.critics]
        check(w == 0.0 or "central_q" in adv.critics, "algo.optimistic_others", w,
              f"needs the centralised Q-critic of algo.advantage in {q_modules} (the "
              f"others' best reply is a max over its joint actions); use 0.0 otherwise")

    def check_with(self, train: Any) -> None:
        lookup(ACTOR_UPDATES, self.actor_update, "algo.actor_update").check_with(self, train)


DEFAULTS = {"advantage": "coma", "actor_update": "pg", "critic_update": "fragment"}
"""The three choices' defaults (conf/algo/coma.yaml)."""


def chosen_rows(advantage: str, actor_update: str, critic_update: str) -> dict[str, Any]:
    """The rows the three choices name (plugins imported)."""
    return {"advantage": lookup(ADVANTAGES, advantage, "algo.advantage"),
            "actor_update": lookup(ACTOR_UPDATES, actor_update, "algo.actor_update"),
            "critic_update": lookup(CRITIC_TRAINING, critic_update, "algo.critic_update")}


OWN_BLOCKS: dict[str, tuple[str, str]] = {
    row.options_key: (table, name)
    for table, rows in (("advantage", ADVANTAGES), ("actor_update", ACTOR_UPDATES),
                        ("critic_update", CRITIC_TRAINING))
    for name, row in rows.items() if getattr(row, "options_key", None)
}
"""The built-in rows' option blocks: ``algo.<key>`` -> (table, row name)."""
