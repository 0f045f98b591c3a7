"""Typed configuration: one dataclass per component, registered in Hydra's ConfigStore.

The values live in ``conf/`` (YAML); these classes are the schema. This module imports
no env: the env schemas (``env`` group) are registered in Hydra's ConfigStore by the
entry points, through :func:`marl.build.register_configs`. Hydra merges the
YAML into them, so a misspelt key or a wrong type fails at start with the key's full
name. Ranges are checked in ``__post_init__``, which runs when
:func:`to_config` turns the composed DictConfig into these objects -- before anything
is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from marl.algos.coma.advantages import ADVANTAGES
from marl.core.nets import CONV_TORSOS, MIXERS
from marl.core.returns import TEAM_REWARDS

ACTOR_UPDATES = ("pg", "ppo")
"""``algo.actor_update``: the paper's policy gradient or PPO's clipped multi-epoch update."""
CRITIC_UPDATES = ("fragment", "ppo")
"""``algo.critic_update``: ``critic_updates`` steps per fragment on targets from the
target critic (the paper's), or one step per PPO minibatch on targets from the critic
itself (MAPPO's and CleanRL's code)."""

PLOT_NAMES = ("learning_curve", "action_probs")
"""Plots a run can draw at its end (``logger.plots``; see :mod:`marl.io.plots`)."""


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


def check(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``"<name> = <value> is invalid: <allowed>"`` unless ok."""
    if not ok:
        raise ConfigError(f"{name} = {value!r} is invalid: {allowed}")


@dataclass
class ValueDecompositionConfig:
    """The off-policy value-decomposition learner (VDN / QMIX, ``algo.vd``;
    :mod:`marl.algos.vd.learner`). Shared with COMA's fields: gamma, td_lambda
    (0 = one-step double-Q targets), optimizer, opt_eps, rmsprop_alpha, grad_clip,
    actor_hidden / rnn / share_actor (the agent utility network), target_update_interval
    and target_tau (target networks, counted in updates), eps_* (epsilon-greedy)."""

    mixer: str = "qmix"
    """How agent utilities combine into Q_tot: vdn (sum) or qmix (monotonic hypernet)."""
    lr: float = 5e-4
    """Learning rate of agent network and mixer (one optimiser)."""
    buffer_episodes: int = 5000
    """Replay capacity in episodes (padded to episode_limit)."""
    batch_episodes: int = 32
    """Episodes per gradient step; training starts once this many are stored."""
    episode_limit: int = 100
    """Longest episode the buffer stores (the env's max_steps)."""
    updates_per_fragment: int = 1
    """Gradient steps per collected fragment."""
    double_q: bool = True
    """Double Q-learning: the online net picks the next actions, the target net values them."""
    mixer_embed: int = 32
    """QMIX mixing-layer width E."""
    hyper_hidden: int = 64
    """QMIX hypernetwork hidden width (0: linear hypernetworks)."""

    def __post_init__(self) -> None:
        check(self.mixer in MIXERS, "algo.vd.mixer", self.mixer,
              f"choose one of {list(MIXERS)}")
        check(self.lr > 0, "algo.vd.lr", self.lr, "must be > 0")
        for k in ("buffer_episodes", "batch_episodes", "episode_limit",
                  "updates_per_fragment", "mixer_embed"):
            check(getattr(self, k) >= 1, f"algo.vd.{k}", getattr(self, k), "must be >= 1")
        check(self.batch_episodes <= self.buffer_episodes, "algo.vd.batch_episodes",
              self.batch_episodes, f"must be <= algo.vd.buffer_episodes = {self.buffer_episodes}")
        check(self.hyper_hidden >= 0, "algo.vd.hyper_hidden", self.hyper_hidden,
              "must be >= 0")


@dataclass
class AlgoConfig:
    """COMA and the learner's hyperparameters (``conf/algo/*.yaml``)."""

    name: str = "coma"
    """Label of the algorithm, used in run names and W&B job types."""
    advantage: str = "coma"
    """Advantage module: coma, central_qv, central_v, iac_v, iac_q or reinforce."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    td_lambda: float = 0.8
    """Lambda of the critic's TD(lambda) targets, in [0, 1]."""
    actor_lr: float = 5e-4
    """Actor learning rate."""
    critic_lr: float = 5e-4
    """Critic learning rate."""
    optimizer: str = "adam"
    """adam or rmsprop (the paper's)."""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant."""
    opt_eps: float = 1e-5
    """Optimiser epsilon."""
    grad_clip: float = 10.0
    """Max global gradient norm, per network."""
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    """Actor widths; with rnn the first one is the GRU size."""
    conv_torso: str = "nature"
    """Image observations: the actor's conv stack, nature (Mnih et al. 2015) or dqn2013
    (Mnih et al. 2013, ~3x cheaper; marl.core.nets.CONV_TORSOS)."""
    conv_bf16: bool = False
    """Image observations: run the actor's conv stack in bfloat16 (CPU autocast; weights,
    optimiser state and everything after the convs stay float32). Faster only on CPUs with
    bf16 instructions (AMX, avx512_bf16); emulated elsewhere, it was 4.3x slower
    (experiments/classics/README.md)."""
    rnn: bool = False
    """GRU actor (recurrent, as in the paper) instead of a feed-forward one."""
    actor_init: str = "orthogonal"
    """orthogonal, or mirrored (paired ReLU units start as negations: no dead layer at
    init; for very narrow actors on constant inputs, like the bandit's 5 units)."""
    share_actor: bool = True
    """One actor network for all agents (agent id in the input) or one per agent."""
    critic_hidden: list[int] = field(default_factory=lambda: [128, 128])
    """Critic MLP widths."""
    critic_own_obs: bool = True
    """Give the centralised critic the agent's own observation besides the state."""
    critic_updates: int = 1
    """Critic gradient steps per fragment, before the actor step (critic_update=fragment)."""
    critic_update: str = "fragment"
    """fragment: ``critic_updates`` steps per fragment before the actor's, on TD(lambda)
    targets bootstrapped from the target critic (the paper's); ppo (with
    actor_update=ppo): one step on each of the actor's minibatches, epochs x minibatches
    per fragment, on targets bootstrapped from the critic before the update (no target
    network), as MAPPO's and CleanRL's code train the value; ``critic_updates``,
    ``target_update_interval`` and ``target_tau`` then have no effect."""
    target_update_interval: int = 10
    """Hard target-critic copy every this many critic updates (ignored with target_tau)."""
    target_tau: float | None = None
    """Polyak factor for a soft target update every critic step; null = hard copies."""
    eps_start: float = 0.5
    """Initial epsilon floor of the exploring policy."""
    eps_end: float = 0.01
    """Final epsilon floor."""
    eps_anneal_steps: int = 500_000
    """Env steps over which epsilon is annealed linearly."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus on the actor's softmax."""
    normalize_advantage: bool = False
    """Standardise advantages per fragment before the actor step."""
    reinforce_baseline: bool = False
    """reinforce only: subtract a learned central V(s) (and bootstrap from it at cuts)."""
    return_reset_on_reward: bool = False
    """reinforce only: end the discounted sum at every non-zero reward (pg-pong's points)."""
    actor_update: str = "pg"
    """pg (the paper's policy gradient, one step per fragment) or ppo (clipped surrogate,
    several epochs over minibatches of the fragment); orthogonal to the advantage."""
    clip: float = 0.2
    """ppo: the surrogate's clip range, ratio kept in [1 - clip, 1 + clip]; > 0."""
    epochs: int = 4
    """ppo: passes over the fragment per update; >= 1."""
    minibatches: int = 4
    """ppo: minibatches per epoch; must divide T x B samples (B envs with rnn)."""
    shared_torso: bool = False
    """ppo with one V-critic on the actor's own input (iac_v, or central_v with one agent
    whose state is its observation): the value is a head on the actor's torso, trained in
    the same backward pass (one conv forward/backward per minibatch for pixels)."""
    value_coef: float = 0.5
    """shared_torso: weight of the value loss beside the actor's loss."""
    value_clip: float | None = None
    """shared_torso: clip the new value to old value +- this in the value loss (PPO's
    value clipping); null = off."""
    lr_anneal_steps: int = 0
    """Anneal actor and critic learning rates linearly to 0 over this many env steps
    (counted as T x B per update); 0 = constant. To anneal over the whole run, whatever
    its length: ``algo.lr_anneal_steps='${train.total_env_steps}'``."""
    negative_advantage_scale: float = 1.0
    """eta of the optimistic advantage (Zhao et al. 2024): the actor sees max(A, 0) +
    eta * min(A, 0), before any standardisation; in [0, 1], 1 = unchanged (the paper's
    COMA), 0 = negative advantages dropped. The critics are unchanged."""
    optimistic_others: float = 0.0
    """w of the others' best reply (Pareto-AC, Christianos et al. 2023): the advantage
    reads (1 - w) Q(s, (u^-a, .)) + w max_{u^-a'} Q(s, (u^-a', .)); in [0, 1], 0 = off
    (the paper's COMA). Needs a centralised Q-critic (coma, central_qv)."""
    team_reward: str = "off"
    """sum or mean: every agent is trained on the sum / mean of the rewards of the agents
    that acted (the paper's one team reward, for envs with per-agent rewards); off: each
    agent's own reward."""
    vd: ValueDecompositionConfig | None = None
    """null: the COMA learner (algo.advantage); set: the value-decomposition learner."""

    def __post_init__(self) -> None:
        check(self.advantage in ADVANTAGES, "algo.advantage", self.advantage,
              f"choose one of {list(ADVANTAGES)}")
        takes = [k for k, v in ADVANTAGES.items() if v.baseline_critics]
        check(not self.reinforce_baseline or self.advantage in takes,
              "algo.reinforce_baseline", self.reinforce_baseline,
              f"only algo.advantage in {takes} takes a learned baseline")
        check(0.0 < self.gamma <= 1.0, "algo.gamma", self.gamma, "must be in (0, 1]")
        check(0.0 <= self.td_lambda <= 1.0, "algo.td_lambda", self.td_lambda,
              "must be in [0, 1]")
        for k in ("actor_lr", "critic_lr", "opt_eps", "grad_clip"):
            check(getattr(self, k) > 0, f"algo.{k}", getattr(self, k), "must be > 0")
        check(self.optimizer in ("adam", "rmsprop"), "algo.optimizer", self.optimizer,
              "choose adam or rmsprop")
        check(self.actor_init in ("orthogonal", "mirrored"), "algo.actor_init",
              self.actor_init, "choose orthogonal or mirrored")
        check(self.conv_torso in CONV_TORSOS, "algo.conv_torso", self.conv_torso,
              f"choose one of {list(CONV_TORSOS)}")
        check(0.0 < self.rmsprop_alpha < 1.0, "algo.rmsprop_alpha", self.rmsprop_alpha,
              "must be in (0, 1)")
        for k in ("actor_hidden", "critic_hidden"):
            v = list(getattr(self, k))
            check(len(v) >= 1 and all(h >= 1 for h in v), f"algo.{k}", v,
                  "must be a non-empty list of positive widths")
        check(self.critic_updates >= 1, "algo.critic_updates", self.critic_updates, "must be >= 1")
        check(self.target_update_interval >= 1, "algo.target_update_interval",
              self.target_update_interval, "must be >= 1")
        check(self.target_tau is None or 0.0 < self.target_tau <= 1.0, "algo.target_tau",
              self.target_tau, "must be null or in (0, 1]")
        for k in ("eps_start", "eps_end"):
            check(0.0 <= getattr(self, k) <= 1.0, f"algo.{k}", getattr(self, k),
                  "must be in [0, 1]")
        check(self.eps_anneal_steps >= 0, "algo.eps_anneal_steps", self.eps_anneal_steps,
              "must be >= 0")
        check(self.team_reward in TEAM_REWARDS, "algo.team_reward", self.team_reward,
              f"choose one of {list(TEAM_REWARDS)}")
        check(self.entropy_coef >= 0, "algo.entropy_coef", self.entropy_coef, "must be >= 0")
        check(self.actor_update in ACTOR_UPDATES, "algo.actor_update", self.actor_update,
              f"choose one of {list(ACTOR_UPDATES)}")
        check(self.clip > 0, "algo.clip", self.clip, "must be > 0")
        check(self.epochs >= 1, "algo.epochs", self.epochs, "must be >= 1")
        check(self.minibatches >= 1, "algo.minibatches", self.minibatches, "must be >= 1")
        ppo = self.actor_update == "ppo"
        check(not ppo or self.advantage != "reinforce", "algo.actor_update",
              self.actor_update, "ppo needs a learned critic: the reinforce module's "
              "Monte-Carlo returns are for pg; choose algo.advantage from "
              f"{[k for k in ADVANTAGES if k != 'reinforce']}")
        check(not self.shared_torso or ppo, "algo.shared_torso", self.shared_torso,
              "needs algo.actor_update=ppo (the value loss is trained in its minibatches)")
        check(not self.shared_torso or self.advantage in ("central_v", "iac_v"),
              "algo.shared_torso", self.shared_torso,
              "needs a single V-critic: algo.advantage central_v or iac_v")
        check(self.value_coef > 0, "algo.value_coef", self.value_coef, "must be > 0")
        check(self.critic_update in CRITIC_UPDATES, "algo.critic_update", self.critic_update,
              f"choose one of {list(CRITIC_UPDATES)}")
        check(self.critic_update == "fragment" or (ppo and not self.shared_torso),
              "algo.critic_update", self.critic_update, "ppo trains separate critics in "
              "the actor's PPO minibatches: needs algo.actor_update=ppo and "
              "algo.shared_torso=false (the shared value head already learns there)")
        check(self.value_clip is None or self.value_clip > 0, "algo.value_clip",
              self.value_clip, "must be null or > 0")
        check(self.value_clip is None or self.shared_torso, "algo.value_clip",
              self.value_clip, "applies to the value loss of algo.shared_torso=true; "
              "separate critics regress onto TD(lambda) targets unclipped")
        check(self.lr_anneal_steps >= 0, "algo.lr_anneal_steps", self.lr_anneal_steps,
              "must be >= 0")
        eta = self.negative_advantage_scale
        check(0.0 <= eta <= 1.0, "algo.negative_advantage_scale", eta, "must be in [0, 1]")
        # Without a learned baseline reinforce's "advantage" is the raw return, whose sign
        # says nothing about better or worse than expected: the transform has no meaning.
        check(eta == 1.0 or self.advantage != "reinforce" or self.reinforce_baseline,
              "algo.negative_advantage_scale", eta,
              "with algo.advantage=reinforce it needs algo.reinforce_baseline=true (the "
              "raw return has no sign to be optimistic about); use 1.0 otherwise")
        w = self.optimistic_others
        check(0.0 <= w <= 1.0, "algo.optimistic_others", w, "must be in [0, 1]")
        q_modules = [k for k, v in ADVANTAGES.items() if "central_q" in v.critics]
        check(w == 0.0 or self.advantage in q_modules, "algo.optimistic_others", w,
              f"needs the centralised Q-critic of algo.advantage in {q_modules} (the "
              f"others' best reply is a max over its joint actions); use 0.0 otherwise")


@dataclass
class TrainConfig:
    """Rollout shape, run length and the cadence of evaluation, logging, checkpoints."""

    num_envs: int = 64
    """B, parallel training envs."""
    fragment_len: int = 20
    """T, steps per env per rollout fragment (one learner update per fragment)."""
    total_env_steps: int = 2_000_000
    """Stop after this many env steps (B per vectorised step)."""
    eval_every_env_steps: int = 250_000
    """Greedy evaluation cadence; 0 = only at the end."""
    eval_episodes: int = 200
    """Episodes per evaluation (one per eval env)."""
    log_every_env_steps: int = 20_000
    """Metrics cadence (metrics.jsonl, W&B, progress bar)."""
    torch_threads: int = 1
    """torch intra-op threads. 1: acting and learning alternate on one core, and a
    second OpenMP thread busy-waits against env stepping and other jobs (measured
    10x slower when the other core is busy)."""
    eval_video: bool = False
    """Record one greedy episode at every evaluation (videos/eval_<env_steps>.gif)."""
    video_max_frames: int = 300
    """Longest recorded episode, in frames."""
    video_fps: int = 8
    """Frames per second of recorded GIFs."""

    def __post_init__(self) -> None:
        for k in ("num_envs", "fragment_len", "total_env_steps", "eval_episodes",
                  "log_every_env_steps", "torch_threads"):
            check(getattr(self, k) >= 1, f"train.{k}", getattr(self, k), "must be >= 1")
        check(self.video_max_frames >= 1, "train.video_max_frames", self.video_max_frames,
              "must be >= 1")
        check(self.video_fps >= 1, "train.video_fps", self.video_fps, "must be >= 1")
        check(self.eval_every_env_steps >= 0, "train.eval_every_env_steps",
              self.eval_every_env_steps, "must be >= 0")


@dataclass
class CheckpointConfig:
    """Checkpoints: full training state, written atomically, the last ``keep`` kept."""

    every_env_steps: int = 500_000
    """Checkpoint cadence in env steps; 0 = only at the end (and on a stop signal)."""
    keep: int = 3
    """How many recent checkpoints to keep."""
    strict: bool = False
    """Resume: a corrupt newest checkpoint is an error (false: fall back to the newest
    intact one, naming the one skipped)."""

    def __post_init__(self) -> None:
        check(self.every_env_steps >= 0, "checkpoint.every_env_steps", self.every_env_steps,
              "must be >= 0")
        check(self.keep >= 1, "checkpoint.keep", self.keep, "must be >= 1")


@dataclass
class WandbConfig:
    """Weights & Biases logging."""

    mode: str = "auto"
    """auto (online if WANDB_API_KEY is set, else offline), online, offline or disabled."""
    project: str = "marl"
    """W&B project."""
    entity: str | None = None
    """W&B entity (team or user); null = the default of the key."""
    group: str | None = None
    """Run group; null = the experiment name."""
    tags: list[str] = field(default_factory=list)
    """Extra tags."""

    def __post_init__(self) -> None:
        check(self.mode in ("auto", "online", "offline", "disabled"), "logger.wandb.mode",
              self.mode, "choose auto, online, offline or disabled")


@dataclass
class LoggerConfig:
    """Where metrics go: progress bar, metrics.jsonl (always), W&B."""

    progress: bool = True
    """Show a progress bar on stderr."""
    plots: list[str] = field(default_factory=lambda: ["learning_curve"])
    """PNG plots drawn at the end into plots/ (and logged to W&B): learning_curve,
    action_probs."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """W&B settings."""

    def __post_init__(self) -> None:
        for p in self.plots:
            check(p in PLOT_NAMES, "logger.plots", p, f"choose from {list(PLOT_NAMES)}")


@dataclass
class Config:
    """A complete run: the root of the composed Hydra config."""

    env: Any = None
    """Environment (a group: conf/env/*.yaml, typed by its own schema)."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """Learner."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Rollout shape and run cadence."""
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    """Logging."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence and retention."""
    name: str = "run"
    """Experiment name (set by +experiment=...), used for output dirs and W&B groups."""
    seed: int = 0
    """Seed of everything (envs, torch, numpy)."""
    resume: bool = False
    """Continue from the newest checkpoint in the run directory (hydra.run.dir=<it>);
    with none there, start from scratch (and say so)."""
    init_from: str | None = None
    """Start from the networks of another run (a checkpoint file or a run directory,
    newest checkpoint): fine-tuning and curricula. Optimisers and counters start fresh."""
    requires: list[str] = field(default_factory=list)
    """Keys an experiment needs set on the command line (e.g. [init_from])."""

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        a, t = self.algo, self.train
        if a.actor_update == "ppo":  # minibatches of whole env sequences for a GRU actor
            samples, what = ((t.num_envs, "train.num_envs (B: a GRU actor is cut into "
                              "whole sequences)") if a.rnn else
                             (t.num_envs * t.fragment_len,
                              "train.num_envs x train.fragment_len (T x B samples)"))
            check(samples % a.minibatches == 0, "algo.minibatches", a.minibatches,
                  f"must divide {what} = {samples}")
        for key in self.requires:
            value: Any = self
            for part in key.split("."):
                value = getattr(value, part, None)
            check(value is not None, key, value,
                  f"experiment {self.name} needs it: add {key}=<value> to the command")


def to_config(cfg: DictConfig) -> Config:
    """Composed DictConfig -> validated :class:`Config` (runs every ``__post_init__``)."""
    if cfg.get("env") is None:
        raise ConfigError("no env selected: add env=<name> (a file of conf/env/)")
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as e:  # OmegaConf wraps errors raised in __post_init__
        cause = e
        while cause.__cause__ is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if isinstance(cause, (ConfigError, ValueError)):
            raise ConfigError(str(cause).splitlines()[0]) from e
        raise
    if not is_dataclass(obj.env):
        raise ConfigError(f"env config {obj.env!r} has no schema: its YAML must start with "
                          "defaults: [<name>_schema] (see marl.envs.ENV_CONFIGS)")
    return obj
