"""The optional extras some envs need, and the one-line refusal when one is not installed.

The core install (``pip install marl``) runs box pushing, the bandit, CartPole, the matrix
games, the Dec-POMDP problems, PettingZoo's MPE (mpe2) and other pure-Python PettingZoo
envs. Atari (``env=pong``, ``pong_karpathy``, PettingZoo's ``atari/*``: ale-py,
multi_agent_ale_py) is the ``atari`` extra and PettingZoo's butterfly envs
(``env=pistonball``, ``coop_pong``: pymunk, pygame-ce) the ``butterfly`` extra; JaxMARL
is the ``jax`` extra (:mod:`marl.envs.jaxmarl.loading`). An env config that needs a
missing extra refuses to be built (:func:`require_extra`, called by its ``__post_init__``,
so at config time: exit 2 and one line naming the extra, nothing written). The check
looks for the modules (``importlib.util.find_spec``) without importing them.
"""

from __future__ import annotations

import importlib.util

from marl.schema import ConfigError

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "atari": ("ale_py", "multi_agent_ale_py"),
    "butterfly": ("pymunk", "pygame"),
}
"""Extra -> the modules it installs that the envs import."""


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` (from PyPI, and in a checkout)."""
    return f'pip install "marl[{extra}]" (in a checkout: pip install -e ".[{extra}]")'


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or __spec__ is None
        return False


def require_extra(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise a one-line :class:`ConfigError` naming ``extra`` and its pip command unless
    ``modules`` (default: all of the extra's) are installed; ``what`` names the setting."""
    for module in modules if modules is not None else EXTRA_MODULES[extra]:
        if not installed(module):
            raise ConfigError(f"{what} needs the {extra} extra, which is not installed "
                              f"(no module {module!r}): {install_hint(extra)}")


def pettingzoo_extra(env_id: str) -> str | None:
    """The extra PettingZoo's ``env.id`` needs: ``"atari"`` or ``"butterfly"`` for those
    families (``atari/pong-v3``, ``pettingzoo.butterfly:pistonball_v6``,
    ``pettingzoo.atari.pong_v3:parallel_env``), else None (MPE, SISL, classic, the
    user's own modules: a missing package of theirs is named when the env is built)."""
    if ":" in env_id:
        parts = env_id.replace(":", ".").split(".")
        family = parts[1] if parts[0] == "pettingzoo" and len(parts) > 1 else None
    else:
        family = env_id.split("/", 1)[0]
    return family if family in EXTRA_MODULES else None


def check_pettingzoo_extra(env_id: str) -> None:
    """:func:`require_extra` for the family of PettingZoo's ``env.id`` (if it needs one)."""
    extra = pettingzoo_extra(env_id)
    if extra is not None:
        require_extra(extra, f"env.id = {env_id!r}")
