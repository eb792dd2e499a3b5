"""Multi-task DQN and SAC: routing, per-task entropy, save/load, bundles and every strategy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, SAC

from rltransfer import load_bundle, pretrain, transfer
from rltransfer.agents import component_state
from rltransfer.agents.transferable import split_observation
from rltransfer.config import load_config
from rltransfer.envs import Family, MultiTaskVecEnv, Parameter, register_family
from rltransfer.errors import ConfigError
from rltransfer.validation import resolve, validate

OFF = {"learning_starts": 50, "batch_size": 32, "train_freq": 1, "gradient_steps": 1, "buffer_size": 5000}
STRATEGIES = ["scratch", "zero_shot", "finetune", "freeze_encoder", "heads_only", "lr_scaled", "adapter"]


def _cfg(tmp_path, algo: str, family: str, **extra):
    cfg = {
        "family": family,
        "agent": {
            "algo": algo,
            "encoder": {"hidden": [32]},
            "trunk": {"vf": [32]} if algo == "dqn" else {"pi": [32], "vf": [32]},
            "hyperparams": OFF,
        },
        "pretrain": {"timesteps": 300, "envs_per_task": 1},
        "transfer": {"timesteps": 150, "n_envs": 2, "strategies": STRATEGIES, "seeds": 1, "head_init": "nearest"},
        "output_dir": str(tmp_path),
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module", params=[("dqn", "cartpole"), ("sac", "pendulum")], ids=["dqn", "sac"])
def pretrained(request, tmp_path_factory):
    algo, family = request.param
    tmp = tmp_path_factory.mktemp(algo)
    cfg = _cfg(tmp, algo, family)
    res = pretrain(cfg)
    return algo, cfg, load_bundle(res.bundle_path)


def _obs(env):
    """The env's first observation as the Dict of its entries (the off-policy envs give a flat Box)."""
    raw = env.reset()
    if env.obs_layout:
        return split_observation(torch.as_tensor(raw), env.obs_layout)
    return {k: torch.as_tensor(v) for k, v in raw.items()}


def test_off_policy_envs_are_flat_and_the_flat_policy_equals_the_dict_one(pretrained):
    """The flat observation is the entries side by side (encoder's first, ``task`` last); a policy on it
    computes exactly what the same weights compute on the Dict, and also takes the Dict in ``predict``."""
    algo, cfg, bundle = pretrained
    from rltransfer.pretraining import source_env

    env = source_env(resolve(load_config(cfg)), 2)
    assert [k for k, _ in env.obs_layout] == ["obs", "context", "task"]
    assert isinstance(env.observation_space, spaces.Box) and env.observation_space.shape == (
        sum(n for _, n in env.obs_layout),
    )
    setup = resolve(load_config(cfg))
    dict_env = MultiTaskVecEnv(setup.family, setup.sources, setup.config.conditioning, 2)  # the same tasks, as a Dict
    env.seed(3)
    dict_env.seed(3)
    flat, as_dict = env.reset(), dict_env.reset()
    assert np.array_equal(flat, np.concatenate([as_dict["obs"], as_dict["context"], as_dict["task"]], axis=1))
    entries = split_observation(torch.as_tensor(flat), env.obs_layout)
    assert entries["task"].argmax(1).tolist() == list(range(len(bundle.task_names))) * 2 and flat.dtype == np.float32
    model = (DQN if algo == "dqn" else SAC).load(bundle.path / "model.zip", device="cpu")
    assert model.policy.obs_layout == list(env.obs_layout)
    x = torch.as_tensor(flat)
    with torch.no_grad():
        if algo == "dqn":
            pairs = [(model.policy.q_net(x), bundle.policy.q_net(entries))]
        else:
            acts = torch.zeros(len(x), 1)
            pairs = [
                (
                    model.policy.actor.get_action_dist_params(x)[0],
                    bundle.policy.actor.get_action_dist_params(entries)[0],
                ),
                (model.policy.critic(x, acts)[1], bundle.policy.critic(entries, acts)[1]),
            ]
    for a, b in pairs:
        assert torch.equal(a, b)
    as_dict = {k: v.numpy() for k, v in entries.items()}
    assert np.array_equal(model.predict(flat, deterministic=True)[0], model.predict(as_dict, deterministic=True)[0])


def test_make_target_env_gives_the_layout_asked_for(pretrained):
    algo, cfg, bundle = pretrained
    from rltransfer import make_target_env

    target = resolve(load_config(cfg)).targets[0]
    flat = make_target_env(bundle, target.name)  # as the bundle's algorithm trains
    as_dict = make_target_env(bundle, target.name, flat=False)  # for SB3's MultiInputPolicy
    assert isinstance(flat.observation_space, spaces.Box) and flat.obs_layout
    assert isinstance(as_dict.observation_space, spaces.Dict) and as_dict.obs_layout is None
    assert as_dict.observation_space == flat.dict_space


def test_training_mode_reaches_every_module(pretrained):
    """The policy skips SB3's module walk when already in the mode, never when the mode changes."""
    algo, cfg, bundle = pretrained
    model = (DQN if algo == "dqn" else SAC).load(bundle.path / "model.zip", device="cpu")
    policy = model.policy
    for mode in (True, False, False, True, True, False):
        policy.set_training_mode(mode)
        assert policy.training is mode
        nets = [policy.q_net] if algo == "dqn" else [policy.actor, policy.critic]
        assert all(m.training is mode for net in nets for m in net.modules())
    policy.train()  # torch's own switch keeps the policy's flag current
    policy.set_training_mode(False)
    assert not any(m.training for net in nets for m in net.modules())


def test_normalised_off_policy_envs_keep_the_dict(tmp_path):
    """VecNormalize normalises a Dict's ``obs`` entry, never part of a Box: with ``normalize`` the Dict stays."""
    from rltransfer.pretraining import source_env

    cfg = load_config(_cfg(tmp_path, "dqn", "cartpole"), ["agent.normalize=true"])
    env = source_env(resolve(cfg), 1)
    assert env.obs_layout is None and isinstance(env.observation_space, spaces.Dict)


def test_bundle_names_components_and_rebuilds_the_same_policy(pretrained):
    algo, cfg, bundle = pretrained
    assert bundle.algo == algo
    keys = set(bundle.tensors)
    roots = ["actor.", "critic."] if algo == "sac" else [""]
    for comp in ("encoder", "trunk"):
        for root in roots:
            assert any(k.startswith(f"{comp}.{root}") for k in keys), (comp, root)
    for task in bundle.task_names:
        assert any(k.startswith(f"heads.{task}.") for k in keys)
    assert not any("target" in k for k in keys)  # target networks are no components
    state = component_state(bundle.policy)
    assert all(torch.equal(state[k], bundle.tensors[k]) for k in keys)


def test_per_task_heads_route(pretrained):
    algo, cfg, bundle = pretrained
    policy = bundle.policy
    from rltransfer.pretraining import source_env

    env = source_env(resolve(load_config(cfg)), 1)
    obs = _obs(env)
    swapped = dict(obs, task=torch.roll(obs["task"], 1, dims=1))  # only the head changes
    with torch.no_grad():
        if algo == "dqn":
            a, b = policy.q_net(obs), policy.q_net(swapped)
        else:
            a, b = policy.actor.get_action_dist_params(obs)[0], policy.actor.get_action_dist_params(swapped)[0]
            qa = policy.critic(obs, torch.zeros(len(a), 1))[0]
            qb = policy.critic(swapped, torch.zeros(len(a), 1))[0]
            assert not torch.allclose(qa, qb)
    assert not torch.allclose(a, b)
    # Sample i with head j gives what head j's own layer computes.
    heads = policy.heads
    layer = heads.q if algo == "dqn" else heads.mu
    with torch.no_grad():
        net = policy.q_net if algo == "dqn" else policy.actor
        from rltransfer.agents.transferable import without_task

        latent = net.mlp_extractor(net.extract_features(without_task(obs), net.features_extractor))
        j = int(obs["task"][2].argmax())
        own = torch.nn.functional.linear(latent[2], layer.layer_weight(j), layer.layer_bias(j))
    assert torch.allclose(a[2], own, atol=1e-6)


def test_save_load_round_trip_gives_identical_actions(pretrained, tmp_path):
    algo, cfg, bundle = pretrained
    model_cls = DQN if algo == "dqn" else SAC
    model = model_cls.load(bundle.path / "model.zip", device="cpu")
    from rltransfer.pretraining import source_env

    env = source_env(resolve(load_config(cfg)), 1)
    obs = env.reset()
    a, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "again.zip")
    again = model_cls.load(tmp_path / "again.zip", device="cpu")
    b, _ = again.predict(obs, deterministic=True)
    assert np.array_equal(a, b)
    assert type(again.policy).__name__ == type(model.policy).__name__
    if algo == "sac":
        assert np.allclose(again.log_ent_coef.detach().numpy(), model.log_ent_coef.detach().numpy())


EXPECTED = {
    "scratch": ("fresh", "fresh", "fresh"),
    "zero_shot": ("loaded", "loaded", "loaded"),
    "finetune": ("loaded", "loaded", "loaded"),
    "freeze_encoder": ("frozen", "loaded", "loaded"),
    "heads_only": ("frozen", "frozen", "loaded"),
    "lr_scaled": ("loaded", "loaded", "loaded"),
    "adapter": ("adapted", "adapted", "loaded"),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_applies_and_trains(pretrained, strategy):
    algo, cfg, bundle = pretrained
    target = resolve(load_config(cfg)).targets[0]
    res = transfer(cfg, bundle, target, strategy, save=False)
    status = tuple(c.status for c in res.lineage.components)
    assert status == EXPECTED[strategy]
    state = component_state(res.model.policy)
    unchanged = {"zero_shot": ("encoder", "trunk", "heads"), "freeze_encoder": ("encoder",),
                 "heads_only": ("encoder", "trunk"), "adapter": ("encoder", "trunk")}.get(strategy, ())  # fmt: skip
    nearest = res.lineage.nearest_source
    for key, value in state.items():
        if key.split(".")[0] in unchanged and ".lora_" not in key:
            source_key = key.replace(f"heads.{target.name}.", f"heads.{nearest}.")
            assert torch.equal(value, bundle.tensors[source_key]), key  # bit-identical after training
    if strategy == "lr_scaled":
        mults = {g["lr_mult"] for opt in _optimizers(res.model) for g in opt.param_groups}
        assert mults == {0.1}


def _optimizers(model):
    policy = model.policy
    return [policy.optimizer] if hasattr(policy, "q_net") else [policy.actor.optimizer, policy.critic.optimizer]


def _built(cfg, bundle, strategy):
    from rltransfer.transferring import build_target_agent

    c = load_config(cfg)
    setup = resolve(c)
    model, env, lineage = build_target_agent(c, setup, bundle, setup.targets[0], strategy, seed=0)
    return model, env, lineage


@pytest.mark.parametrize("strategy", ["finetune", "adapter"])
def test_loaded_agent_starts_as_the_pretrained_one(pretrained, strategy):
    """Transferred components (adapters included: they start as the identity) reproduce the bundle's
    outputs for the nearest source's head; target networks start equal to their networks."""
    algo, cfg, bundle = pretrained
    model, env, lineage = _built(cfg, bundle, strategy)
    obs = _obs(env)
    nearest = bundle.task_names.index(lineage.nearest_source)
    src_obs = dict(
        obs, task=torch.nn.functional.one_hot(torch.full((len(obs["task"]),), nearest), len(bundle.task_names)).float()
    )
    with torch.no_grad():
        if algo == "dqn":
            assert torch.allclose(model.policy.q_net(obs), bundle.policy.q_net(src_obs), atol=1e-6)
            for p, q in zip(model.policy.q_net.parameters(), model.policy.q_net_target.parameters()):
                assert torch.equal(p, q)
        else:
            mine = model.policy.actor.get_action_dist_params(obs)[:2]
            theirs = bundle.policy.actor.get_action_dist_params(src_obs)[:2]
            assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(mine, theirs))
            acts = torch.zeros(len(obs["task"]), 1)
            for x, y in zip(model.policy.critic(obs, acts), bundle.policy.critic(src_obs, acts)):
                assert torch.allclose(x, y, atol=1e-6)
            for p, q in zip(model.policy.critic.parameters(), model.policy.critic_target.parameters()):
                assert torch.equal(p, q)
            # The entropy coefficient starts where the nearest source's ended.
            assert model.ent_coefs[lineage.target["name"]] == pytest.approx(
                bundle.manifest.ent_coefs[lineage.nearest_source], rel=1e-5
            )


def test_frozen_components_stay_bit_identical_while_training(pretrained):
    algo, cfg, bundle = pretrained
    model, env, _ = _built(cfg, bundle, "heads_only")
    before = component_state(model.policy)
    model.learn(200)
    after = component_state(model.policy)
    for key in before:
        if key.split(".")[0] in ("encoder", "trunk"):
            assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("heads."))


def _scaled_pendulum(p):
    env = gym.make("Pendulum-v1")
    return gym.wrappers.TransformReward(env, lambda r, s=p["reward_scale"]: r * s)


register_family(
    Family(
        name="test-scaled-pendulum",
        parameters=[Parameter("reward_scale", default=1.0, low=0.001, high=10.0)],
        build=_scaled_pendulum,
        tasks={"tiny": {"reward_scale": 0.001}, "large": {"reward_scale": 10.0}, "mid": {"reward_scale": 1.0}},
        source=["tiny", "large"],
        targets=["mid"],
        reward_threshold=-200.0,  # Pendulum-v1's spec has none; a config's tasks each need one
    )
)


def test_sac_learns_one_entropy_coefficient_per_task(tmp_path):
    """Rewards 10,000x apart: the tiny-reward task's policy stays near-random (entropy above the
    target), so its coefficient falls further; the large-reward task's Q-gradient narrows its policy,
    and its coefficient stays higher to hold the target entropy."""
    cfg = _cfg(tmp_path, "sac", "test-scaled-pendulum", conditioning="onehot")
    cfg["agent"]["hyperparams"] = {**OFF, "learning_starts": 100, "learning_rate": 1e-2}
    cfg["pretrain"]["timesteps"] = 1500
    res = pretrain(cfg)
    coefs = load_bundle(res.bundle_path).manifest.ent_coefs
    assert set(coefs) == {"tiny", "large"}
    assert coefs["large"] > 3 * coefs["tiny"]  # measured: 0.027 vs 0.0018


def test_algorithms_and_strategies_that_do_not_fit_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"agent.algo.*dqn needs Discrete.*algorithms for it: ppo, sac"):
        validate(load_config(_cfg(tmp_path, "dqn", "pendulum")))
    with pytest.raises(ConfigError, match=r"sac needs Box.*algorithms for it: ppo, dqn"):
        validate(load_config(_cfg(tmp_path, "sac", "cartpole")))
    dqn = _cfg(tmp_path, "dqn", "cartpole")
    dqn["agent"]["trunk"]["pi"] = [32]  # DQN has no policy network: taken, it did nothing
    with pytest.raises(
        ConfigError, match=r"'agent.trunk.pi': DQN has no policy network \(its Q-network's layers are agent.trunk.vf\)"
    ):
        validate(load_config(dqn))
    for algo, family in (("dqn", "cartpole"), ("sac", "pendulum")):
        for strategy in ("kickstart", "progressive"):
            cfg = _cfg(tmp_path, algo, family)
            cfg["transfer"]["strategies"] = ["scratch", strategy]
            with pytest.raises(ConfigError, match=rf"'{strategy}' applies to ppo only, not {algo}"):
                validate(load_config(cfg))
