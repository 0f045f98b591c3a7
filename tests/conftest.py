"""Shared test helpers: the tiny box-pushing run's overrides and config composition.

Imported by the test files (``from conftest import ...``; ``tests/`` is on ``sys.path``
under pytest's rootdir-relative import mode, as for ``tests/rollouts.py``).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from marl.build import CONF_DIR, register_configs
from marl.config import Config, to_config

register_configs()


@pytest.fixture(autouse=True)
def _no_handler_on_a_closed_capture():
    """In-process runs (``marl.train.main`` under ``capsys``) let Hydra and the libraries
    attach logging handlers to the capture stream of that test; once pytest closes it,
    any later record would write to a closed file. Drop such handlers after each test."""
    yield
    for logger in [logging.getLogger(), *(logging.getLogger(n) for n in
                                          list(logging.root.manager.loggerDict))]:
        for h in list(getattr(logger, "handlers", [])):
            stream = getattr(h, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                logger.removeHandler(h)
    for name in ("stdout", "stderr"):
        if getattr(getattr(sys, name), "closed", False):
            setattr(sys, name, getattr(sys, f"__{name}__"))
    _absl_handlers_off_the_capture_file()


def _absl_handlers_off_the_capture_file() -> None:
    """absl's handler (imported with JAX) keeps the ``sys.stderr`` of its creation: outside
    ``capsys``, pytest's session capture file. Its ``close()`` closes any stream but the
    current ``sys.stderr``/``sys.stdout`` and ``__stderr__``, and Hydra's logging setup
    closes every handler, so the next in-process run under ``capsys`` would close the
    session's capture file (pytest then fails every later ``readouterr`` and crashes at
    exit). Point such handlers at ``sys.__stderr__``, which ``close()`` leaves open."""
    absl = sys.modules.get("absl.logging")
    if absl is None:
        return
    for ref in list(logging._handlerList):  # every live handler, attached or not
        h = ref()
        if isinstance(h, absl.PythonHandler) and h.stream not in (sys.__stderr__,
                                                                    sys.__stdout__):
            h.stream = sys.__stderr__

TINY = [
    "+experiment=coma_boxpush",
    "train.num_envs=8",
    "train.fragment_len=5",
    "train.total_env_steps=2000",
    "train.eval_episodes=6",
    "logger.progress=false",
]
"""A ~2,000-step box-pushing run (a few seconds); files add their cadences and sinks."""

QUIET = ["logger.plots=[]", "logger.wandb.mode=disabled"]
"""No plots, no W&B."""

TINY_Q = [
    "+experiment=qmix_boxpush", "env.width=4", "env.height=4", "env.box_weight=1",
    "env.max_steps=12", "algo.vd.episode_limit=12", "algo.vd.batch_episodes=8",
    "algo.vd.buffer_episodes=64", "train.num_envs=8", "train.fragment_len=5",
    "train.eval_episodes=4", "logger.progress=false", *QUIET,
]
"""A value-decomposition run small enough for a test (8 envs, 12-step episodes)."""

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative: str) -> ModuleType:
    """A script of ``experiments/`` (not a package) as a module: ``load_script(
    "experiments/credit_assignment/aggregate.py")``."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem + "_" + path.parent.name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def compose(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """``conf/config.yaml`` composed with ``overrides`` (not validated)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose(config_name="config", overrides=overrides,
                             return_hydra_config=return_hydra_config)


def compose_config(overrides: list[str]) -> Config:
    """``conf/config.yaml`` composed with ``overrides`` and validated (the entry points'
    own path: Hydra's errors become one-line ConfigErrors)."""
    from marl.build import compose_config as build_compose

    return build_compose(overrides)


def make_trainer(run_dir: Path, overrides: list[str], resolved: bool = False):
    """A :class:`marl.train.Trainer` for ``overrides`` writing into ``run_dir``."""
    from omegaconf import OmegaConf

    from marl.train import Trainer

    dcfg = compose(overrides)
    return Trainer(to_config(dcfg), run_dir,
                   OmegaConf.to_container(dcfg, resolve=True) if resolved else {})


def train_quietly(run_dir: Path, overrides: list[str]) -> dict:
    """Train ``overrides`` in-process without W&B or a progress bar; the summary."""
    return make_trainer(run_dir, [*overrides, "logger.wandb.mode=disabled",
                                  "logger.progress=false"]).run()
