"""The env registry: light to import, every name wired to a schema and a factory."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

from marl.envs import ENV_CONFIGS, FACTORIES

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("gymnasium", "pettingzoo", "supersuit", "ale_py", "jax", "mpe2")


def test_importing_the_registry_and_base_loads_no_heavy_dependency():
    code = (
        "import sys, marl.envs, marl.envs.base, marl.envs.configs\n"
        # building the default configs too (CartPole's checks gymnasium's registry)
        "[c() for n, c in marl.envs.ENV_CONFIGS.items() if n != 'cartpole']\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_env_has_a_schema_and_an_importable_factory():
    assert set(ENV_CONFIGS) == set(FACTORIES)
    for name, cls in ENV_CONFIGS.items():
        assert cls().name == name
        module, attr = FACTORIES[name].split(":")
        assert callable(getattr(importlib.import_module(module), attr))
