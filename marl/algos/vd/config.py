"""The value-decomposition family's config: the common block plus ``algo.vd``
(``conf/algo/qmix.yaml``, ``conf/algo/vdn.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from marl.algos.base import AlgoCommon
from marl.algos.vd.mixers import MIXERS
from marl.schema import check, lookup


@dataclass
class ValueDecompositionConfig:
    """The off-policy value-decomposition learner's own block (``algo.vd``;
    :mod:`marl.algos.vd.learner`)."""

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
        lookup(MIXERS, self.mixer, "algo.vd.mixer")
        check(self.lr > 0, "algo.vd.lr", self.lr, "must be > 0")
        for k in ("buffer_episodes", "batch_episodes", "episode_limit",
                  "updates_per_fragment", "mixer_embed"):
            check(getattr(self, k) >= 1, f"algo.vd.{k}", getattr(self, k), "must be >= 1")
        check(self.batch_episodes <= self.buffer_episodes, "algo.vd.batch_episodes",
              self.batch_episodes, f"must be <= algo.vd.buffer_episodes = {self.buffer_episodes}")
        check(self.hyper_hidden >= 0, "algo.vd.hyper_hidden", self.hyper_hidden,
              "must be >= 0")


@dataclass
class VDConfig(AlgoCommon):
    """VDN / QMIX: the common block (gamma, td_lambda -- 0 = one-step double-Q targets --,
    optimizer, opt_eps, rmsprop_alpha, grad_clip, actor_hidden / rnn / share_actor for the
    agent utility network, target_update_interval and target_tau counted in gradient
    steps, eps_* of epsilon-greedy acting) plus the learner's own block."""

    learner: str = "vd"
    """Learner family (marl.algos.LEARNERS)."""
    vd: ValueDecompositionConfig = field(default_factory=ValueDecompositionConfig)
    """Mixer, replay and learning rate of the value-decomposition learner."""
