"""Ideas from outside the package: every table (learner family, advantage, actor update,
critic training, mixer, env) takes a plugin ``module:attr`` from a directory in
``plugin_path``; the worked example of experiments/plugins runs end to end; a native env
of one file (tests/plugins/echo_env.py) trains from the config; per-family config
schemas refuse what another family reads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import QUIET, ROOT, TINY, compose_config

from marl.algos import LEARNERS
from marl.algos.coma.advantages import AdvantageInputs
from marl.algos.coma.config import ComaConfig
from marl.algos.vd.config import VDConfig
from marl.schema import ConfigError

PLUGINS = ROOT / "experiments" / "plugins"
TEST_PLUGINS = ROOT / "tests" / "plugins"


def _uniform():
    sys.path.insert(0, str(PLUGINS))
    try:
        import uniform_baseline
    finally:
        sys.path.remove(str(PLUGINS))
    return uniform_baseline


def test_uniform_baseline_by_hand():
    """One agent, A = 3, the third action masked (pi = 0): Q = [1, 4, 100], u = 1:
    baseline = mean(1, 4) = 2.5, advantage 4 - 2.5 = 1.5 (COMA's would weight by pi)."""
    q = torch.tensor([1.0, 4.0, 100.0]).reshape(1, 1, 1, 3)
    pi = torch.tensor([0.25, 0.75, 0.0]).reshape(1, 1, 1, 3)
    x = AdvantageInputs(pi=pi, actions=torch.tensor([[[1]]]), rewards=torch.zeros(1, 1, 1),
                        terminated=torch.zeros(1, 1, 1, dtype=torch.bool),
                        truncated=torch.zeros(1, 1, 1, dtype=torch.bool),
                        q={"central_q": q}, targets={}, next_values={}, gamma=0.99)
    adv, base = _uniform().uniform_counterfactual(x)
    assert float(base) == pytest.approx(2.5)
    assert float(adv) == pytest.approx(1.5)


PLUGIN = ["plugin_path=[experiments/plugins]", "algo.advantage=uniform_baseline:ADVANTAGE"]


def test_plugin_is_named_from_the_config(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = compose_config(["+experiment=coma_boxpush", *PLUGIN])
    assert cfg.algo.advantage == "uniform_baseline:ADVANTAGE"
    assert cfg.plugin_path == ["experiments/plugins"]


def test_worked_plugin_trains_box_pushing_end_to_end_from_another_directory(tmp_path):
    """A real ``python -m marl.train`` launched outside the repository, the plugin's
    directory given relative to where the run was launched; then ``marl.evaluate``
    from yet another directory imports it again from the run's recorded config."""
    launch = tmp_path / "launch"
    (launch / "mine").mkdir(parents=True)
    (launch / "mine" / "uniform_baseline.py").write_text(
        (PLUGINS / "uniform_baseline.py").read_text())
    run_dir = tmp_path / "run"
    env = {"WANDB_MODE": "disabled", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "marl.train", *TINY, *QUIET, "plugin_path=[mine]",
           "algo.advantage=uniform_baseline:ADVANTAGE", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=launch, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(torch.isfinite(torch.tensor(r["loss/actor"])) for r in rows
                        if "loss/actor" in r)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "marl.evaluate", f"run_dir={run_dir}",
                           "episodes=4"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _write(tmp_path: Path, name: str, body: str) -> list[str]:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    return [f"plugin_path=[{tmp_path}]"]


def test_actor_update_plugin_is_called(tmp_path, monkeypatch):
    """A user's actor update (here: pg that counts its calls) runs in the learner."""
    from marl.build import build

    path = _write(tmp_path, "my_update", """
        from marl.algos.coma.updates.pg import PolicyGradient
        class Counting(PolicyGradient):
            calls = 0
            def __call__(self, *args):
                Counting.calls += 1
                return super().__call__(*args)
        UPDATE = Counting()
    """)
    cfg = compose_config([*TINY, *path, "algo.actor_update=my_update:UPDATE"])
    env, learner, runner = build(cfg, 4)
    try:
        learner.update(runner.collect(learner.policy))
    finally:
        env.close()
    assert sys.modules["my_update"].Counting.calls == 1


def test_critic_training_plugin_gets_the_parts_and_typed_minibatches(tmp_path):
    """A user's critic-training row (here: ppo's, recording what its hooks receive) gets
    the learner's ComaParts and PPO's Minibatch records with its own samples in
    ``mb.critic``, cut to the minibatch, and its steps reach the metrics."""
    from marl.build import build

    path = _write(tmp_path, "my_critics", """
        from marl.algos.coma.critic_training import MinibatchTraining
        class Seen(MinibatchTraining):
            seen = []
            def after_minibatch(self, parts, mb):
                Seen.seen.append((type(parts).__name__, type(mb).__name__,
                                  type(mb.critic).__name__, mb.critic.state.shape[:2],
                                  mb.obs.shape[:2]))
                return super().after_minibatch(parts, mb)
        TRAINING = Seen
    """)
    cfg = compose_config([*TINY, *path, "algo.actor_update=ppo", "algo.advantage=central_v",
                          "algo.critic_update=my_critics:TRAINING", "algo.ppo.epochs=1"])
    env, learner, runner = build(cfg, 4)
    try:
        ro = runner.collect(learner.policy)
        stats = learner.update(ro)
    finally:
        env.close()
    seen = sys.modules["my_critics"].Seen.seen
    rows = ro.actions.shape[0] * ro.actions.shape[1] // cfg.algo.ppo.minibatches  # T B / m
    assert seen == [("ComaParts", "Minibatch", "CriticSamples", (1, rows), (1, rows))] * len(
        seen) and 1 <= len(seen) <= cfg.algo.ppo.minibatches
    assert stats.critic_loss["central_v"] > 0


def test_learner_family_plugin(tmp_path):
    """A whole learner family from the user's file: its own config schema and class."""
    from marl.build import build

    path = _write(tmp_path, "my_family", """
        from dataclasses import dataclass
        from marl.algos import LEARNERS
        from marl.algos.base import LearnerFamily
        from marl.algos.coma.config import ComaConfig
        from marl.algos.coma.learner import ComaLearner, update_metrics

        @dataclass
        class MyConfig(ComaConfig):
            learner: str = "my_family:FAMILY"
            temperature: float = 1.0

        class MyLearner(ComaLearner):
            pass

        FAMILY = LearnerFamily(MyConfig, MyLearner, update_metrics)
    """)
    cfg = compose_config([*TINY, *path, "algo.learner=my_family:FAMILY",
                          "+algo.temperature=2.0"])
    assert type(cfg.algo).__name__ == "MyConfig" and cfg.algo.temperature == 2.0
    env, learner, _ = build(cfg, 4)
    env.close()
    assert type(learner).__name__ == "MyLearner"


@pytest.mark.parametrize("override,message", [
    ("algo.advantage=no_such_module:X", "cannot import module 'no_such_module'"),
    ("algo.advantage=uniform_baseline:NOPE", "has no 'NOPE'"),
    ("algo.advantage=counterfactual", "choose one of .*coma"),
    ("algo.actor_update=trpo", "algo.actor_update.*choose one of .*pg.*ppo"),
    ("algo.critic_update=epochs", "algo.critic_update.*choose one of"),
    ("algo.learner=actor_critic", "algo.learner.*choose one of .*coma.*vd"),
])
def test_bad_plugin_or_table_name_is_one_line(override, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=message) as e:
        compose_config(["+experiment=coma_boxpush", "plugin_path=[experiments/plugins]",
                        override])
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------- a native env plugin
ECHO = ["env=plugin", "env.name=echo_env:ENV", f"plugin_path=[{TEST_PLUGINS}]",
        "env.options.length=3", "algo=coma"]


def test_a_native_env_plugin_trains_through_the_entry_point(tmp_path, monkeypatch, capsys):
    """tests/plugins/echo_env.py (config dataclass, VecEnv, EnvRow: one file, no edit of
    marl/) selected from the config trains 3 fragments with ``marl.train``'s ``main``;
    its episode statistic (``VecBuffers.episode["echoed"]``, the success metric) reaches
    the metrics rows."""
    from hydra.core.global_hydra import GlobalHydra

    from marl.train import main

    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [
        "marl.train", *ECHO, "env.options.n_cues=2", "train.num_envs=4",
        "train.fragment_len=6", "train.total_env_steps=72", "train.log_every_env_steps=24",
        "train.eval_episodes=4", "logger.progress=false", *QUIET, f"hydra.run.dir={run_dir}"])
    GlobalHydra.instance().clear()
    try:
        main()
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err[-2000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/episodes" in r]
    assert len(train) == 3 and rows[-1]["env_steps"] == 72
    assert all(r["train/length_mean"] == 3.0 and 0 <= r["train/echoed_rate"] <= 1
               for r in train)
    assert "eval/echoed_rate" in rows[-1] and "loss/actor" in rows[-1]


def test_a_native_env_plugin_is_typed_by_its_own_config():
    cfg = compose_config([*ECHO, "env.options.n_cues=5"])
    assert cfg.env.name == "echo_env:ENV" and cfg.env.options == {"length": 3, "n_cues": 5}
    assert type(cfg.env.config).__name__ == "EchoConfig" and cfg.env.config.n_cues == 5
    assert cfg.env.row is sys.modules["echo_env"].ENV


@pytest.mark.parametrize("override,message", [
    ("env.name=echo_env:ENVV", "env.name = 'echo_env:ENVV': module 'echo_env' has no 'ENVV'"),
    ("env.name=echo_envv:ENV", "env.name = 'echo_envv:ENV': cannot import module 'echo_envv'"),
    ("env.name=echo_env:EchoCore", "env.name = 'echo_env:EchoCore' is invalid: a plugin env "
                                   "is a marl.envs.EnvRow"),
    ("env.options.lenght=3", "env.options.lenght is not a field of EchoConfig"),
    ("env.options.length=0", "env.options.length = 0 is invalid: must be an int >= 1"),
])
def test_a_misspelt_env_plugin_is_one_line(override, message):
    with pytest.raises(ConfigError) as e:
        compose_config([*ECHO, override])
    assert message in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------- family schemas
COMA_ONLY = {f.name for f in dataclasses.fields(ComaConfig)} - \
    {f.name for f in dataclasses.fields(VDConfig)}
VD_ONLY = {f.name for f in dataclasses.fields(VDConfig)} - \
    {f.name for f in dataclasses.fields(ComaConfig)}


@pytest.mark.parametrize("preset", ["qmix_boxpush", "qmix_smax_3m", "coma_smax_3m",
                                    "coma_boxpush"])
def test_a_qmix_config_holds_no_coma_field(preset):
    cfg = compose_config([f"+experiment={preset}", "algo=qmix"])
    assert type(cfg.algo) is VDConfig
    assert not COMA_ONLY & set(vars(cfg.algo))
    assert COMA_ONLY and {"vd"} == VD_ONLY


@pytest.mark.parametrize("preset", ["qmix_smax_3m", "coma_smax_3m", "coma_boxpush"])
def test_a_coma_config_holds_no_vd_field(preset):
    cfg = compose_config([f"+experiment={preset}", "algo=coma"])
    assert type(cfg.algo) is ComaConfig
    assert not VD_ONLY & set(vars(cfg.algo))


def test_a_field_of_another_family_on_the_command_line_is_refused():
    from marl.build import compose_config as build_compose

    with pytest.raises(ConfigError, match="algo.critic_lr belongs to the 'coma' learner "
                                          "family"):
        build_compose(["+experiment=qmix_boxpush", "algo.critic_lr=0.1"])
    with pytest.raises(ConfigError, match="algo.critic_lr belongs to the 'coma' learner "
                                          "family, not to algo.learner=vd"):
        build_compose(["+experiment=qmix_boxpush", "+algo.critic_lr=0.1"])
    with pytest.raises(ConfigError, match="algo.vd belongs to the 'vd'"):
        build_compose(["+experiment=coma_boxpush", "+algo.vd.lr=0.1"])


def test_a_field_no_family_knows_is_refused():
    with pytest.raises(ConfigError, match="algo.critic_lrr is not a field of any learner"):
        compose_config(["+experiment=coma_boxpush", "+algo.critic_lrr=0.1"])


def test_every_algo_file_holds_exactly_its_familys_fields():
    """conf/algo/<name>.yaml lists every field of its family (so ``algo.<field>=`` can
    override any of them) and nothing else."""
    import yaml

    for path in sorted((ROOT / "conf" / "algo").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        parents = raw.pop("defaults", [])
        if parents:  # extends coma.yaml (or another file): check the merged keys
            continue
        family = LEARNERS[raw.get("learner", "coma")]
        assert set(raw) == {f.name for f in dataclasses.fields(family.config)}, path.name


# ------------------------------------------------------------------ old run directories
OLD_RUNS = ROOT / "tests" / "data" / "runs_0.1.0"


@pytest.mark.parametrize("name,family", [("coma", ComaConfig), ("qmix", VDConfig)])
def test_a_run_written_by_marl_0_1_still_evaluates(name, family, tmp_path):
    """Tiny COMA and QMIX runs written before the learner families (their algo config
    flat, ``vd: null`` / ``shared_torso: false``) load into today's schemas and their
    checkpoints evaluate. Those checkpoints have no header (format 1: nothing verifies
    them), so they load only with ``checkpoint.allow_unverified=true``."""
    import shutil

    from marl.evaluate import EvalArgs, EvaluateError, load_run_config, run

    run_dir = tmp_path / name
    shutil.copytree(OLD_RUNS / name, run_dir)
    cfg = load_run_config(run_dir)
    assert type(cfg.algo) is family
    with pytest.raises(EvaluateError, match="checkpoint.allow_unverified=true"):
        run(EvalArgs(run_dir=run_dir, episodes=4))
    out = run(EvalArgs(run_dir=run_dir, episodes=4, allow_unverified=True))
    assert "eval/return_mean" in json.dumps(out)


def test_legacy_upgrade_by_hand():
    from marl.config import upgrade_legacy_algo

    assert upgrade_legacy_algo({"name": "mappo", "vd": None, "shared_torso": True}) == \
        {"name": "mappo", "critic_update": "shared_torso", "learner": "coma"}
    assert upgrade_legacy_algo({"vd": {"mixer": "qmix"}, "shared_torso": False})["learner"] \
        == "vd"
    today = {"learner": "coma", "advantage": "coma"}
    assert upgrade_legacy_algo(today) is today
