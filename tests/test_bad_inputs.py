"""Every refusal explains itself and leaves nothing behind: a table of bad inputs run
through the real entry point (``marl.train.main``, in-process, as Hydra calls it)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra

from marl.envs import BoxPushEnvConfig, make_vec_env
from marl.envs.boxpush import BoxPushEnv
from marl.train import main

BASE = ["+experiment=coma_boxpush", "train.total_env_steps=640", "train.num_envs=8",
        "train.eval_episodes=2", "logger.progress=false", "logger.wandb.mode=disabled",
        "logger.plots=[]"]

# (overrides, text the message must contain)
CASES = [
    (["algo.actor_lr=0"], "algo.actor_lr = 0.0 is invalid: must be > 0"),
    (["algo.critic_lr=-0.001"], "algo.critic_lr = -0.001 is invalid"),
    (["algo.critic_lr=inf"], "algo.critic_lr = inf is invalid: must be a finite number"),
    (["algo.entropy_coef=nan"], "algo.entropy_coef = nan is invalid: must be a finite number"),
    (["train.total_env_steps=9223372036854775808"],
     "train.total_env_steps = 9223372036854775808 is invalid: must be at most 2**63 - 1"),
    (["algo.td_lambda=1.5"], "algo.td_lambda = 1.5 is invalid: must be in [0, 1]"),
    (["algo.gamma=0"], "algo.gamma = 0.0 is invalid: must be in (0, 1]"),
    (["algo.gamma=1.5"], "algo.gamma = 1.5 is invalid"),
    (["algo.eps_start=2"], "algo.eps_start = 2.0 is invalid"),
    (["algo.actor_hidden=[]"], "algo.actor_hidden = [] is invalid"),
    (["algo.actor_inputs=[agent_id,foo]"],
     "algo.actor_inputs = ['agent_id', 'foo'] is invalid: choose a subset"),
    (["algo.optimizer=sgd"], "algo.optimizer = 'sgd' is invalid: choose adam or rmsprop"),
    (["algo.advantage=magic"], "algo.advantage = 'magic' is invalid: choose one of"),
    (["train.num_envs=0"], "train.num_envs = 0 is invalid: must be >= 1"),
    (["train.fragment_len=0"], "train.fragment_len = 0 is invalid"),
    (["train.total_env_steps=0"], "train.total_env_steps = 0 is invalid"),
    (["train.eval_episodes=0"], "train.eval_episodes = 0 is invalid"),
    (["env.width=2"], "env.width = 2 is invalid: must be an int >= 3"),
    (["env.box_weight=3"], "env.box_weight = 3 is invalid: must be 1 or 2"),
    (["env.solo_push_prob=-0.1"], "env.solo_push_prob = -0.1 is invalid"),
    (["env.hole=[9,9]"], "env.hole = [9, 9] is invalid"),
    (["env.max_steps=0"], "env.max_steps = 0 is invalid"),
    (["env.view_radius=-1"], "env.view_radius = -1 is invalid"),
    (["logger.wandb.mode=maybe"], "logger.wandb.mode = 'maybe' is invalid"),
    (["logger.plots=[pie_chart]"], "logger.plots = 'pie_chart' is invalid"),
    (["checkpoint.keep=0"], "checkpoint.keep = 0 is invalid: must be >= 1"),
    (["checkpoint.every_env_steps=-5"], "checkpoint.every_env_steps = -5 is invalid"),
    (["seed=-1"], "seed = -1 is invalid: must be >= 0"),
    # composition errors: Hydra refuses before any directory exists
    (["env.widht=5"], "Key 'widht' not in 'BoxPushEnvConfig'"),
    (["train.num_envs=lots"], "num_envs"),
    (["+experiment=coma_boxpsh"], "coma_boxpush_strict"),  # lists the available ones
    (["env=boxpsh"], "boxpush"),
    (["algo=comma"], "coma"),
    (["hydra/launcher=jobib"], "basic"),
    (["seed=abc"], "seed=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    (["+experiment=nope"], "could not find 'experiment/nope': choose one of coma_bandit"),
    (["trian.num_envs=4"], "Could not override 'trian.num_envs': Key 'trian' not in 'Config'"),
    (["+trian.num_envs=4"], "+trian.num_envs=4: no key 'trian' in Config (misspelt?)"),
    (["+train.num_env=4"], "+train.num_env=4: no key 'num_env' in TrainConfig"),
    (["+env.widht=4"], "+env.widht=4: no key 'widht' in BoxPushEnvConfig"),
    (["seed=0,1"], "Ambiguous value for argument 'seed=0,1'"),
    (["seed=[1"], "no viable alternative at input '[1'"),
    (["hydra.run.dir=runs/x(1)"], """needs quotes, e.g. 'hydra.run.dir="runs/x(1)"'"""),
]


def run_main(overrides: list[str], monkeypatch) -> int:
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["marl.train", *overrides])
    try:
        main()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.mark.parametrize("overrides,message", CASES, ids=[c[0][-1] for c in CASES])
def test_bad_input_is_refused_with_its_name_and_leaves_nothing(overrides, message, tmp_path,
                                                               monkeypatch, capsys):
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    code = run_main([*BASE, *overrides, f"hydra.run.dir={run_dir}"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err, err[-1500:]
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert not run_dir.exists(), sorted(p.name for p in run_dir.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no outputs/ either


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_unknown_pettingzoo_env_is_refused_cleanly(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    code = run_main(["env=pettingzoo", "env.id=no_such_module:factory", *BASE[1:],
                     f"hydra.run.dir={run_dir}"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "env.id" in err and "no_such_module" in err
    assert not run_dir.exists()


def test_corrupt_checkpoint_on_resume_is_an_error_not_a_fresh_start(tmp_path, monkeypatch,
                                                                   capsys):
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert run_main([*BASE, f"hydra.run.dir={run_dir}"], monkeypatch) == 0
    ckpt = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))[-1]
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    before = (run_dir / "metrics.jsonl").read_text()
    code = run_main([*BASE, "resume=true", f"hydra.run.dir={run_dir}"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "corrupt or truncated" in err and ckpt.name in err
    assert (run_dir / "metrics.jsonl").read_text() == before  # nothing rewritten


@pytest.mark.parametrize("action,agent", [(5, "robot_1"), (-1, "robot_1")])
def test_invalid_action_names_agent_and_action(action, agent):
    env = make_vec_env(BoxPushEnvConfig(), 3, seed=0)
    actions = np.zeros((3, 2), np.int64)
    actions[1, 1] = action
    with pytest.raises(ValueError, match=rf"invalid action {action} for agent '{agent}'"):
        env.step(actions)
    pz = BoxPushEnv()
    pz.reset(seed=0)
    with pytest.raises(ValueError, match=agent):
        pz.step({"robot_0": 0, agent: action})
    with pytest.raises(ValueError, match="robot_7"):
        pz.step({"robot_0": 0, "robot_1": 0, "robot_7": 1})


def test_open_mappings_take_added_keys():
    """``+env.kwargs.<name>`` is an open mapping: the added-key check lets it through."""
    from marl.cli import compose_checked

    cfg, *_ = compose_checked(["env=pettingzoo", "env.id=pettingzoo.mpe:simple_spread_v3",
                              "+env.kwargs.N=2"])
    assert cfg.env.kwargs == {"N": 2}


@pytest.mark.parametrize("overrides,message", [
    (["seed=abc,1"], "seed=abc: Value 'abc' of type 'str' could not be converted"),
    (["seed=0,1", "+trian.num_envs=4"], "+trian.num_envs=4: no key 'trian' in Config"),
    (["seed=0,1", "algo=comma,coma"], "could not find 'algo/comma': choose one of"),
    (["train.num_envs=8,abc,4"], "train.num_envs=abc: Value 'abc' of type 'str' could not"),
    (["seed=0,1", "algo=coma,central_vv"], "could not find 'algo/central_vv'"),
], ids=["seed", "added-key", "algo", "a-later-value", "a-later-choice"])
def test_a_sweep_checks_every_listed_value_before_it_starts(overrides, message, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_main(["-m", *BASE, *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                    monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_into_an_existing_sweep_directory_needs_resume(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    (sweep / "0_coma_s0").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    code = run_main(["-m", *BASE, "seed=0,1", f"hydra.sweep.dir={sweep}"], monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "already holds a sweep" in err[0], err
    assert [p.name for p in sweep.iterdir()] == ["0_coma_s0"]
