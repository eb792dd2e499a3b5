import json

import numpy as np
import pytest
import torch

import rltransfer
from rltransfer.bundle import FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE, load_bundle, manifest_checksum
from rltransfer.errors import BundleError


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    cfg = {
        "name": "b", "output_dir": str(out), "family": "cartpole", "source_tasks": ["short", "long"],
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    return rltransfer.pretrain(cfg)


@pytest.fixture
def bundle_copy(pretrained, tmp_path):
    dst = tmp_path / "bundle"
    dst.mkdir()
    for f in pretrained.bundle_path.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_manifest_has_everything_needed(pretrained):
    m = json.loads((pretrained.bundle_path / MANIFEST_FILE).read_text())
    assert m["format_version"] == FORMAT_VERSION
    assert m["family"] == "cartpole" and m["conditioning"] == "context"
    assert [t["name"] for t in m["source_tasks"]] == ["short", "long"]
    assert m["source_tasks"][0]["params"]["length"] == 0.3
    assert m["architecture"]["encoder"]["hidden"] == [64]
    assert m["spaces"]["observation"]["type"] == "Dict"
    assert m["timesteps"] >= 128 and "torch" in m["versions"] and len(m["weights"]["sha256"]) == 64
    assert m["obs_normalization"] is None


def test_load_rebuilds_the_policy_with_identical_weights(pretrained):
    from stable_baselines3 import PPO

    bundle = load_bundle(pretrained.bundle_path)
    model = PPO.load(pretrained.bundle_path / "model.zip", device="cpu")
    for k, v in model.policy.state_dict().items():
        assert torch.equal(v, bundle.policy.state_dict()[k]), k
    assert set(bundle.components) == {"encoder", "trunk", "heads"}
    assert set(bundle.component_names()) == {"encoder", "trunk", "heads.short", "heads.long"}
    obs = {
        "obs": np.zeros((2, 4), np.float32),
        "context": np.zeros((2, 5), np.float32),
        "task": np.eye(2, dtype=np.float32),
    }
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], bundle.policy.predict(obs, deterministic=True)[0]
    )


def test_flipped_byte_fails_the_checksum(bundle_copy):
    w = bundle_copy / WEIGHTS_FILE
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(bundle_copy)


def test_truncated_weights_fail(bundle_copy):
    w = bundle_copy / WEIGHTS_FILE
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(bundle_copy)


def test_missing_files_and_bad_json_are_named(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="no such directory"):
        load_bundle(tmp_path / "nothing")
    (bundle_copy / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match=f"missing {WEIGHTS_FILE}"):
        load_bundle(bundle_copy)
    (bundle_copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)


def _rewrite(bundle_dir, edit, reseal=True):
    m = json.loads((bundle_dir / MANIFEST_FILE).read_text())
    edit(m)
    if reseal:  # a consistent manifest: only what it says is wrong
        m["manifest_sha256"] = manifest_checksum(m)
    (bundle_dir / MANIFEST_FILE).write_text(json.dumps(m))


def test_edited_manifest_is_detected(bundle_copy):
    _rewrite(bundle_copy, lambda m: m.update(family="acrobot"), reseal=False)
    with pytest.raises(BundleError, match="edited after it was written"):
        load_bundle(bundle_copy)


def test_unknown_format_version(bundle_copy):
    _rewrite(bundle_copy, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="format version 99 unsupported"):
        load_bundle(bundle_copy)


def test_shapes_that_do_not_fit_the_architecture_are_named(bundle_copy):
    _rewrite(bundle_copy, lambda m: m["architecture"]["trunk"].update(pi=[32]))
    with pytest.raises(BundleError, match=r"component 'trunk' tensor 'trunk.policy_net.0.weight' has shape \(64, 64\)"):
        load_bundle(bundle_copy)


def test_components_drop_into_a_users_own_sb3_model(pretrained):
    from stable_baselines3 import PPO

    from rltransfer.agents import MultiTaskActorCriticPolicy

    bundle = load_bundle(pretrained.bundle_path)
    env = rltransfer.make_target_env(bundle, "default", n_envs=2)
    # 1. Only the encoder, in plain SB3's MultiInputPolicy.
    plain = PPO("MultiInputPolicy", env, policy_kwargs=bundle.encoder_kwargs(), n_steps=32, batch_size=32, device="cpu")
    plain.policy.features_extractor.load_state_dict(bundle.components["encoder"].state_dict())
    obs, _ = plain.policy.obs_to_tensor(env.reset())
    with torch.no_grad():
        torch.testing.assert_close(
            plain.policy.extract_features(obs, plain.policy.features_extractor),
            bundle.policy.extract_features(obs, bundle.policy.features_extractor),
        )
    plain.learn(64)
    # 2. The whole architecture, with a frozen encoder, in the user's own PPO.
    model = PPO(
        MultiTaskActorCriticPolicy,
        env,
        policy_kwargs=bundle.policy_kwargs(["default"], frozen=["encoder"]),
        n_steps=32,
        batch_size=32,
        device="cpu",
    )
    model.policy.features_extractor.load_state_dict(bundle.components["encoder"].state_dict())
    before = model.policy.features_extractor.net[0].weight.clone()
    model.learn(64)
    assert torch.equal(before, model.policy.features_extractor.net[0].weight)


def test_a_users_sb3_callbacks_see_the_pretraining_and_change_none_of_its_weights(pretrained, tmp_path):
    from safetensors.numpy import load_file
    from stable_baselines3.common.callbacks import CheckpointCallback

    checkpoints = CheckpointCallback(save_freq=32, save_path=str(tmp_path / "checkpoints"))  # 2 envs: steps 64, 128
    cfg = json.loads((pretrained.bundle_path / MANIFEST_FILE).read_text())
    assert cfg["timesteps"] == 128
    again = rltransfer.pretrain(
        {
            "name": "b", "output_dir": str(tmp_path), "family": "cartpole", "source_tasks": ["short", "long"],
            "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
            "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
        },  # the fixture's config
        callbacks=[checkpoints],
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "rl_model_128_steps.zip", "rl_model_64_steps.zip",
    ]  # fmt: skip
    ours, theirs = load_file(again.bundle_path / WEIGHTS_FILE), load_file(pretrained.bundle_path / WEIGHTS_FILE)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_a_pretraining_whose_final_evaluation_never_ends_keeps_its_trained_model(tmp_path, monkeypatch):
    """An agent whose episodes never end (an env with no time limit, where random episodes end) is found at the
    pre-training's final evaluation, after the training: the error keeps the trained model, SB3's to load."""
    from stable_baselines3 import PPO

    from rltransfer import pretraining
    from rltransfer.errors import EndlessEpisode
    from rltransfer.evaluation import endless

    def never_ends(*args, **kwargs):
        raise endless(100_000)

    monkeypatch.setattr(pretraining, "evaluate_sources", never_ends)
    cfg = {
        "name": "b", "output_dir": str(tmp_path), "family": "cartpole", "source_tasks": ["short", "long"],
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    with pytest.raises(EndlessEpisode, match="the pre-training's trained model is kept in '.*unevaluated-model.zip'"):
        rltransfer.pretrain(cfg)
    kept = PPO.load(tmp_path / "b" / "pretrain" / pretraining.UNEVALUATED_FILE)
    assert kept.num_timesteps == 128
    assert not (tmp_path / "b" / "pretrain" / "bundle").exists()  # no bundle: it holds the evaluation


def test_callbacks_are_taken_as_sb3s_learn_takes_them(pretrained, tmp_path):
    """One callback, or a function, as SB3's ``learn(callback=...)`` takes them (a single one was iterated:
    TypeError after the agent was built); anything else refused before anything is built or written."""
    from stable_baselines3.common.callbacks import CheckpointCallback

    from rltransfer.errors import ConfigError

    cfg = {
        "name": "b", "output_dir": str(tmp_path), "family": "cartpole", "source_tasks": ["short", "long"],
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
    }  # fmt: skip
    one = CheckpointCallback(save_freq=16, save_path=str(tmp_path / "checkpoints"))
    rltransfer.transfer(cfg, pretrained.bundle_path, "medium", "scratch", timesteps=32, callbacks=one, save=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "rl_model_16_steps.zip",
        "rl_model_32_steps.zip",
    ]
    calls = []
    rltransfer.transfer(
        cfg, pretrained.bundle_path, "medium", "scratch", timesteps=32, save=False,
        callbacks=lambda _locals, _globals: calls.append(1) is None,
    )  # fmt: skip
    assert len(calls) == 32  # SB3's ConvertCallback: once a step
    for bad, said in [("x", "got 'x'"), ([one, 3], "got a list holding 3")]:
        with pytest.raises(ConfigError, match=r"callbacks: expected an SB3 callback .*" + said):
            rltransfer.transfer(cfg, pretrained.bundle_path, "medium", "scratch", callbacks=bad, out_dir=tmp_path / "t")
        with pytest.raises(ConfigError, match=r"callbacks: expected an SB3 callback .*" + said):
            rltransfer.pretrain(cfg, callbacks=bad, out_dir=tmp_path / "p")
    assert not (tmp_path / "t").exists() and not (tmp_path / "p").exists()


def test_a_bundle_that_is_not_a_path_is_named():
    with pytest.raises(BundleError, match=r"bundle: expected a bundle directory \(a str or a Path\), got None"):
        rltransfer.transfer({"family": "cartpole"}, None, "medium", "scratch")


@pytest.mark.parametrize("n_envs", [0, 2.0, True])
def test_a_target_env_of_no_envs_is_refused_by_its_argument_name(pretrained, n_envs):
    from rltransfer.errors import ConfigError

    with pytest.raises(ConfigError, match=f"n_envs must be a whole number of at least 1, got {n_envs!r}"):
        rltransfer.make_target_env(pretrained.bundle_path, "medium", n_envs=n_envs)


def test_a_transfer_that_saves_nothing_writes_nothing(pretrained, tmp_path, monkeypatch):
    """``save=False`` left SB3's default logger, which makes a folder in the temp dir at every ``learn``."""
    import tempfile

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cfg = {
        "family": "cartpole",
        "output_dir": str(tmp_path / "runs"),
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32}},
    }
    run = rltransfer.transfer(cfg, pretrained.bundle_path, "medium", "finetune", timesteps=32, save=False)
    assert run.out_dir is None and run.model.num_timesteps == 32
    assert list(tmp_path.iterdir()) == []
