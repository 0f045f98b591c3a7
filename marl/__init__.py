"""marl: multi-agent reinforcement learning centred on COMA (Foerster et al., AAAI 2018)."""

import os as _os

# OpenMP threads that spin while waiting (the default, ACTIVE) make torch 10x slower
# whenever another process wants the same cores -- env stepping, a second sweep job.
# Sleeping waiters cost nothing measurable when the cores are free. Must be set before
# torch loads its OpenMP runtime, hence here; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # the installed distribution's version (a wheel, or an editable install)
    from importlib.metadata import PackageNotFoundError as _NotFound
    from importlib.metadata import version as _version

    __version__ = _version("marl")
except _NotFound:  # a checkout on sys.path without an install
    __version__ = "0+unknown"
