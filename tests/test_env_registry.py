"""The env table: light to import, every row a schema and an importable factory, and
its open mappings (``env.kwargs``) take keys the YAML does not list."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import compose_config

from marl.envs import ENVS, EnvRow
from marl.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("gymnasium", "pettingzoo", "supersuit", "ale_py", "jax", "mpe2")


def test_importing_the_registry_and_base_loads_no_heavy_dependency():
    code = (
        "import sys, marl.envs, marl.envs.base, marl.envs.configs\n"
        # building the default configs too (CartPole's checks gymnasium's registry)
        "[r.config() for n, r in marl.envs.ENVS.items() if n != 'cartpole']\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_env_has_a_schema_and_an_importable_factory():
    for name, row in ENVS.items():
        assert isinstance(row, EnvRow)
        assert row.config().name == name
        module, attr = row.factory.split(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_documented_kwargs_mapping_composes():
    """docs/envs.md's command line: ``'env.kwargs={N: 3}'`` adds a key conf/env/
    pettingzoo.yaml does not list (Hydra's struct mode refused it: "Key 'N' is not in
    struct"); a dotted key too. A misspelt field beside it is still refused."""
    cfg = compose_config(["env=pettingzoo", "env.id=mpe2:simple_spread_v3", "env.kwargs={N: 3}",
                          "algo=coma"])
    assert cfg.env.kwargs == {"N": 3}
    cfg = compose_config(["+experiment=coma_spread", "env.kwargs.N=2", "env.kwargs.extra=1"])
    assert cfg.env.kwargs == {"N": 2, "local_ratio": 0.5, "max_cycles": 25,
                              "continuous_actions": False, "extra": 1}
    with pytest.raises(ConfigError, match="env.kwarg"):
        compose_config(["env=pettingzoo", "env.kwarg.N=3"])
