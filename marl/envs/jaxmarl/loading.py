"""Loading JaxMARL: the env config, jax on the CPU (one thread, a compilation cache),
and ``jaxmarl.make`` with the config's kwargs checked. Imports no jax at module import."""


from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INSTALL_HINT = 'pip install "marl[jax]" (in a checkout: pip install -e ".[jax]")'
XLA_SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
CACHE_ENV = "MARL_JAX_CACHE"
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "marl", "jax")
SMAX_IDS = ("SMAX", "HeuristicEnemySMAX", "LearnedPolicyEnemySMAX")
SMAX_METRICS = ("win", "enemies_killed", "allies_lost")


def _plain(x: Any) -> Any:
    """``x`` with OmegaConf containers and mappings turned into plain dicts and lists."""
    if type(x).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(x, resolve=True)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


@dataclass
class JaxMarlEnvConfig:
    """Any JaxMARL env through the batched JAX adapter (see the module docstring)."""

    name: str = "jaxmarl"
    """Registry key of the env."""
    id: str = "HeuristicEnemySMAX"
    """JaxMARL registry name (jaxmarl.registered_envs), e.g. MPE_simple_spread_v3."""
    scenario: str | None = None
    """SMAX map name (3m, 2s3z, 5m_vs_6m, ...); only for the SMAX ids; null = none."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of jaxmarl.make, e.g. {max_steps: 25, local_ratio: 0.5}."""
    xla_single_thread: bool = True
    """Turn XLA's CPU thread pool off (set before jax is first imported; see docstring)."""
    scale_state: bool = True
    """SMAX only: scale JaxMARL's world_state to O(1) features (see the module docstring)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"env.id = {self.id!r} is invalid: must be a JaxMARL registry "
                             "name such as 'HeuristicEnemySMAX' or 'MPE_simple_spread_v3'")
        if self.scenario is not None:
            if not isinstance(self.scenario, str):
                raise ValueError(f"env.scenario = {self.scenario!r} is invalid: must be a "
                                 "SMAX map name (e.g. '3m') or null")
            if self.id not in SMAX_IDS:
                raise ValueError(f"env.scenario = {self.scenario!r} is only for the SMAX ids "
                                 f"{list(SMAX_IDS)}, not env.id = {self.id!r}")
        kw = _plain(self.kwargs) if self.kwargs is not None else {}
        if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
            raise ValueError(f"env.kwargs = {self.kwargs!r} is invalid: must be a mapping of "
                             "keyword arguments (str keys) for jaxmarl.make")
        if "scenario" in kw:
            raise ValueError("env.kwargs.scenario is not accepted: name the SMAX map with "
                             "env.scenario (e.g. env.scenario=3m)")
        self.kwargs = kw


def import_jax(single_thread: bool = True):
    """Import jax (on the CPU, XLA threads as asked) and jaxmarl; a clear error without."""
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if single_thread:
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_cpu_multi_thread_eigen" not in flags:
                os.environ["XLA_FLAGS"] = f"{flags} {XLA_SINGLE_THREAD_FLAGS}".strip()
    try:
        import jax
        import jaxmarl
    except ImportError as e:
        raise ImportError(f"JaxMARL envs (env=jaxmarl) need jax and jaxmarl, which are not "
                          f"installed ({e}): install them with `{INSTALL_HINT}`") from e
    if jax.config.jax_compilation_cache_dir is None and os.environ.get(CACHE_ENV) != "":
        # A SMAX step takes 10-30 s to compile; cached, a second run starts in ~1 s.
        jax.config.update("jax_compilation_cache_dir", os.environ.get(CACHE_ENV, CACHE_DIR))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return jax, jaxmarl


def _accepted_kwargs(cls: type) -> set[str] | None:
    """Keyword names the constructor chain of ``cls`` names (None: cannot tell)."""
    from jaxmarl.environments.smax import SMAX
    from jaxmarl.environments.smax.heuristic_enemy_smax_env import EnemySMAX

    names: set[str] = set()
    open_end = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        open_end = any(p.kind == p.VAR_KEYWORD for p in params)
        if not open_end:
            break
    if issubclass(cls, EnemySMAX):  # its **env_kwargs go to SMAX
        names |= _accepted_kwargs(SMAX) or set()
    names.discard("self")
    return names


def make_jaxmarl_env(cfg: JaxMarlEnvConfig):
    """The JaxMARL env described by ``cfg`` (id, scenario and kwargs checked first)."""
    jax, jaxmarl = import_jax(cfg.xla_single_thread)
    from jaxmarl.registration import registered_envs

    if cfg.id not in registered_envs:
        raise ValueError(f"unknown JaxMARL env id {cfg.id!r}: registered ids are "
                         f"{sorted(registered_envs)}")
    kwargs = dict(cfg.kwargs)
    if cfg.scenario is not None:
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO, map_name_to_scenario

        if cfg.scenario not in MAP_NAME_TO_SCENARIO:
            raise ValueError(f"unknown SMAX scenario {cfg.scenario!r}: known maps are "
                             f"{sorted(MAP_NAME_TO_SCENARIO)}")
        kwargs["scenario"] = map_name_to_scenario(cfg.scenario)
    cls = _env_class(cfg.id)
    if cls is not None:
        accepted = _accepted_kwargs(cls)
        for k in cfg.kwargs:
            if k not in accepted:
                raise ValueError(f"env.kwargs.{k} is not accepted by JaxMARL's {cfg.id} "
                                 f"({cls.__name__}): accepted keys are {sorted(accepted)}")
    try:
        return jaxmarl.make(cfg.id, **kwargs)
    except TypeError as e:
        raise ValueError(f"jaxmarl.make({cfg.id!r}, **{cfg.kwargs}) failed: {e}") from e


def _env_class(env_id: str) -> type | None:
    """The class jaxmarl.make builds for ``env_id`` (for kwarg checks), where known."""
    import jaxmarl.environments as envs

    table = {"SMAX": "SMAX", "HeuristicEnemySMAX": "HeuristicEnemySMAX",
             "LearnedPolicyEnemySMAX": "LearnedPolicyEnemySMAX",
             "MPE_simple_v3": "SimpleMPE", "MPE_simple_spread_v3": "SimpleSpreadMPE",
             "MPE_simple_reference_v3": "SimpleReferenceMPE",
             "MPE_simple_speaker_listener_v4": "SimpleSpeakerListenerMPE",
             "MPE_simple_tag_v3": "SimpleTagMPE", "MPE_simple_push_v3": "SimplePushMPE",
             "MPE_simple_adversary_v3": "SimpleAdversaryMPE",
             "MPE_simple_crypto_v3": "SimpleCryptoMPE",
             "MPE_simple_world_comm_v3": "SimpleWorldCommMPE",
             "switch_riddle": "SwitchRiddle"}
    name = table.get(env_id)
    return None if name is None else getattr(envs, name, None)
