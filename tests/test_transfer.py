import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import rltransfer
from rltransfer.agents import TransferPPO, component_of
from rltransfer.envs import get_family
from rltransfer.errors import BundleError, ConfigError
from rltransfer.loading import locate_target
from rltransfer.records.lineage import Lineage
from rltransfer.strategies import STRATEGIES, Plan, register_strategy
from rltransfer.transferring import build_target_agent, transfer
from rltransfer.validation import resolve, validate

HYPER = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}
TARGET = "very-long-heavy"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    return {
        "name": "t", "output_dir": str(out), "family": "cartpole", "source_tasks": ["short", "long", "heavy-gravity"],
        "target_tasks": [TARGET], "agent": {"hyperparams": HYPER, "encoder": {"hidden": [32]}, "trunk": {"pi": [32], "vf": [32]}},
        "pretrain": {"timesteps": 1024, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip


@pytest.fixture(scope="module")
def bundle(cfg):
    return rltransfer.load_bundle(rltransfer.pretrain(cfg).bundle_path)


def build(cfg, bundle, strategy, seed=0, **overrides):
    c = rltransfer.load_config(cfg, overrides)
    setup = resolve(c)
    return build_target_agent(c, setup, bundle, setup.family.task(TARGET), strategy, seed)


def target_obs(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    space = model.observation_space
    obs = {
        "obs": rng.normal(size=(n, *space["obs"].shape)).astype(np.float32),
        "task": np.ones((n, 1), dtype=np.float32),
    }
    if "context" in space.spaces:  # the target's own conditioning vector
        obs["context"] = np.repeat(get_family("cartpole").context(TARGET)[None], n, axis=0)
    return obs


def teacher_view(bundle, obs, head):
    o = dict(obs)
    o["task"] = np.eye(len(bundle.task_names), dtype=np.float32)[[head] * len(obs["obs"])]
    return o


def probs(policy, obs):
    with torch.no_grad():
        t, _ = policy.obs_to_tensor(obs)
        return policy.get_distribution(t).distribution.probs


def snapshot(model):
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


def test_nearest_source_is_found_by_context(bundle):
    fam = get_family("cartpole")
    spec = locate_target(bundle, fam, fam.task(TARGET))
    ctx = {n: fam.context(n) for n in ("short", "long", "heavy-gravity")}
    expect = min(ctx, key=lambda n: np.linalg.norm(ctx[n] - fam.context(TARGET)))
    assert spec.nearest == expect and spec.onehot_index is None


@pytest.mark.parametrize("strategy,frozen", [("freeze_encoder", {"encoder"}), ("heads_only", {"encoder", "trunk"})])
def test_frozen_parameters_are_bit_identical_and_the_rest_train(cfg, bundle, strategy, frozen):
    model, _, lineage = build(cfg, bundle, strategy)
    assert {r.component for r in lineage.components if r.status == "frozen"} == frozen
    before = snapshot(model)
    model.learn(256)
    after = model.policy.state_dict()
    for key, value in before.items():
        if component_of(key) in frozen:
            assert torch.equal(value, after[key]), key
        elif "weight" in key:
            assert not torch.equal(value, after[key]), key


def test_one_side_of_the_trunk_freezes_the_other_trains_also_after_save_load(cfg, bundle, tmp_path):
    """heads_only with ``freeze: [encoder, trunk.pi]``: the actor's trunk stays the bundle's, bit for
    bit; the critic's trunk trains; a saved model reloads with the same parameters frozen."""
    params = ["transfer.strategy_params={heads_only: {freeze: [encoder, trunk.pi]}}"]
    res = transfer(rltransfer.load_config(cfg, params), bundle, TARGET, "heads_only", timesteps=256, out_dir=tmp_path)
    statuses = {r.component: r.status for r in res.lineage.components}
    assert statuses == {"encoder": "frozen", "trunk": "loaded; trunk.pi frozen", "heads": "loaded"}
    state = res.model.policy.state_dict()
    pi = [k for k in state if k.startswith("mlp_extractor.policy_net.") and "weight" in k]
    vf = [k for k in state if k.startswith("mlp_extractor.value_net.") and "weight" in k]
    assert pi and vf
    for key in pi:
        assert torch.equal(state[key], bundle.tensors["trunk." + key.split(".", 1)[1]]), key
    for key in vf:
        assert not torch.equal(state[key], bundle.tensors["trunk." + key.split(".", 1)[1]]), key
    loaded = TransferPPO.load(tmp_path / "model.zip", device="cpu")
    trainable = {n for n, p in loaded.policy.named_parameters() if p.requires_grad}
    assert not trainable & set(pi) and set(vf) <= trainable


def test_freezing_a_trunk_side_is_refused_where_it_has_no_meaning(cfg, bundle):
    with pytest.raises(ConfigError, match=r"heads_only.freeze': expected a list of encoder, trunk, heads, trunk.pi"):
        validate(rltransfer.load_config(cfg, ["transfer.strategy_params={heads_only: {freeze: [trunk.q]}}"]))
    with pytest.raises(ConfigError, match="adapter.freeze': 'trunk.vf': adapters wrap whole components"):
        validate(rltransfer.load_config(cfg, ["transfer.strategy_params={adapter: {freeze: [encoder, trunk.vf]}}"]))
    with pytest.raises(ConfigError, match="'trunk.pi' is one side of PPO's actor-critic trunk; dqn has none"):
        overrides = ["agent.algo=dqn", "agent.trunk={vf: [32]}", "agent.hyperparams={}", "transfer.strategies=[scratch,finetune]",
                     "transfer.strategy_params={finetune: {freeze: [trunk.pi]}}"]  # fmt: skip
        validate(rltransfer.load_config(cfg, overrides))


def test_loaded_components_equal_the_bundle_and_heads_follow_head_init(cfg, bundle):
    model, _, lineage = build(cfg, bundle, "finetune")
    state = model.policy.state_dict()
    assert torch.equal(state["features_extractor.net.0.weight"], bundle.tensors["encoder.net.0.weight"])
    src = lineage.nearest_source
    assert torch.equal(state["heads.action.weight"], bundle.tensors[f"heads.{src}.action.weight"])
    model, _, _ = build(cfg, bundle, "finetune", **{"transfer.head_init": "mean"})
    mean = torch.stack([bundle.tensors[f"heads.{n}.value.weight"] for n in bundle.task_names]).mean(0)
    assert torch.allclose(model.policy.state_dict()["heads.value.weight"], mean)
    model, _, lineage = build(cfg, bundle, "finetune", **{"transfer.head_init": "fresh"})
    assert [r.status for r in lineage.components] == ["loaded", "loaded", "fresh"]
    for n in bundle.task_names:
        assert not torch.equal(
            model.policy.state_dict()["heads.action.weight"][0], bundle.tensors[f"heads.{n}.action.weight"]
        )


def test_scratch_has_finetunes_architecture_and_hyperparameters_but_none_of_its_weights(cfg, bundle):
    scratch, _, _ = build(cfg, bundle, "scratch")
    fine, _, _ = build(cfg, bundle, "finetune")
    s, f = scratch.policy.state_dict(), fine.policy.state_dict()
    assert {k: v.shape for k, v in s.items()} == {k: v.shape for k, v in f.items()}
    for attr in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"):
        assert getattr(scratch, attr) == getattr(fine, attr), attr
    assert scratch.learning_rate == fine.learning_rate
    bundle_tensors = [t.flatten() for t in bundle.tensors.values()]
    for key, value in s.items():
        if value.numel() > 1 and "log_std" not in key:
            assert not any(value.numel() == t.numel() and torch.equal(value.flatten(), t) for t in bundle_tensors), key


def test_lr_scaled_groups_follow_the_schedule_times_their_multiplier_also_after_save_load(cfg, bundle, tmp_path):
    c = {**cfg, "agent": {**cfg["agent"], "hyperparams": {**HYPER, "learning_rate": 0.01}}}
    model, _, _ = build(c, bundle, "lr_scaled")
    model.learning_rate = lambda progress: 0.01 * progress  # a decaying schedule
    model._setup_lr_schedule()
    model.learn(256)
    mults = sorted(g["lr_mult"] for g in model.policy.optimizer.param_groups)
    assert mults == [0.1]  # every component was transferred (nearest head included)
    expected = model.lr_schedule(model._current_progress_remaining)
    for g in model.policy.optimizer.param_groups:
        assert g["lr"] == pytest.approx(expected * g["lr_mult"])
    model.save(tmp_path / "m.zip")
    loaded = TransferPPO.load(tmp_path / "m.zip", env=model.get_env(), device="cpu")
    assert [g["lr_mult"] for g in loaded.policy.optimizer.param_groups] == [0.1]
    loaded.learn(128, reset_num_timesteps=False)
    expected = loaded.lr_schedule(loaded._current_progress_remaining)
    for g in loaded.policy.optimizer.param_groups:
        assert g["lr"] == pytest.approx(expected * g["lr_mult"])


def test_lr_scaled_new_heads_train_at_the_full_rate(cfg, bundle):
    model, _, lineage = build(cfg, bundle, "lr_scaled", **{"transfer.head_init": "fresh"})
    assert {r.component: r.lr_mult for r in lineage.components} == {"encoder": 0.1, "trunk": 0.1, "heads": 1.0}
    groups = {g["lr_mult"]: g for g in model.policy.optimizer.param_groups}
    assert set(groups) == {0.1, 1.0}
    head_params = {id(p) for p in model.policy.heads.parameters()}
    assert {id(p) for p in groups[1.0]["params"]} == head_params


@pytest.mark.parametrize("strategy", ["adapter", "progressive"])
def test_adapter_and_progressive_start_as_the_pretrained_policy_and_only_new_parts_train(cfg, bundle, strategy):
    model, _, lineage = build(cfg, bundle, strategy)
    obs = target_obs(model)
    head = bundle.task_names.index(lineage.nearest_source)
    torch.testing.assert_close(
        probs(model.policy, obs), probs(bundle.policy, teacher_view(bundle, obs, head)), rtol=0, atol=1e-6
    )
    before = snapshot(model)
    model.learn(256)
    after = model.policy.state_dict()
    new = ".lora_" if strategy == "adapter" else "column."
    changed_new = False
    for key, value in before.items():
        comp = component_of(key)
        if new in key:
            changed_new |= not torch.equal(value, after[key])
        elif comp in ("encoder", "trunk"):
            assert torch.equal(value, after[key]), key
    assert changed_new


def test_kickstart_loss_is_logged_positive_and_its_weight_reaches_zero(cfg, bundle, tmp_path):
    c = {**cfg, "transfer": {"strategy_params": {"kickstart": {"beta": 2.0, "anneal": 0.5}}}}
    res = transfer(c, bundle, TARGET, "kickstart", seed=0, timesteps=640, out_dir=tmp_path / "ks")
    log = res.model.kickstart_log  # (step, beta, kl) at every update
    assert log[0][1] == pytest.approx(2.0 * (1 - (64 / 640) / 0.5))
    assert all(kl > 0 for _, _, kl in log[:3])  # a fresh student differs from its teacher
    for step, beta, _ in log:
        progress = (step - 0) / 640
        assert beta == pytest.approx(max(0.0, 2.0 * (1 - progress / 0.5)), abs=1e-9)
    assert log[-1][1] == 0.0 and any(b == 0.0 for _, b, _ in log[4:6])
    acc = EventAccumulator(str(tmp_path / "ks" / "tb"))
    acc.Reload()
    assert {"train/kickstart_kl", "train/kickstart_beta"} <= set(acc.Tags()["scalars"])


@pytest.mark.parametrize("head_init", ["mean", "nearest"])
def test_kickstart_teacher_is_the_policy_zero_shot_runs(cfg, bundle, head_init):
    """The teacher's head for the target is the one head_init gives: it acts as zero_shot does."""
    over = {"transfer.head_init": head_init}
    student, _, lineage = build(cfg, bundle, "kickstart", **over)
    zero, _, _ = build(cfg, bundle, "zero_shot", **over)
    obs = target_obs(zero)
    teacher = student.teacher
    torch.testing.assert_close(
        probs(teacher, teacher_view(bundle, obs, student.teacher_head)), probs(zero.policy, obs), rtol=0, atol=1e-6
    )
    src = lineage.nearest_source
    expect = "mean of 3 source heads" if head_init == "mean" else f"source task '{src}' (nearest by context)"
    assert lineage.teacher == expect
    if head_init == "mean":  # a copy: the bundle's own policy keeps its heads
        assert teacher is not bundle.policy
        i = bundle.task_names.index(src)
        torch.testing.assert_close(
            probs(bundle.policy, teacher_view(bundle, obs, i)),
            probs(build(cfg, bundle, "zero_shot", **{"transfer.head_init": "nearest"})[0].policy, obs),
            rtol=0, atol=1e-6,
        )  # fmt: skip


def test_zero_shot_changes_nothing_and_acts_as_the_bundle(cfg, bundle, tmp_path):
    res = transfer(cfg, bundle, TARGET, "zero_shot", seed=0, timesteps=256, out_dir=tmp_path / "zs")
    head = bundle.task_names.index(res.lineage.nearest_source)
    obs = target_obs(res.model)
    a, _ = res.model.predict(obs, deterministic=True)
    b, _ = bundle.policy.predict(teacher_view(bundle, obs, head), deterministic=True)
    np.testing.assert_array_equal(a, b)
    assert res.model.num_timesteps == 0


def test_saved_transfer_model_loads_in_plain_sb3_and_acts_identically(cfg, bundle, tmp_path):
    res = transfer(cfg, bundle, TARGET, "adapter", seed=1, timesteps=128, out_dir=tmp_path / "run")
    loaded = PPO.load(tmp_path / "run" / "model.zip", device="cpu")
    obs = target_obs(res.model)
    np.testing.assert_array_equal(
        res.model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert loaded.lineage["bundle_sha256"] == bundle.checksum and loaded.lineage["strategy"] == "adapter"
    lineage = json.loads((tmp_path / "run" / "lineage.json").read_text())
    assert lineage["bundle"] == str(bundle.path) and lineage == res.lineage.to_json() == loaded.lineage
    assert Lineage.read(tmp_path / "run") == res.lineage  # the typed record, read back
    assert {r["component"]: r["status"] for r in lineage["components"]} == {
        "encoder": "adapted",
        "trunk": "adapted",
        "heads": "loaded",
    }
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    assert "transfer/lineage/text_summary" in acc.PluginTagToContent("text")
    text = acc.Tensors("transfer/lineage/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| encoder | adapted |" in text and bundle.checksum[:12] in text


def test_a_run_done_again_in_its_directory_replaces_its_tensorboard_log(cfg, bundle, tmp_path):
    for _ in range(2):
        transfer(cfg, bundle, TARGET, "finetune", seed=0, timesteps=128, out_dir=tmp_path / "run")
    assert len(list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))) == 1


def test_same_seed_reproduces_a_run_exactly(cfg, bundle):
    a, _, _ = build(cfg, bundle, "finetune", seed=3)
    a.learn(256)  # SB3 seeds the global RNGs at construction: build and train one run at a time
    b, _, _ = build(cfg, bundle, "finetune", seed=3)
    b.learn(256)
    for (ka, va), (kb, vb) in zip(a.policy.state_dict().items(), b.policy.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_user_registered_strategy(cfg, bundle):
    @register_strategy("trunk_only_test", {"note": 1.0}, overwrite=True)
    def trunk_only(params):
        return Plan(load=["encoder", "trunk"], frozen=["encoder"])

    try:
        model, _, lineage = build(cfg, bundle, "trunk_only_test")
        assert [r.status for r in lineage.components] == ["frozen", "loaded", "fresh"]
    finally:
        STRATEGIES.pop("trunk_only_test")


@pytest.mark.parametrize(
    ("plan", "said"),
    [
        (dict(load=["encoderr"]), "its Plan's load: 'encoderr' is not a component (did you mean 'encoder'?); allowed: encoder, trunk, heads"),
        (dict(load=["encoder"], frozen=["trunk.v"]), "its Plan's frozen: 'trunk.v' is not a component (did you mean 'trunk.vf'?); allowed: encoder, trunk, heads, trunk.pi, trunk.vf"),
        (dict(load=["trunk"], lr_mults={"trunks": 0.5}), "its Plan's lr_mults: 'trunks' is not a component (did you mean 'trunk'?)"),
    ],
)  # fmt: skip
def test_a_users_plan_that_names_no_component_is_refused_before_a_run(cfg, plan, said):
    """A misspelt component in a plan's ``load`` loaded nothing, silently: the strategy ran as scratch."""

    @register_strategy("misspelt_test", overwrite=True)
    def misspelt(params):
        return Plan(**plan)

    try:
        with pytest.raises(ConfigError) as err:
            validate(rltransfer.load_config(cfg, ["transfer.strategies=[scratch,misspelt_test]"]))
        assert str(err.value).startswith(f"strategy 'misspelt_test': {said}")
    finally:
        STRATEGIES.pop("misspelt_test")


def test_bad_strategy_input_is_named(cfg, bundle):
    with pytest.raises(ConfigError, match=r"transfer.strategies\[1\]': unknown strategy 'finetuned'"):
        validate(rltransfer.load_config(cfg, ["transfer.strategies=[scratch,finetuned]"]))
    with pytest.raises(
        ConfigError,
        match=r"strategy_params.adapter.rnk': unknown parameter \(did you mean 'rank'\?\); allowed: load, freeze, rank",
    ):
        validate(rltransfer.load_config(cfg, ["transfer.strategy_params={adapter: {rnk: 2}}"]))
    for value in ("fast", ".nan", ".inf", "true"):  # NaN and infinity passed as numbers
        with pytest.raises(ConfigError, match="lr_scaled.lr_scale': expected a finite non-negative number"):
            validate(rltransfer.load_config(cfg, [f"transfer.strategy_params={{lr_scaled: {{lr_scale: {value}}}}}"]))


def test_bundle_from_another_family_is_refused(cfg, bundle):
    c = {**cfg, "family": "acrobot", "source_tasks": None, "target_tasks": None}
    with pytest.raises(BundleError, match="pre-trained on family 'cartpole', the config uses 'acrobot'"):
        transfer(c, bundle, "heavy-long", "finetune", timesteps=64, save=False)


def test_observation_statistics_travel_with_the_encoder(tmp_path):
    c = {
        "name": "norm", "output_dir": str(tmp_path), "family": "cartpole", "source_tasks": ["short", "long"],
        "agent": {"normalize": True, "hyperparams": HYPER}, "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    bundle = rltransfer.load_bundle(rltransfer.pretrain(c).bundle_path)
    stats = bundle.manifest.obs_normalization
    assert stats.count > 500 and len(stats.mean) == 4
    frozen = transfer(c, bundle, TARGET, "freeze_encoder", timesteps=256, out_dir=tmp_path / "frozen")
    rms = frozen.env.obs_rms["obs"]
    np.testing.assert_array_equal(rms.mean, stats.mean)  # a frozen encoder keeps its normalisation
    assert frozen.env.ret_rms.count > 1  # reward statistics are re-estimated on the target
    fine = transfer(c, bundle, TARGET, "finetune", timesteps=256, out_dir=tmp_path / "fine")
    assert fine.env.obs_rms["obs"].count > stats.count  # fine-tuning adapts them
    saved = json.loads((tmp_path / "fine" / "obs_normalization.json").read_text())
    np.testing.assert_allclose(saved["mean"], fine.env.obs_rms["obs"].mean)
    kick = transfer(c, bundle, TARGET, "kickstart", timesteps=64, save=False)  # its teacher needs them
    assert kick.env.obs_rms["obs"].count > stats.count


def test_scratch_starts_fresh_observation_statistics(tmp_path):
    """A from-scratch baseline owes nothing to the pre-training: with ``normalize: true`` it starts
    SB3's fresh statistics, so two bundles of different pre-training seeds give the same scratch run."""
    c = {
        "name": "norm", "output_dir": str(tmp_path), "family": "cartpole", "source_tasks": ["short", "long"],
        "agent": {"normalize": True, "hyperparams": HYPER}, "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    bundles = [
        rltransfer.load_bundle(rltransfer.pretrain(c, seed=s, out_dir=tmp_path / f"p{s}").bundle_path) for s in (0, 1)
    ]
    first, second = (b.manifest.obs_normalization for b in bundles)
    assert first is not None and second is not None and first.mean != second.mean  # the pre-trainings differ
    runs = [transfer(c, b, TARGET, "scratch", seed=3, timesteps=128, save=False) for b in bundles]
    env = runs[0].env
    steps = runs[0].model.num_timesteps
    assert env.obs_rms["obs"].count == pytest.approx(1e-4 + steps + env.num_envs)  # SB3's start, then the target's
    np.testing.assert_array_equal(env.obs_rms["obs"].mean, runs[1].env.obs_rms["obs"].mean)
    for (name, p), (_, q) in zip(runs[0].model.policy.state_dict().items(), runs[1].model.policy.state_dict().items()):
        assert torch.equal(p, q), name
    assert env.clip_obs == first.clip_obs and env.epsilon == first.epsilon  # the settings are the bundle's


def test_bundle_with_other_spaces_than_the_target_is_refused(tmp_path):
    import gymnasium as gym

    from rltransfer.envs import Family, Parameter, register_family

    def family(env_id):
        return Family(
            name="spaces-test", parameters=[Parameter("x", 0.0, 0.0, 1.0)], build=lambda p: gym.make(env_id),
            tasks={"a": {}, "b": {"x": 0.5}, "c": {"x": 1.0}}, source=["a", "b"], targets=["c"],
        )  # fmt: skip

    c = {
        "name": "sp", "output_dir": str(tmp_path), "family": "spaces-test", "agent": {"hyperparams": HYPER},
        "pretrain": {"timesteps": 64, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    register_family(family("CartPole-v1"), overwrite=True)
    bundle = rltransfer.load_bundle(rltransfer.pretrain(c).bundle_path)
    register_family(family("Acrobot-v1"), overwrite=True)  # same names, other spaces
    with pytest.raises(BundleError, match="observation 'obs' of target 'c' is Box.*the bundle was trained on Box"):
        transfer(c, bundle, "c", "finetune", timesteps=64, save=False)


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("{scratch: {load: [encoder]}}", "'transfer.strategy_params.scratch.load': scratch is the baseline and loads nothing (got ['encoder'])"),
        ("{zero_shot: {freeze: [encoder]}}", "'transfer.strategy_params.zero_shot.freeze': zero_shot never trains, so nothing is frozen (got ['encoder'])"),
    ],
)  # fmt: skip
def test_a_parameter_a_builtin_strategy_ignores_is_refused(cfg, override, said):
    """Each was taken and did nothing: scratch loaded nothing anyway, zero_shot trains nothing to freeze."""
    with pytest.raises(ConfigError) as err:
        validate(
            rltransfer.load_config(
                cfg, ["transfer.strategies=[scratch,zero_shot]", f"transfer.strategy_params={override}"]
            )
        )
    assert said in str(err.value)


@pytest.mark.parametrize("strategy", ["zero_shot", "finetune", "freeze_encoder", "heads_only", "lr_scaled", "adapter"])
def test_a_transfer_strategy_that_loads_nothing_is_refused(cfg, strategy):
    """Loading nothing, its runs were scratch's under another name, and its row in the report looked like a
    transfer. Kickstart's student may start fresh: its teacher is the transfer."""
    sets = [f"transfer.strategies=[{strategy}, kickstart]", f"transfer.strategy_params={{{strategy}: {{load: []}}}}"]
    with pytest.raises(ConfigError, match=rf"'transfer.strategy_params.{strategy}.load': {strategy} transfers the "
                       "components it loads and loads none: its runs would be scratch's"):  # fmt: skip
        validate(rltransfer.load_config(cfg, sets))
    validate(
        rltransfer.load_config(
            cfg, ["transfer.strategies=[kickstart]", "transfer.strategy_params={kickstart: {load: []}}"]
        )
    )


@pytest.mark.parametrize("freeze", ["[encoder, trunk, heads]", "[heads, trunk.pi, encoder, trunk.vf]"])
def test_a_plan_that_trains_nothing_is_refused_before_any_run(cfg, freeze):
    """Every run of it failed with torch's "optimizer got an empty parameter list" once its agent was built."""
    sets = ["transfer.strategies=[finetune]", f"transfer.strategy_params={{finetune: {{freeze: {freeze}}}}}"]
    with pytest.raises(ConfigError, match="strategy 'finetune': freezes every component .* nothing would train"):
        validate(rltransfer.load_config(cfg, sets))
    # adapters train inside frozen components: not refused
    validate(rltransfer.load_config(cfg, ["transfer.strategies=[adapter]",
                                          "transfer.strategy_params={adapter: {freeze: [encoder, trunk, heads]}}"]))  # fmt: skip


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agent.encoder.hidden=[16]", "agent.encoder"),
        ("agent.trunk.vf=[16]", "agent.trunk"),
        ("agent.heads=shared", "agent.heads"),
        ("conditioning=onehot", "conditioning"),
        ("agent.normalize=true", "agent.normalize"),
    ],
)
def test_a_config_whose_agent_is_not_the_bundles_is_refused_not_ignored(cfg, bundle, override, key):
    """A target agent is built as the bundle was: the config's encoder, trunk, heads, conditioning and
    normalisation, where they differed, were ignored without a word (`rltransfer transfer --set ...`)."""
    with pytest.raises(BundleError, match=rf"pre-trained with {key} .*, the config has .*; set {key} as the bundle"):
        transfer(cfg, bundle, TARGET, "finetune", timesteps=64, save=False, overrides=[override])


def test_a_config_of_other_hyperparameters_than_the_bundles_transfers(cfg, bundle):
    run = transfer(
        cfg, bundle, TARGET, "finetune", timesteps=64, save=False, overrides=["agent.hyperparams.learning_rate=0.0001"]
    )
    assert run.model.learning_rate == 0.0001  # the target's training is the config's own


@pytest.mark.parametrize("imports", [[], ["json"]])
def test_a_standalone_transfer_says_how_to_evaluate_its_agent_and_that_command_does(
    cfg, bundle, imports, tmp_path, capsys
):
    """`rltransfer transfer` trains and saves, and does not evaluate: it prints the command that does (with the
    config's imports, which a family of one's own needs)."""
    import shlex

    from rltransfer.cli import main

    (tmp_path / "config.yaml").write_text(json.dumps({**cfg, "imports": imports}))
    out = tmp_path / "my agent"
    argv = ["transfer", str(tmp_path / "config.yaml"), "--bundle", str(bundle.path), "--target", TARGET]
    assert main([*argv, "--strategy", "finetune", "--timesteps", "64", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"model: {out / 'model.zip'}  (loads with stable_baselines3.PPO.load)" in printed
    (command,) = [line.removeprefix("evaluate it: ") for line in printed.splitlines() if line.startswith("evaluate")]
    words = shlex.split(command)
    assert words == ["rltransfer", *[w for m in imports for w in ("--import", m)], "evaluate", str(out / "model.zip")]
    assert main([*words[1:], "--episodes", "2"]) == 0
    assert f"{TARGET}: mean return " in capsys.readouterr().out


def test_a_standalone_transfer_never_replaces_an_experiments_finished_run(cfg, bundle, tmp_path, capsys):
    """`rltransfer transfer` writes by default where the experiment's run of the same target, strategy and seed
    lives: it replaced that run's model and lineage and left its result, which then described another agent."""
    from rltransfer.cli import main
    from rltransfer.errors import UserInputError

    out = tmp_path / "seed-0"
    out.mkdir()
    (out / "result.json").write_text("{}")
    with pytest.raises(UserInputError, match="holds a finished run of an experiment"):
        transfer(cfg, bundle, TARGET, "finetune", timesteps=64, out_dir=out)
    assert [p.name for p in out.iterdir()] == ["result.json"]
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    argv = ["transfer", str(tmp_path / "config.yaml"), "--bundle", str(bundle.path), "--target", TARGET]
    assert main([*argv, "--strategy", "finetune", "--timesteps", "64", "--out", str(out), "--no-progress"]) == 2
    assert "another directory (--out)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["result.json"]
    # nor writes among an experiment directory's own files, or into its TensorBoard tree
    (out / "result.json").unlink()
    (out / "manifest.json").write_text("{}")
    (out / "config.yaml").write_text(json.dumps(cfg))
    with pytest.raises(UserInputError, match="is an experiment directory .* write to a directory of its own"):
        transfer(cfg, bundle, TARGET, "finetune", timesteps=64, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "manifest.json"]
