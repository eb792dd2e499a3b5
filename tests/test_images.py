"""The MiniGrid family with the CNN encoder: shapes, a tiny pre-training, a transfer."""

import pytest
import torch

import rltransfer
from rltransfer.agents import CnnEncoder
from rltransfer.envs import MultiTaskVecEnv, get_family


def test_cnn_encoder_output_shape_on_7x7_views_with_conditioning():
    fam = get_family("minigrid")
    env = MultiTaskVecEnv(fam, [fam.task("doorkey-5"), fam.task("lavagap-5")], "context", envs_per_task=2)
    enc = CnnEncoder(env.observation_space, channels=(16, 32, 64), hidden=[48])
    assert enc.features_dim == 48
    obs = {k: torch.as_tensor(v) for k, v in env.reset().items()}
    out = enc(obs)
    assert out.shape == (4, 48) and torch.isfinite(out).all()
    # The conditioning reaches the features: same view, other context, other output.
    obs2 = dict(obs)
    obs2["context"] = -obs["context"]
    assert not torch.allclose(enc(obs2), out)


def test_tiny_minigrid_pretraining_and_transfer(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    cfg = {
        "name": "mg", "output_dir": str(tmp_path / "runs"), "family": "minigrid",
        "source_tasks": ["empty-5", "doorkey-5"], "target_tasks": ["doorkey-6"],
        "agent": {"encoder": {"type": "cnn", "hidden": [32], "activation": "relu"},
                  "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
    }  # fmt: skip
    pre = rltransfer.pretrain(cfg)
    bundle = rltransfer.load_bundle(pre.bundle_path)
    assert bundle.architecture.encoder["type"] == "cnn"
    assert any(k.startswith("encoder.conv.0.") for k in bundle.tensors)
    run = rltransfer.transfer(cfg, bundle, "doorkey-6", "freeze_encoder", seed=0, timesteps=64, save=False)
    conv = run.model.policy.features_extractor.conv[0].weight
    assert torch.equal(conv, bundle.tensors["encoder.conv.0.weight"])
    obs = run.env.reset()
    actions, _ = run.model.predict(obs, deterministic=True)
    assert actions.shape == (1,) and 0 <= int(actions[0]) < 7


def test_progressive_with_a_cnn_is_refused_with_a_clear_message(tmp_path):
    from rltransfer.config import load_config
    from rltransfer.errors import ConfigError
    from rltransfer.validation import validate

    with pytest.raises(ConfigError, match="'progressive' builds its new column from MLP layers"):
        validate(load_config("configs/minigrid.yaml", ["transfer.strategies=[progressive]"]))
