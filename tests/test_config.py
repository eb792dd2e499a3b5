import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from rltransfer.config import ExperimentConfig, load_config
from rltransfer.config_yaml import apply_overrides
from rltransfer.errors import ConfigError
from rltransfer.validation import resolve, validate

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    setup = resolve(cfg)
    assert setup.sources and setup.targets


def test_every_key_has_a_default_except_family():
    cfg = load_config({"family": "cartpole"})
    assert cfg.transfer.seeds == 10 and cfg.conditioning == "context" and cfg.agent.algo == "ppo"
    with pytest.raises(ConfigError, match="config key 'family': required"):
        load_config({})


def test_bad_keys_are_named_with_what_is_allowed():
    with pytest.raises(ConfigError) as err:
        load_config({"family": "cartpole", "agent": {"algo": "a2c", "encoderr": {}}})
    msg = str(err.value)
    assert "config key 'agent.algo'" in msg and "'ppo', 'sac' or 'dqn'" in msg
    assert "config key 'agent.encoderr': unknown key (did you mean 'encoder'?); allowed keys here: algo, encoder" in msg
    assert "(got 'a2c')" in msg and "did you mean 'sac'" not in msg  # nothing close: no suggestion


def test_registry_checks_name_the_key():
    with pytest.raises(ConfigError, match="config key 'family': unknown family 'cartpol'"):
        validate(load_config({"family": "cartpol"}))
    with pytest.raises(ConfigError, match=r"config key 'source_tasks\[1\]': unknown task 'tall'"):
        validate(load_config({"family": "cartpole", "source_tasks": ["short", "tall"]}))
    with pytest.raises(ConfigError, match=r"target_tasks\[0\]'.*'gravity'=50.0 is out of range"):
        validate(load_config({"family": "cartpole", "target_tasks": [{"gravity": 50.0}]}))
    with pytest.raises(ConfigError, match="agent.hyperparams.learning_rat'"):
        validate(load_config({"family": "cartpole", "agent": {"hyperparams": {"learning_rat": 1}}}))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("transfer.seeds=true", "config key 'transfer.seeds': expected a number, not true/false (got True)"),
        ("runner.workers=true", "config key 'runner.workers': expected a number, not true/false"),
        ("runner.workers=0", "config key 'runner.workers': Input should be greater than or equal to 1, or 'auto' (got 0)"),
        ("runner.workers=x", "config key 'runner.workers': Input should be a valid integer, unable to parse string as an integer, or 'auto' (got 'x')"),
        ("evaluation.deterministic=0", "config key 'evaluation.deterministic': expected true or false (got 0)"),
        ("runner.batch_seeds='yes'", "config key 'runner.batch_seeds': expected true or false (got 'yes')"),
        ("pretrain.min_source_score=nan", "config key 'pretrain.min_source_score': Input should be a finite number (got 'nan')"),
        ("pretrain.min_source_score=true", "config key 'pretrain.min_source_score': expected a number, not true/false"),
        ("evaluation.thresholds={long: .inf}", "config key 'evaluation.thresholds.long': Input should be a finite number (got inf)"),
        ("agent.encoder.hidden=[64, 0]", "config key 'agent.encoder.hidden[1]': Input should be greater than or equal to 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_boolean_for_a_number_a_number_for_a_boolean_and_nan_are_refused(override, message):
    """pydantic's lax mode took ``true`` for 1 and ``0`` for false, and NaN or infinity for a number: a
    gate of NaN rejects every pre-training, a threshold of infinity is never reached."""
    with pytest.raises(ConfigError) as err:
        load_config({"family": "cartpole"}, [override])
    assert message in str(err.value)
    assert str(err.value).count("config key") == 1  # a union's branches (workers: a number or 'auto'), one line


def test_a_whole_number_may_be_written_as_a_float_and_numpy_scalars_are_numbers():
    cfg = load_config({"family": "cartpole"}, ["transfer.timesteps=1.0e+5", "runner.workers=auto"])
    assert cfg.transfer.timesteps == 100_000 and isinstance(cfg.transfer.timesteps, int)
    given = {"transfer": {"seeds": np.int64(4)}, "evaluation": {"deterministic": np.bool_(False)}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config({"family": "cartpole", **given, "pretrain": {"min_source_score": np.float32(0.5)}})
    # NumPy 2.2 deprecates reading a NumPy bool as an index ("will be an error"), which pydantic does with one.
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)], [str(w.message) for w in caught]
    assert (cfg.transfer.seeds, cfg.evaluation.deterministic, cfg.pretrain.min_source_score) == (4, False, 0.5)
    assert type(cfg.evaluation.deterministic) is bool and type(cfg.transfer.seeds) is int


def test_paths_may_be_given_as_pathlib_paths(tmp_path):
    """From Python a path is a ``pathlib.Path`` as often as text (pytest's ``tmp_path``): the same config."""
    family = Path(__file__).parent.parent / "configs" / "families" / "cartpole-declared.yaml"
    as_text = load_config({"family": "cartpole-declared", "output_dir": str(tmp_path), "families": [str(family)]})
    as_path = load_config({"family": "cartpole-declared", "output_dir": tmp_path, "families": [family]})
    assert (
        as_path == as_text and as_path.output_dir == str(tmp_path) and as_path.families[0].name == "cartpole-declared"
    )


def test_overrides_parse_yaml_values():
    cfg = load_config(
        {"family": "cartpole"},
        ["transfer.seeds=20", "transfer.strategies=[scratch,finetune]", "agent.hyperparams.gamma=0.9"],
    )
    assert cfg.transfer.seeds == 20 and cfg.transfer.strategies == ["scratch", "finetune"]
    assert cfg.agent.hyperparams == {"gamma": 0.9}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config({"family": "cartpole"}, ["transfer.seeds"])
    with pytest.raises(ConfigError, match="'transfer.seeds' is not a mapping"):
        apply_overrides({"transfer": {"seeds": 3}}, ["transfer.seeds.x=1"])


def test_numbers_in_exponent_notation_are_numbers_in_a_file_and_in_set(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-4 and 3e5 as strings: an SB3 user's learning_rate: 1e-4 was refused.
    path = tmp_path / "c.yaml"
    path.write_text(
        "family: cartpole\nagent: {hyperparams: {learning_rate: 1e-4, ent_coef: 5E-3}}\npretrain: {timesteps: 3e5}\n"
    )
    cfg = load_config(path, ["transfer.timesteps=2.5e4", "evaluation.thresholds={medium: +4.5e2}"])
    assert cfg.agent.hyperparams == {"learning_rate": 1e-4, "ent_coef": 5e-3}
    assert cfg.pretrain.timesteps == 300_000 and isinstance(cfg.pretrain.timesteps, int)
    assert cfg.transfer.timesteps == 25_000 and cfg.evaluation.thresholds == {"medium": 450.0}
    # what YAML 1.1 already read as numbers, or as strings, stays so
    for text, value in [("1.0e-4", 1e-4), ("12", 12), ("0.5", 0.5), ("1_000", 1000), ("lin_1e-3", "lin_1e-3"),
                        ("e5", "e5"), ("1e", "1e"), ("0x10", 16), ("1.5.3e2", "1.5.3e2"), (".inf", float("inf"))]:  # fmt: skip
        assert apply_overrides({}, [f"k={text}"])["k"] == value, text
    validate(load_config("configs/quickstart.yaml", ["agent.hyperparams.learning_rate=3e-4"]))


def test_hash_is_stable_and_changes_with_content():
    a, b = load_config({"family": "cartpole"}), load_config({"family": "cartpole"})
    assert a.hash() == b.hash()
    assert a.hash() != load_config({"family": "cartpole"}, ["transfer.seeds=3"]).hash()
    assert ExperimentConfig.model_validate(a.to_dict()) == a


def test_bad_yaml_file_is_reported(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("family: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match="is a directory; a config is a YAML file"):
        load_config(tmp_path)


def test_an_unreadable_config_file_is_reported(tmp_path, monkeypatch):
    p = tmp_path / "c.yaml"
    p.write_text("family: cartpole\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")  # as chmod 000 gives anyone but root

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(ConfigError, match="config file '.*c.yaml' cannot be read: Permission denied"):
        load_config(p)


def test_a_run_that_starts_fresh_observation_statistics_has_its_own_hash():
    """With ``agent.normalize``, scratch (no encoder loaded) no longer starts from the bundle's
    statistics: its hash changes, so older scratch runs are re-run; every other run keeps its hash."""
    from rltransfer.store.keys import experiment_hash, run_hash

    loaders = ["zero_shot", "finetune", "freeze_encoder", "adapter", "progressive", "kickstart"]
    plain = load_config({"family": "acrobot"})
    assert {run_hash(experiment_hash(plain), plain.to_dict(), s) for s in ["scratch", *loaders]} == {
        experiment_hash(plain)
    }
    norm = load_config({"family": "acrobot", "agent": {"normalize": True}})
    chash, config = experiment_hash(norm), norm.to_dict()
    assert all(run_hash(chash, config, s) == chash for s in loaders)
    assert run_hash(chash, config, "scratch").startswith(chash + "-")
    finetune_heads = {"strategy_params": {"finetune": {"load": ["heads"]}}}  # no encoder: fresh statistics too
    heads = load_config({"family": "acrobot", "agent": {"normalize": True}, "transfer": finetune_heads})
    plain_heads = load_config({"family": "acrobot", "transfer": finetune_heads})
    fresh = run_hash(chash, heads.to_dict(), "finetune")
    params_only = run_hash(experiment_hash(plain_heads), plain_heads.to_dict(), "finetune")
    assert fresh.startswith(chash + "-") and fresh.split("-")[1] != params_only.split("-")[1]


def test_the_pretraining_gate_is_checked_and_leaves_the_experiment_hash_alone():
    from rltransfer.store.keys import experiment_hash

    base = load_config({"family": "cartpole", "pretrain": {"seeds": 3}})
    gated = load_config(base.to_dict(), ["pretrain.min_source_score=0.9"])
    assert gated.pretrain.seeds_to_try == 6 and base.pretrain.seeds_to_try == 3
    # The gate picks among the same bundles: every bundle and every run that keeps its bundle is re-used.
    assert experiment_hash(gated) == experiment_hash(base)
    with pytest.raises(ConfigError, match="max_seeds applies only with pretrain.min_source_score"):
        load_config(base.to_dict(), ["pretrain.max_seeds=4"])
    with pytest.raises(ConfigError, match=r"max_seeds \(2\) is below pretrain.seeds \(3\)"):
        load_config(gated.to_dict(), ["pretrain.max_seeds=2"])


def test_a_run_moved_to_another_pretraining_by_the_gate_has_its_own_hash():
    from rltransfer.store.keys import run_hash

    config = load_config({"family": "cartpole", "pretrain": {"seeds": 2}}).to_dict()
    chash = "0" * 16
    # Transfer seed 3 starts from pre-training 1 (3 mod 2), so naming it changes nothing ...
    assert run_hash(chash, config, "finetune", 3, 1) == run_hash(chash, config, "finetune") == chash
    # ... and from pre-training 2 (the gate's replacement of 1) the run is another one, except scratch's.
    assert run_hash(chash, config, "finetune", 3, 2) != chash
    assert run_hash(chash, config, "scratch", 3, 2) == chash


def test_targets_leave_the_experiment_hash_and_a_named_parameter_target_enters_its_runs_hash():
    from rltransfer.store.keys import experiment_hash, run_hash

    one = load_config({"family": "cartpole", "target_tasks": ["very-long-heavy"]})
    two = load_config(one.to_dict(), ["target_tasks=[very-long-heavy, weak-push]"])
    # A pre-training does not depend on the targets, nor a run on the other targets.
    assert experiment_hash(one) == experiment_hash(two)
    assert experiment_hash(one.to_dict()) == experiment_hash(one)
    chash, config = experiment_hash(two), two.to_dict()
    assert run_hash(chash, config, "finetune", 0, None, "weak-push") == chash  # a family's task: its name says it
    named = lambda g: load_config(one.to_dict(), [f"target_tasks=[{{name: heavy, gravity: {g}}}]"]).to_dict()  # noqa: E731
    a, b = (run_hash(chash, named(g), "finetune", 0, None, "heavy") for g in (12.0, 15.0))
    assert a != b and a.startswith(chash + "-")


def test_the_published_quick_start_ran_the_shipped_config():
    """CI verifies the published quick-start's runs against its own config.yaml: that config must be the
    shipped one, resolved, or a newcomer's run would not be the published one."""
    root = Path(__file__).parent.parent
    published = yaml.safe_load((root / "docs/results/quickstart/config.yaml").read_text())
    assert published == load_config(root / "configs/quickstart.yaml").to_dict()


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("transfer.strategies=[fintune]", "unknown strategy 'fintune' (did you mean 'finetune'?)"),
        ("family=cartpol", "unknown family 'cartpol' (did you mean 'cartpole'?)"),
        ("family=CartPole-v1", "'CartPole-v1' is a Gymnasium id, one env: a family over it is declared as data"),
        ("family=rltransfer/cartpole-v0", "'rltransfer/cartpole-v0' is the Gymnasium id of family 'cartpole'"),
        ("source_tasks=[shrt]", "unknown task 'shrt' in family 'cartpole' (did you mean 'short'?)"),
        ("transfer.seedz=3", "'transfer.seedz': unknown key (did you mean 'seeds'?)"),
        ("agent.algo=ppo2", "(got 'ppo2') (did you mean 'ppo'?)"),
        ("transfer.strategy_params={finetune: {lr_scal: 0.1}}", None),
    ],
)
def test_an_unknown_name_gets_the_closest_known_one(override, suggestion):
    from rltransfer.validation import validate

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError) as err:
        validate(load_config(root / "configs" / "quickstart.yaml", [override]))
    if suggestion is None:  # nothing close: no suggestion, the allowed names only
        assert "did you mean" not in str(err.value) and "allowed" in str(err.value)
    else:
        assert suggestion in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.net_arch=[64, 64]", "'agent.net_arch': unknown key (from SB3 or RL Zoo: the layers are agent.encoder.hidden, then agent.trunk.pi and agent.trunk.vf); allowed keys here: algo"),
        ("agent.trunk.qf=[64]", "'agent.trunk.qf': unknown key (from SB3 or RL Zoo: SAC's critics and DQN's Q-network take their layers from agent.trunk.vf); allowed keys here: pi, vf"),
        ("agent.hyperparams.policy_kwargs={net_arch: [32]}", "'agent.hyperparams.policy_kwargs': not a PPO argument rltransfer passes on (from SB3 or RL Zoo: the network is agent.encoder"),
        ("agent.hyperparams.n_envs=8", "'agent.hyperparams.n_envs': not a PPO argument rltransfer passes on (from SB3 or RL Zoo: the envs are transfer.n_envs"),
        ("pretrain.hyperparams.device=cuda", "'pretrain.hyperparams.device': not a PPO argument rltransfer passes on (from SB3 or RL Zoo: rltransfer trains on the CPU); allowed: learning_rate"),
        ("agent.hyperparams.n_step=16", "'agent.hyperparams.n_step': not a PPO argument rltransfer passes on (did you mean 'n_steps'?); allowed:"),
        ("transfer.seed=3", "'transfer.seed': unknown key (did you mean 'seeds'?); allowed keys here"),
        ("env_wrapper=x", "'env_wrapper': unknown key (from SB3 or RL Zoo: an env's wrappers are its family's: a family of your own (register_family) builds its env wrapped)"),
        ("agent.frame_stack=4", "'agent.frame_stack': unknown key (from SB3 or RL Zoo: frame stacking is an env wrapper"),
        ("env_kwargs={a: 1}", "'env_kwargs': unknown key (from SB3 or RL Zoo: an env's arguments are its family's"),
        ("agent.normalize_kwargs={norm_reward: false}", "'agent.normalize_kwargs': unknown key (from SB3 or RL Zoo: VecNormalize is agent.normalize"),
        ("agent.hyperparams.callback=x", "'agent.hyperparams.callback': not a PPO argument rltransfer passes on (from SB3 or RL Zoo: callbacks are passed from Python"),
    ],
)  # fmt: skip
def test_an_sb3_setting_is_refused_with_where_it_lives_here(override, message):
    """An SB3 user writes SB3's and RL Zoo's names (``policy_kwargs``, ``qf``, ``n_envs``): the refusal says
    which config key sets it here (a close name of the config's own first)."""
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError) as err:
        validate(load_config(root / "configs" / "quickstart.yaml", [override]))
    assert message in str(err.value)


def test_every_config_key_an_sb3_hint_names_exists():
    """The hints name config keys (``agent.trunk.vf``): each must be one, or a hint sends users to nothing."""
    import re

    from pydantic import BaseModel

    from rltransfer.config_errors import SB3_SETTINGS

    named = {k for text in SB3_SETTINGS.values() for k in re.findall(r"\b[a-z_]+(?:\.[a-z_]+)+\b", text)}
    assert "agent.trunk.vf" in named and "transfer.n_envs" in named
    for key in named:
        model: type[BaseModel] = ExperimentConfig
        for part in key.split("."):
            assert part in model.model_fields, f"{key}: no '{part}' in {model.__name__}"
            annotation = model.model_fields[part].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation


def test_overrides_given_as_one_string_are_refused():
    """A string is iterable: taken as overrides, each character was one ("--set 't': expected KEY=VALUE")."""
    with pytest.raises(
        ConfigError,
        match=r"overrides: a list of KEY=VALUE strings, not one string \(got 'transfer.seeds=2': write \['transfer.seeds=2'\]\)",
    ):
        load_config({"family": "cartpole"}, "transfer.seeds=2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["transfer.probe_episodes=3"], "config key 'transfer.probe_episodes': applies only with transfer.head_init: probe (here 'nearest': no probe runs); set head_init: probe, or leave probe_episodes out"),
        (["runner.address=ray://head:10001"], "config key 'runner.address': applies only with runner.backend: ray (here 'local': the runs would train on this machine); set backend: ray, or leave address out"),
    ],
)  # fmt: skip
def test_a_setting_that_would_do_nothing_is_refused(overrides, message):
    """Taken, each did nothing: the probe's episodes without a probe, a Ray address with the local pool. Refused
    where a config is validated; a directory whose config holds one still loads (its report)."""
    with pytest.raises(ConfigError) as err:
        validate(load_config({"family": "cartpole"}, overrides))
    assert str(err.value) == message
    resolve(load_config({"family": "cartpole"}, overrides))
    validate(load_config({"family": "cartpole"}, [*overrides, "transfer.head_init=probe", "runner.backend=ray"]))


def test_a_sections_own_check_does_not_repeat_the_section():
    with pytest.raises(ConfigError) as err:
        load_config({"family": "cartpole"}, ["pretrain.max_seeds=4"])
    assert str(err.value) == (
        "invalid config:\n  config key 'pretrain': pretrain.max_seeds applies only with pretrain.min_source_score "
        "(the gate); set both or neither"
    )


@pytest.mark.parametrize("head_init", ["fresh", "mean", "probe"])
def test_a_head_init_for_one_shared_head_is_refused(head_init):
    """With ``agent.heads: shared`` the one conditioned head is transferred as it is: a head_init was taken and did
    nothing (``fresh`` did not start the head fresh, ``probe`` ran no probe)."""
    with pytest.raises(
        ConfigError,
        match=rf"'transfer.head_init': '{head_init}' chooses among per-task heads; with agent.heads: shared",
    ):
        validate(load_config({"family": "cartpole"}, ["agent.heads=shared", f"transfer.head_init={head_init}"]))
    validate(load_config({"family": "cartpole"}, ["agent.heads=shared"]))


@pytest.mark.parametrize("name", ["../elsewhere", "a/b", "", ".", "..", " padded ", "a\\b"])
def test_an_experiment_name_is_one_directory_name(name):
    """``../x`` wrote the experiment outside ``output_dir``, ``""`` and ``.`` into it beside the others."""
    with pytest.raises(
        ConfigError,
        match=r"config key 'name': expected one directory name: not empty, .* \(the experiment's directory, under output_dir\)",
    ):
        load_config({"family": "cartpole", "name": name})
    assert load_config({"family": "cartpole", "name": "cartpole-physics-probe-3"}).run_dir == Path(
        "runs/cartpole-physics-probe-3"
    )


def test_a_stem_width_where_no_stems_are_built_is_refused():
    """The mlp encoder builds input stems only where the tasks' observations differ in length: elsewhere its
    ``stem_width`` was taken and did nothing."""
    with pytest.raises(ConfigError, match=r"'agent.encoder.stem_width': the mlp encoder's input stems exist where"):
        validate(load_config({"family": "cartpole"}, ["agent.encoder.stem_width=32"]))
    validate(load_config({"family": "classic", "transfer": {"strategies": ["finetune"]}}, ["agent.encoder.stem_width=32"]))  # fmt: skip


def test_the_settings_that_change_the_experiment_hash_are_named():
    from rltransfer.store.keys import experiment_hash, hashed_differences

    base = load_config("configs/quickstart.yaml")
    sets = [
        "agent.hyperparams.ent_coef=0.01",
        "agent.hyperparams.vf_coef=0.4",
        "transfer.seeds=20",
        "target_tasks=[medium]",
    ]
    other = load_config("configs/quickstart.yaml", sets)
    assert experiment_hash(base) != experiment_hash(other)
    assert hashed_differences(base, other) == [
        "agent.hyperparams.ent_coef: 0.01 here, 0.0 there",
        "agent.hyperparams.vf_coef: 0.4 here, unset there",
    ]
    assert hashed_differences(other, base)[1] == "agent.hyperparams.vf_coef: unset here, 0.4 there"
    same = load_config("configs/quickstart.yaml", ["transfer.seeds=20", "name=other", "target_tasks=[medium]"])
    assert hashed_differences(base, same) == [] and experiment_hash(base) == experiment_hash(same)
