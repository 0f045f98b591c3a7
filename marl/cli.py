"""Before Hydra: check the command line and take the run directory.

``marl.train`` runs :func:`prepare` before ``hydra.main``, so that a configuration error
or a refused run directory ends with exit status 2 and one line, before Hydra writes
``.hydra/`` or a log file anywhere. It composes the config as Hydra will (Hydra's own
errors become one line), validates it, refuses a ``+key`` that no schema knows (open
mappings such as ``+env.kwargs.<name>`` stay allowed), resolves the run directory once
and takes it (:func:`marl.io.rundir.claim`: lock, new-or-resume); ``hydra.run.dir`` is
then passed to Hydra resolved, so both agree on it.

The default directory names come from the ``marl_stamp`` resolver
(:func:`marl.io.rundir.marl_stamp`), registered with the schemas.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from marl.config import Config, ConfigError, rewrite_deprecated, to_config
from marl.io.errors import DiskFullError
from marl.io.files import write_bytes_atomic, write_json_atomic
from marl.io.rundir import RunDir, RunDirError, claim, free_reserve
from marl.io.sweepdir import previous_sweep

_NOISE = ("full_key:", "object_type", "reference_type", "To append", "See https",
          "Config search path", "provider=")


def one_line(e: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line errors (and their causes) as one line."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(e, MissingConfigException) and e.options is not None:
        options = [o for o in e.options if not o.endswith("_schema")]
        return f"could not find {e.missing_cfg_file!r}: choose one of {', '.join(options)}"
    if isinstance(e, OverrideParseException) and getattr(e, "override", None):
        key, _, value = e.override.partition("=")
        return (f"cannot read the override {e.override!r} ({str(e).splitlines()[0]}): a "
                "value with characters such as ( ) [ ] { } , = or spaces needs quotes, "
                f"e.g. '{key}=\"{value}\"'")
    parts: list[str] = []
    cur: BaseException | None = e
    while cur is not None and len(parts) < 3:
        lines = [ln.strip() for ln in str(cur).splitlines() if ln.strip()]
        parts += [ln.rstrip(".") for ln in lines[:1] if not ln.startswith(_NOISE)]
        cur = cur.__cause__
    return ": ".join(parts) or type(e).__name__


def config_groups() -> str:
    """``--help``'s list of config groups (``${marl_config_groups:}`` in conf/config.yaml's
    help template): Hydra's ``$APP_CONFIG_GROUPS`` without the internal ``<env>_schema``
    entries that :func:`marl.build.register_configs` stores in group ``env``."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra
    if hydra is None:  # resolved outside hydra.main: nothing to list
        return ""
    lines = []
    for group in sorted(g for g in hydra.list_all_config_groups() if not g.startswith("hydra")):
        options = sorted(o for o in hydra.config_loader.get_group_options(group)
                         if not o.endswith("_schema"))
        lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


def register_help_resolver() -> None:
    """Make ``${marl_config_groups:}`` resolvable (:func:`config_groups`)."""
    if not OmegaConf.has_resolver("marl_config_groups"):
        OmegaConf.register_new_resolver("marl_config_groups", config_groups)


def _is_group(key: str) -> bool:
    from marl.build import CONF_DIR

    return key.startswith("hydra") or (CONF_DIR / key.replace(".", "/")).is_dir()


def check_added_keys(overrides: list[str], dcfg: DictConfig) -> None:
    """ConfigError for a ``+a.b=v`` whose key no schema has (a misspelling); a key under
    a plain mapping (``env.kwargs``, an untyped node) is allowed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if not (o.is_add() or o.is_force_add()) or _is_group(key):
            continue
        node: Any = dcfg
        for part in key.split("."):
            kind = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
            if kind is None or kind is dict:  # an open mapping: anything goes below it
                break
            names = list(getattr(kind, "__dataclass_fields__", {}))
            if part not in names:
                raise ConfigError(f"{o.input_line}: no key {part!r} in {kind.__name__} "
                                  f"(misspelt?); its keys: {', '.join(names)}")
            node = node._get_node(part)


def _validate(dcfg: DictConfig, overrides: list[str]) -> Config:
    """``to_config`` told the command line's overrides (outside ``hydra.main`` it cannot
    ask Hydra for them)."""
    params = inspect.signature(to_config).parameters
    kw = {name: overrides for name in ("overrides", "cli_overrides") if name in params}
    return to_config(dcfg, **kw)


@dataclass
class HydraFlags:
    """The Hydra flags that choose the config (``--config-dir``/``-cd``,
    ``--config-name``/``-cn``, ``--config-path``/``-cp``) and ``-m``: composed with here
    as Hydra will compose with them."""

    config_dir: str | None = None  # --config-dir: searched before conf/ and the schemas
    config_name: str | None = None  # --config-name: the primary config (default "config")
    config_path: str | None = None  # --config-path: the primary config directory
    multirun: bool = False  # -m / --multirun
    tokens: list[str] = field(default_factory=list)  # as given, for hydra.main

    def primary(self) -> Path:
        """The primary config directory: ``-cp`` (relative to ``marl/``, the directory
        of the file declaring ``hydra.main``, as Hydra takes it) or ``conf/``."""
        from marl.build import CONF_DIR

        if self.config_path is None:
            return CONF_DIR
        return (Path(__file__).parent / self.config_path).resolve()


_VALUE_FLAGS = {"-cd": "config_dir", "--config-dir": "config_dir", "-cn": "config_name",
                "--config-name": "config_name", "-cp": "config_path",
                "--config-path": "config_path"}


def split_flags(argv: list[str]) -> tuple[HydraFlags, list[str], list[str]]:
    """(the config-choosing flags and ``-m``, the overrides, any other flag: ``--cfg``,
    ``--help``..., which go to Hydra untouched)."""
    flags, overrides, other = HydraFlags(), [], []
    it = iter(argv)
    for a in it:
        name, eq, value = a.partition("=")
        if a in ("-m", "--multirun"):
            flags.multirun = True
            flags.tokens.append(a)
        elif name in _VALUE_FLAGS:
            if not eq:
                value = next(it, None)
                if value is None:
                    raise ConfigError(f"{a} needs a value")
            setattr(flags, _VALUE_FLAGS[name], value)
            flags.tokens += [name, value]
        elif a.startswith("-"):
            other.append(a)
        else:
            overrides.append(a)
    return flags, overrides, other


class _hydra_for:  # noqa: N801 - a context manager like hydra.initialize_config_dir
    """Hydra initialised with the search path ``hydra.main`` builds for ``flags``
    (the primary config dir, ``--config-dir`` prepended before the schemas)."""

    def __init__(self, flags: HydraFlags):
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_config_search_path
        from hydra.core.config_search_path import SearchPathQuery
        from hydra.initialize import get_gh_backup

        self._backup = get_gh_backup()
        csp = create_config_search_path(search_path_dir=str(flags.primary()))
        if flags.config_dir is not None:
            extra = Path(flags.config_dir).expanduser().absolute()
            if not extra.is_dir():
                raise ConfigError(f"--config-dir {flags.config_dir}: no such directory "
                                  f"({extra})")
            csp.prepend(provider="command-line", path=f"file://{extra}",
                        anchor=SearchPathQuery(provider="schema"))
        Hydra.create_main_hydra2(task_name="train", config_search_path=csp)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        from hydra.initialize import restore_gh_from_backup

        restore_gh_from_backup(self._backup)


def _compose(overrides: list[str], flags: HydraFlags | None = None
             ) -> tuple[DictConfig, Path, Path]:
    """The composed config (without ``hydra``), its resolved ``hydra.run.dir`` and
    ``hydra.sweep.dir``; ConfigError (one line) for Hydra's errors and unknown ``+keys``.
    ``flags``: the command line's ``--config-dir``/``-cn``/``-cp``, as Hydra takes them."""
    from hydra import compose
    from hydra.core.utils import validate_config_path

    from marl.build import register_configs

    flags = flags or HydraFlags()
    register_configs()
    try:
        validate_config_path(flags.config_path)
        with _hydra_for(flags):
            dcfg = compose(config_name=flags.config_name or "config", overrides=overrides,
                           return_hydra_config=True)
        run_dir, sweep_dir = Path(str(dcfg.hydra.run.dir)), Path(str(dcfg.hydra.sweep.dir))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - every composition error is the user's input
        raise ConfigError(one_line(e)) from e
    with open_dict(dcfg):
        del dcfg["hydra"]
    check_added_keys(overrides, dcfg)
    return dcfg, run_dir, sweep_dir


def compose_checked(overrides: list[str], flags: HydraFlags | None = None
                    ) -> tuple[Config, Path, Path]:
    """The validated config of ``overrides`` and its resolved ``hydra.run.dir`` and
    ``hydra.sweep.dir``; ConfigError (one line) for anything wrong."""
    dcfg, run_dir, sweep_dir = _compose(overrides, flags)
    return _validate(dcfg, overrides), run_dir, sweep_dir


def first_job(overrides: list[str]) -> list[str] | None:
    """A multirun's first job: every sweep at its first value (None if a sweep cannot be
    listed, e.g. an optimiser's interval)."""
    jobs = listed_jobs(overrides)
    return jobs[0] if jobs else None


def listed_jobs(overrides: list[str]) -> list[list[str]] | None:
    """The first job, then one job for every other listed value of each sweep (the other
    sweeps at their first value): each value composed once, not every combination. None
    if a sweep cannot be listed (an optimiser's interval: Hydra checks it per job)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as e:  # noqa: BLE001 - the user's syntax
        raise ConfigError(one_line(e)) from e
    first, rest = [], []
    for i, o in enumerate(parsed):
        if not o.is_sweep_override():
            first.append(o.input_line)
            continue
        try:
            lines = [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            parser.parse_overrides(lines)
        except Exception:  # noqa: BLE001 - not listable here: Hydra checks it per job
            return None
        first.append(lines[0])
        rest += [(i, line) for line in lines[1:]]
    return [first, *([*first[:i], line, *first[i + 1:]] for i, line in rest)]


def check_sweep(overrides: list[str], flags: HydraFlags | None = None) -> Path | None:
    """Before a multirun: every listed value composes (:func:`listed_jobs`: Hydra's errors,
    a value of the wrong type, unknown ``+keys``: the whole sweep would fail, so no job
    runs; a value a job's validation refuses fails that job alone, and the sweep summary
    reports it), and an explicit ``hydra.sweep.dir`` that holds a sweep is refused without
    ``resume=true``. Returns the earlier sweep a ``resume=true`` multirun continues
    (:func:`marl.io.sweepdir.previous_sweep`), or None."""
    jobs = listed_jobs(overrides)
    if jobs is None:
        return None
    dcfg, _, sweep_dir = _compose(jobs[0], flags)
    for job in jobs[1:]:
        _compose(job, flags)
    if not dcfg.get("resume") and sweep_dir.is_dir() and any(sweep_dir.iterdir()):
        raise RunDirError(f"sweep directory {sweep_dir.absolute()} already holds a sweep: "
                          "pass resume=true to continue it, or choose another "
                          "hydra.sweep.dir")
    given = any(o.lstrip("+").startswith("hydra.sweep.dir=") for o in overrides)
    return previous_sweep(sweep_dir, overrides) if dcfg.get("resume") and not given else None


def _quote(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def prepare(argv: list[str]) -> tuple[list[str], RunDir | None]:
    """Check ``argv`` (Hydra overrides) and take the run directory; returns the argv for
    ``hydra.main`` (with ``hydra.run.dir`` resolved) and the held :class:`RunDir`.
    The flags that choose the config (``--config-dir``, ``-cn``, ``-cp``: see
    :class:`HydraFlags`) are composed with, as Hydra will; other flags (``--cfg``,
    ``--help``...) go to Hydra untouched (None); a multirun's first job is checked
    (:func:`check_sweep`) and each job takes its directory itself.
    Raises ConfigError or RunDirError (exit 2)."""
    argv = rewrite_deprecated(argv)
    flags, overrides, other = split_flags(argv)
    if other:
        return argv, None
    if flags.multirun:  # flags first: argparse takes no flag between overrides
        earlier = check_sweep(overrides, flags)
        pin = [f"hydra.sweep.dir={_quote(earlier.absolute())}"] if earlier else []
        return [*flags.tokens, *overrides, *pin], None
    cfg, run_dir, _ = compose_checked(overrides, flags)
    rd = claim(run_dir, cfg.resume)
    rest = [a for a in overrides if not a.lstrip("+").startswith("hydra.run.dir=")]
    return [*flags.tokens, *rest, f"hydra.run.dir={_quote(rd.path)}"], rd


def fail(run_dir: Path, message: str, code: int, multirun: bool,
          record: bool = True) -> float:
    """Report a failed run: one line on stderr, ``failed.json`` in its directory when
    ``record``; in a multirun return NaN so the other jobs go on (the sweep summary lists
    the failure)."""
    print(f"error: {message}", file=sys.stderr)
    if record and run_dir.is_dir():
        for attempt in range(2):
            try:
                write_json_atomic(run_dir / "failed.json", {"error": message,
                                                            "exit_code": code})
                break
            except DiskFullError:  # give the lock file's reserve back, and try again
                if attempt:
                    print(f"error: could not write {run_dir / 'failed.json'} (disk full)",
                          file=sys.stderr)
                free_reserve(run_dir)
    if multirun:
        return float("nan")
    sys.exit(code)


def save_hydra_files(run_dir: Path, dcfg: DictConfig) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml``, ``overrides.yaml``, as Hydra writes them;
    written here, once the run starts, so a refused run leaves the old ones as they were."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    out = run_dir / ".hydra"
    out.mkdir(exist_ok=True)
    for name, obj in (("config.yaml", dcfg), ("hydra.yaml", OmegaConf.create({"hydra": hc})),
                      ("overrides.yaml", OmegaConf.create(list(hc.overrides.task)))):
        write_bytes_atomic(out / name, OmegaConf.to_yaml(obj).encode(), fsync=False)
