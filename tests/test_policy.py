import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rltransfer.agents import (
    MlpEncoder,
    MultiTaskActorCriticPolicy,
    bundle_component,
    component_of,
    component_state,
    policy_state,
)
from rltransfer.envs import MultiTaskVecEnv, get_family


def _model(family="cartpole", names=("short", "long"), heads="per_task", conditioning="context", **kw):
    fam = get_family(family)
    tasks = [fam.task(n) for n in names]
    env = MultiTaskVecEnv(fam, tasks, conditioning, envs_per_task=1)
    return PPO(
        MultiTaskActorCriticPolicy,
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            task_names=list(names),
            heads=heads,
            features_extractor_class=MlpEncoder,
            features_extractor_kwargs=dict(hidden=[16]),
            net_arch=dict(pi=[16], vf=[16]),
            **kw,
        ),
    )


def _obs(model, task_id, n=8):
    space = model.observation_space
    torch.manual_seed(0)
    return {
        "obs": torch.randn(n, *space["obs"].shape),
        "context": torch.zeros(n, *space["context"].shape),
        "task": torch.nn.functional.one_hot(torch.full((n,), task_id), 2).float(),
    }


def test_changing_only_the_task_id_changes_which_head_acts():
    model = _model()
    pol = model.policy
    heads = pol.heads
    with torch.no_grad():
        heads.action.layer_weight(1).normal_()
        heads.value.layer_bias(1).fill_(5.0)
        d0 = pol.get_distribution(_obs(model, 0)).distribution.logits
        d1 = pol.get_distribution(_obs(model, 1)).distribution.logits
        feats = pol.extract_features(_obs(model, 1))
        latent_pi, latent_vf = pol.mlp_extractor(feats)
        # Task 1 ("long") acts through exactly its own slice of the heads.
        expected = torch.log_softmax(latent_pi @ heads.action.layer_weight(1).T + heads.action.layer_bias(1), dim=-1)
        assert not torch.allclose(d0, d1)
        assert torch.allclose(d1, expected, atol=1e-6)
        v1 = pol.predict_values(_obs(model, 1))
        assert torch.allclose(v1, latent_vf @ heads.value.layer_weight(1).T + 5.0, atol=1e-6)
        # A batch mixing tasks routes every sample to its own head.
        mixed = _obs(model, 0)
        mixed["task"] = torch.eye(2)[[0, 1] * 4]
        dm = pol.get_distribution(mixed).distribution.logits
        assert torch.allclose(dm[0::2], d0[0::2]) and torch.allclose(dm[1::2], d1[1::2])


def test_shared_head_ignores_the_task_id():
    model = _model(heads="shared")
    assert model.policy.heads.task_names == ["shared"] and model.policy.heads.action.n == 1
    with torch.no_grad():
        a = model.policy.get_distribution(_obs(model, 0)).distribution.logits
        b = model.policy.get_distribution(_obs(model, 1)).distribution.logits
    assert torch.equal(a, b)


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    model = _model()
    model.learn(64)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, MultiTaskActorCriticPolicy)
    assert loaded.policy.task_names == ["short", "long"]
    obs = {k: v.numpy() for k, v in _obs(model, 1).items()}
    obs["task"] = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0, 1, 0, 1]]
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    for (k1, v1), (k2, v2) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


def test_continuous_actions_have_per_task_log_std():
    model = _model("pendulum", ("default", "heavy"))
    assert model.policy.heads.log_std.shape == (2, 1)
    with torch.no_grad():
        model.policy.heads.log_std[1].fill_(-1.0)
        d = model.policy.get_distribution(_obs(model, 1)).distribution
    assert torch.allclose(d.stddev, torch.full_like(d.stddev, np.exp(-1.0)))
    model.learn(64)


def test_frozen_components_are_bit_identical_after_training():
    model = _model(frozen=["encoder", "heads"])
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(128)
    after = model.policy.state_dict()
    for key, value in before.items():
        comp = component_of(key)
        if comp in ("encoder", "heads"):
            assert torch.equal(value, after[key]), key
    assert not torch.equal(before["mlp_extractor.policy_net.0.weight"], after["mlp_extractor.policy_net.0.weight"])
    # Frozen tensors are not even in the optimizer.
    opt_params = {id(p) for g in model.policy.optimizer.param_groups for p in g["params"]}
    assert id(model.policy.features_extractor.net[0].weight) not in opt_params


def test_component_names_are_stable():
    model = _model()
    assert {component_of(k) for k in model.policy.state_dict()} == {"encoder", "trunk", "heads"}
    state = component_state(model.policy)
    assert {bundle_component(k) for k in state} == {"encoder", "trunk", "heads.short", "heads.long"}
    assert torch.equal(state["heads.long.action.weight"], model.policy.heads.action.layer_weight(1))
    back = policy_state(model.policy, state)
    assert torch.equal(back["heads.action.weight"], model.policy.heads.action.weight)


def test_unsupported_head_mode_is_named():
    with pytest.raises(ValueError, match="heads='both' unknown"):
        _model(heads="both")
