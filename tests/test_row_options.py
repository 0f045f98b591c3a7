"""Options that belong to one row live under it (``algo.ppo.*``, ``algo.shared_torso.*``,
``algo.reinforce.*``; a plugin row's own block): typed and checked at start, handed to
the row, refused for a row the run does not use, and reached from the old flat names
(deprecated aliases). Runs written before the move still evaluate and resume exactly.
Every learner keeps working through ``.eval()`` / ``.train()`` between updates."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from conftest import QUIET, ROOT, TINY, compose_config, train_quietly
from rollouts import random_rollout

from marl.algos import LEARNERS
from marl.algos.coma.advantages import ADVANTAGES, AdvantageInputs
from marl.algos.coma.config import OWN_BLOCKS, ComaConfig
from marl.algos.coma.learner import Learner
from marl.schema import ConfigError, lookup


def _fragment(seed: int = 0):
    """5 steps of 3 envs, 2 agents (obs 4, state 3, 5 actions); env 0 terminates at
    step 2, env 1 is truncated at step 3."""
    return random_rollout(5, 3, 2, 4, 3, 5, term_at=(2, 0), trunc_at=(3, 1), seed=seed)


TD0 = ["plugin_path=[experiments/plugins]", "algo.advantage=td0_advantage:ADVANTAGE"]


def _td0_row():
    return lookup(ADVANTAGES, "td0_advantage:ADVANTAGE", "algo.advantage")


# ------------------------------------------------------------- a plugin's own options
def test_a_plugin_row_declares_and_receives_its_own_option(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = compose_config(["+experiment=coma_boxpush", *TD0, "+algo.td0.scale=0.5"])
    assert cfg.algo.plugin_options == {"td0": {"scale": 0.5}}
    assert cfg.algo.options(_td0_row()).scale == 0.5
    default = compose_config(["+experiment=coma_boxpush", *TD0]).algo
    assert default.options(_td0_row()).scale == 1.0  # the dataclass's default


def test_the_plugin_option_reaches_the_advantage_by_hand(monkeypatch):
    """r = 1, V(s) = 0.25, V(s') = 2, gamma 0.5: TD error 1 + 1 - 0.25 = 1.75, scaled
    by 0.5 = 0.875; at a terminal step V(s') is not used: 0.5 * (1 - 0.25) = 0.375."""
    monkeypatch.chdir(ROOT)
    row = _td0_row()
    x = AdvantageInputs(
        pi=torch.full((2, 1, 1, 2), 0.5), actions=torch.zeros(2, 1, 1, dtype=torch.long),
        rewards=torch.ones(2, 1, 1), terminated=torch.tensor([False, True]).reshape(2, 1, 1),
        truncated=torch.zeros(2, 1, 1, dtype=torch.bool),
        q={"central_v": torch.full((2, 1, 1, 1), 0.25)}, targets={},
        next_values={"central_v": torch.full((2, 1, 1), 2.0)}, gamma=0.5,
        options=row.options(scale=0.5))
    adv, base = row.fn(x)
    assert adv.flatten().tolist() == pytest.approx([0.875, 0.375])
    assert base.flatten().tolist() == pytest.approx([0.25, 0.25])


def test_the_learner_hands_the_option_to_its_row(monkeypatch, tmp_path):
    """A whole update: the advantage function sees ``x.options`` as configured."""
    monkeypatch.chdir(ROOT)
    seen = []
    cfg = compose_config(["+experiment=coma_boxpush", *TD0, "+algo.td0.scale=0.25"]).algo
    from marl.envs.base import EnvSpec

    spec = EnvSpec(agents=("a", "b"), obs_shape=(4,), state_dim=3, n_actions=5)
    learner = Learner(spec, cfg)
    original = learner.advantage
    learner.advantage = original._replace(fn=lambda x: (seen.append(x.options),
                                                        original.fn(x))[1])
    learner.update(_fragment())
    assert [o.scale for o in seen] == [0.25]


@pytest.mark.parametrize("override,words", [
    ("+algo.td0.scale=-1", "algo.td0.scale = -1 is invalid: must be > 0"),
    ("+algo.td0.sclae=2", "algo.td0.sclae = 2 is invalid: not an option of algo.advantage="
                          "td0_advantage:ADVANTAGE: it has ['scale']"),
])
def test_a_bad_plugin_option_is_one_line_naming_it(override, words, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError) as e:
        compose_config(["+experiment=coma_boxpush", *TD0, override])
    assert str(e.value) == words


def test_the_plugin_trains_with_its_option(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    summary = train_quietly(tmp_path / "run", [*TINY, *QUIET, *TD0, "+algo.td0.scale=0.5",
                                               "train.total_env_steps=120"])
    assert summary["env_steps"] >= 120
    stored = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert stored["env_steps"] == summary["env_steps"]


# ----------------------------------------------------------------- built-in blocks
def test_every_built_in_block_is_a_typed_field_of_the_config():
    fields = {f.name: f for f in dataclasses.fields(ComaConfig)}
    for key in OWN_BLOCKS:
        assert key in fields, key
        assert dataclasses.is_dataclass(fields[key].default_factory()), key
    assert set(OWN_BLOCKS) == {"ppo", "shared_torso", "critic_ppo", "reinforce"}


def test_an_option_of_a_row_the_run_does_not_use_is_refused_naming_both():
    with pytest.raises(ConfigError) as e:
        compose_config(["+experiment=coma_boxpush", "algo.ppo.clip=0.1"])
    assert str(e.value) == ("algo.ppo.clip is invalid here: it is an option of "
                            "algo.actor_update=ppo, and this run has algo.actor_update=pg")


def test_a_preset_may_carry_blocks_of_rows_it_does_not_use():
    """coma.yaml's defaults for every block, or a PPO preset's block under algo=coma:
    only the command line is held to the rows it names."""
    cfg = compose_config(["+experiment=mappo_boxpush", "algo=coma"])
    assert cfg.algo.actor_update == "pg" and cfg.algo.ppo.epochs == 4


@pytest.mark.parametrize("old,new,value", [
    ("clip", ("ppo", "clip"), 0.1), ("epochs", ("ppo", "epochs"), 2),
    ("minibatches", ("ppo", "minibatches"), 2),
    ("value_coef", ("shared_torso", "value_coef"), 0.25),
    ("reinforce_baseline", ("reinforce", "baseline"), True),
])
def test_the_old_flat_names_are_deprecated_aliases(old, new, value, capsys):
    algo = "algo=ippo" if new[0] == "shared_torso" else \
        "algo=reinforce" if new[0] == "reinforce" else "algo=mappo"
    extra = ["algo.critic_update=shared_torso"] if new[0] == "shared_torso" else []
    cfg = compose_config(["+experiment=coma_boxpush", algo, *extra, f"algo.{old}={value}"])
    assert getattr(getattr(cfg.algo, new[0]), new[1]) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: algo.{old} is deprecated: write algo.{new[0]}.{new[1]}"]


def test_a_stored_flat_config_is_upgraded_silently():
    from marl.config import upgrade_flat_config

    flat = {"algo.clip": 0.1, "algo.value_clip": None, "algo.return_reset_on_reward": True,
            "algo.gamma": 0.9}
    assert upgrade_flat_config(flat) == {
        "algo.ppo.clip": 0.1, "algo.shared_torso.value_clip": None,
        "algo.reinforce.reset_on_reward": True, "algo.gamma": 0.9}


# -------------------------------------------------------------- runs written before
OLD_RUNS = ROOT / "tests" / "data" / "runs_0.2.0"


def _rows(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


@pytest.mark.parametrize("name,block,value", [
    ("ippo", ("shared_torso", "value_clip"), 0.2), ("reinforce", ("reinforce", "baseline"),
                                                     True)])
def test_a_run_written_before_the_move_evaluates_and_resumes_where_it_stopped(
        name, block, value, tmp_path):
    """Tiny runs written by marl 0.2 with flat option names (``algo.value_clip``,
    ``algo.reinforce_baseline``; ippo_boxpush with the shared torso, reinforce_bandit with
    a baseline): their config loads into the nested layout, their checkpoint evaluates,
    and a resume from the 80-step checkpoint writes the same rows 120 and 160 as the
    uninterrupted run did (its metrics.jsonl, kept from before the move): the same keys,
    counts and schedules exactly, every float to 1e-4 relative. The rows were written on
    another CPU, whose float rounding moves them by ~1e-5 (measured on an AMD EPYC
    against the committed rows); a resume from the wrong step, RNG state or optimiser
    state moves them by far more. Exact resumption on one CPU: tests/test_resume.py."""
    from marl.evaluate import EvalArgs, load_run_config, run
    from marl.train import Trainer

    run_dir = tmp_path / name
    shutil.copytree(OLD_RUNS / name, run_dir)
    want = _rows(run_dir / "metrics.jsonl")
    cfg = load_run_config(run_dir)
    assert getattr(getattr(cfg.algo, block[0]), block[1]) == value
    assert "eval/return_mean" in json.dumps(run(EvalArgs(run_dir=run_dir, episodes=4)))
    cfg = dataclasses.replace(cfg, resume=True)
    cfg.logger.progress = False
    cfg.logger.wandb.mode = "disabled"
    Trainer(cfg, run_dir, {}).run()
    got = _rows(run_dir / "metrics.jsonl")
    assert [r["env_steps"] for r in got] == [40, 80, 120, 160]
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for g, w in zip(got[2:], want[2:], strict=True):
        for k, v in w.items():
            if isinstance(v, float):
                assert g[k] == pytest.approx(v, rel=1e-4, abs=1e-7), (g["env_steps"], k)
            else:
                assert g[k] == v, (g["env_steps"], k)


# ------------------------------------------------- torch's train/eval flag is free
LEARNER_CASES = [
    ("coma", {}), ("coma", {"actor_update": "ppo"}),
    ("coma", {"actor_update": "ppo", "critic_update": "ppo"}),
    ("coma", {"advantage": "iac_v", "actor_update": "ppo", "critic_update": "shared_torso"}),
    ("coma", {"advantage": "reinforce"}),
]


@pytest.mark.parametrize("family,kw", LEARNER_CASES + [("vd", {})],
                         ids=lambda v: v if isinstance(v, str) else
                         "-".join(f"{k}={x}" for k, x in v.items()) or "default")
def test_every_learner_updates_after_eval_and_train(family, kw):
    """``nn.Module.eval()`` / ``.train()`` set torch's own ``training`` flag; a learner
    that kept a strategy under that name lost it there."""
    from marl.envs.base import EnvSpec

    spec = EnvSpec(agents=("a", "b"), obs_shape=(4,), state_dim=3, n_actions=5,
                   episode_limit=5)
    row = LEARNERS[family]
    cfg = row.config(**({**kw, "ppo": dataclasses.replace(
        row.config().ppo, minibatches=1)} if "actor_update" in kw else kw)) \
        if family == "coma" else row.config()
    learner = row.learner(spec, cfg, num_envs=3, seed=0)
    for flag in ("eval", "train", "eval"):
        getattr(learner, flag)()
        learner.update(_fragment(1))
    assert learner.training is False
