"""Tasks whose observation or action spaces differ: padded layout, stems, action masks, transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rltransfer import load_bundle, pretrain, transfer
from rltransfer.agents import component_state
from rltransfer.agents.heads import MISSING_ACTION
from rltransfer.agents.transferable import split_observation
from rltransfer.config import load_config
from rltransfer.envs import MultiTaskVecEnv, get_family
from rltransfer.envs.mixed import FoldAction, SpaceError, merge_spaces
from rltransfer.errors import ConfigError
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve, validate

SOURCES = ["cartpole", "acrobot-short"]


def _cfg(tmp_path, algo="ppo", **extra):
    hyper = {"n_steps": 64} if algo == "ppo" else {"learning_starts": 50, "batch_size": 32, "buffer_size": 5000}
    cfg = {
        "family": "classic",
        "source_tasks": SOURCES,
        "target_tasks": ["acrobot-long", "mountaincar"],
        "agent": {"algo": algo, "encoder": {"hidden": [32], "stem_width": 16}, "trunk": {"vf": [32]} if algo == "dqn" else {"pi": [32], "vf": [32]},
                  "hyperparams": hyper},
        "pretrain": {"timesteps": 512, "envs_per_task": 2},
        "transfer": {"timesteps": 128, "n_envs": 2, "strategies": ["scratch", "finetune"], "seeds": 1},
        "output_dir": str(tmp_path),
    }  # fmt: skip
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module", params=["ppo", "dqn"])
def pretrained(request, tmp_path_factory):
    cfg = _cfg(tmp_path_factory.mktemp(request.param), request.param)
    return request.param, cfg, load_bundle(pretrain(cfg).bundle_path)


def test_layout_pads_observations_and_takes_the_largest_action_space():
    family = get_family("classic")
    env = MultiTaskVecEnv(family, [family.task(n) for n in SOURCES], "context", envs_per_task=2)
    assert env.layout.mixed and env.layout.obs_dims == (4, 6) and env.layout.action_dims == (2, 3)
    assert env.observation_space["obs"].shape == (6,) and env.action_space == spaces.Discrete(3)
    obs = env.reset()
    cartpole = [i for i, t in enumerate(env.slot_tasks) if t == 0]
    assert np.all(obs["obs"][cartpole, 4:] == 0.0) and np.any(obs["obs"][cartpole, :4] != 0.0)
    # An action CartPole does not have is folded back into its range, not an error.
    env.step(np.full(env.num_envs, 2))


def test_fold_action_and_refusals():
    env = FoldAction(get_family("cartpole").make("default"), spaces.Discrete(3))
    env.reset(seed=0)
    assert env.action(2) == 0 and env.action(1) == 1
    with pytest.raises(SpaceError, match="tasks 'img' and 'vec' observe .*need 1-D Box"):
        merge_spaces(["vec", "img"], [spaces.Box(0, 1, (4,)), spaces.Box(0, 1, (3, 7, 7))], [spaces.Discrete(2)] * 2)
    with pytest.raises(SpaceError, match=r"'a' and 'b' act in Discrete\(2\) and Discrete\(3\).*not Discrete\(9\)"):
        merge_spaces(["a", "b"], [spaces.Discrete(9)] * 2, [spaces.Discrete(2), spaces.Discrete(3)])
    with pytest.raises(SpaceError, match="not in Box actions"):
        merge_spaces(["a", "b"], [spaces.Box(0, 1, (4,)), spaces.Box(0, 1, (3,))],
                     [spaces.Box(-1, 1, (1,)), spaces.Box(-1, 1, (2,))])  # fmt: skip
    with pytest.raises(
        SpaceError, match=r"MultiDiscrete\(\[3 3\]\) and MultiDiscrete\(\[3 2\]\).*not in MultiDiscrete"
    ):
        merge_spaces(
            ["a", "b"], [spaces.Box(0, 1, (4,))] * 2, [spaces.MultiDiscrete([3, 3]), spaces.MultiDiscrete([3, 2])]
        )


def test_configs_that_cannot_mix_spaces_are_refused(tmp_path):
    cfg = _cfg(tmp_path)
    cfg["agent"]["normalize"] = True
    with pytest.raises(ConfigError, match=r"agent.normalize.*differ in length.*'cartpole': 4.*'acrobot-short': 6"):
        validate(load_config(cfg))
    cfg = _cfg(tmp_path)
    cfg["agent"]["heads"] = "shared"
    with pytest.raises(ConfigError, match="agent.heads.*per_task"):
        validate(load_config(cfg))
    cfg = _cfg(tmp_path)
    cfg["transfer"]["head_init"] = "probe"
    with pytest.raises(ConfigError, match="head_init.*probe.*allowed here: fresh, mean, nearest"):
        validate(load_config(cfg))


def test_a_target_of_other_spaces_than_sources_that_share_one_is_refused_naming_what_differs(tmp_path):
    """Their bundle has no input stem or head for it (each run failed with a BundleError); sources of other
    spaces transfer to it."""
    cfg = _cfg(tmp_path, source_tasks=["cartpole", "cartpole-long"], target_tasks=["cartpole-mid", "mountaincar"])
    with pytest.raises(
        ConfigError,
        match=r"config key 'target_tasks': target 'mountaincar' observes Box\(.*\(2,\), float32\), where every "
        r"source task observes Box\(.*\(4,\), float32\) and acts in Discrete\(3\), where every source task acts in "
        r"Discrete\(2\): .*pre-train on source tasks whose spaces differ",
    ):
        validate(load_config(cfg))
    validate(load_config(dict(cfg, source_tasks=SOURCES)))
    cfg["agent"]["encoder"].pop("stem_width")  # no stems where the tasks' spaces are one
    validate(load_config(dict(cfg, target_tasks=["cartpole-mid"])))


def test_kickstart_from_a_nearest_source_of_other_sizes_is_refused_naming_both(tmp_path):
    """Its teacher is the nearest source's head (each run failed with a BundleError); mountaincar's nearest
    source by context is acrobot-short ([1, -0.5] to [0, -1]: 1.12; to cartpole's [-1, -0.5]: 2)."""
    cfg = _cfg(tmp_path, target_tasks=["acrobot-long", "mountaincar"])
    cfg["transfer"]["strategies"] = ["scratch", "kickstart"]
    with pytest.raises(
        ConfigError,
        match=r"config key 'transfer.strategies': 'kickstart' .* target 'mountaincar' has 2 observation entries and "
        r"3 actions, its nearest source 'acrobot-short' 6 observation entries and 3 actions: leave kickstart out",
    ):
        validate(load_config(cfg))
    validate(load_config(dict(cfg, target_tasks=["acrobot-long"])))  # its nearest, acrobot-short, has its sizes
    with pytest.raises(ConfigError, match=r"leave kickstart out \(the default strategies include it: list them"):
        validate(load_config({"family": "classic"}))  # its targets include mountaincar
    cfg["transfer"]["strategies"] = ["scratch", "finetune"]
    validate(load_config(cfg))  # a new stem and head for mountaincar


def test_stems_and_heads_are_per_task_in_the_bundle(pretrained):
    algo, cfg, bundle = pretrained
    assert bundle.architecture.task_spaces.model_dump() == {"obs_dims": [4, 6], "action_dims": [2, 3]}
    for task in SOURCES:
        assert bundle.tensors[f"encoder.stems.{task}.weight"].shape == (16, 6)
    # A stem never reads the padding: CartPole's weights beyond its 4 observations are zero, after training too.
    assert torch.all(bundle.tensors["encoder.stems.cartpole.weight"][:, 4:] == 0)
    assert torch.any(bundle.tensors["encoder.stems.acrobot-short.weight"][:, 4:] != 0)


def tensors(obs: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v) for k, v in obs.items()}


def test_actions_a_task_lacks_are_never_chosen(pretrained):
    algo, cfg, bundle = pretrained
    env = source_env(resolve(load_config(cfg)), 4)
    raw = env.reset()  # DQN's env is flat: the bundle's policy reads the Dict of its entries
    obs = split_observation(torch.as_tensor(raw), env.obs_layout) if env.obs_layout else tensors(raw)
    cartpole = obs["task"][:, 0] == 1
    policy = bundle.policy
    with torch.no_grad():
        if algo == "ppo":
            logits = policy.get_distribution(obs).distribution.logits
            probs = policy.get_distribution(obs).distribution.probs
            assert torch.all(probs[cartpole, 2] == 0) and torch.all(probs[~cartpole, 2] > 0)
            acts = torch.stack([policy(obs)[0] for _ in range(50)])
            assert torch.all(acts[:, cartpole] < 2)
            assert torch.all(logits[cartpole, 2] < MISSING_ACTION / 2)
        else:
            q = policy.q_net(obs)
            assert torch.all(q[cartpole, 2] < MISSING_ACTION / 2) and torch.all(q[cartpole].argmax(1) < 2)
            assert torch.isfinite(q).all()


def test_stem_output_ignores_padding(pretrained):
    algo, cfg, bundle = pretrained
    encoder = bundle.policy.features_extractor if algo == "ppo" else bundle.policy.q_net.features_extractor
    env = source_env(resolve(load_config(cfg)), 1)
    raw = env.reset()
    obs = split_observation(torch.as_tensor(raw), env.obs_layout) if env.obs_layout else tensors(raw)
    cartpole = obs["task"][:, 0] == 1
    noisy = dict(obs, obs=obs["obs"].clone())
    noisy["obs"][cartpole, 4:] = 123.0  # padding entries of CartPole's observation
    with torch.no_grad():
        assert torch.allclose(encoder(obs)[cartpole], encoder(noisy)[cartpole])


def test_transfer_to_a_new_observation_length_keeps_encoder_and_trunk_with_a_new_stem_and_head(pretrained):
    algo, cfg, bundle = pretrained
    cfg = dict(cfg, transfer={**cfg["transfer"], "head_init": "fresh"})
    res = transfer(cfg, bundle, "mountaincar", "finetune", timesteps=128, save=False)
    status = {c.component: (c.status, c.source) for c in res.lineage.components}
    assert status["encoder"][0] == status["trunk"][0] == "loaded"
    assert "new stem" in status["encoder"][1] and status["heads"][0] == "fresh"
    policy = res.model.policy
    assert policy.action_space == spaces.Discrete(3) and policy.dict_space["obs"].shape == (2,)
    built = component_state(policy)
    assert built["encoder.stems.mountaincar.weight"].shape == (16, 2)


def test_transfer_to_a_known_observation_length_starts_from_the_nearest_stem_and_head(pretrained):
    algo, cfg, bundle = pretrained
    from rltransfer.transferring import build_target_agent

    c = load_config(cfg)
    setup = resolve(c)
    model, env, lineage = build_target_agent(
        c, setup, bundle, get_family("classic").task("acrobot-long"), "finetune", 0
    )
    assert lineage.nearest_source == "acrobot-short"
    state = component_state(model.policy)
    assert torch.equal(state["encoder.stems.acrobot-long.weight"], bundle.tensors["encoder.stems.acrobot-short.weight"])
    heads = [k for k in state if k.startswith("heads.acrobot-long.")]
    assert heads and all(
        torch.equal(state[k], bundle.tensors[k.replace("acrobot-long", "acrobot-short")]) for k in heads
    )


def test_a_target_smaller_than_the_largest_source_starts_from_its_nearest_stem_and_head(pretrained):
    # The bundle's stems read observations padded to 6 (Acrobot's) and its heads act in Discrete(3);
    # a CartPole target reads 4 and acts in 2.
    algo, cfg, bundle = pretrained
    from rltransfer.transferring import build_target_agent

    c = load_config(dict(cfg, target_tasks=["cartpole-mid"]))
    model, env, lineage = build_target_agent(
        c, resolve(c), bundle, get_family("classic").task("cartpole-mid"), "finetune", 0
    )
    assert lineage.nearest_source == "cartpole"
    assert "stem of 'cartpole'" in lineage.components[0].source
    source = bundle.tensors["encoder.stems.cartpole.weight"]
    assert source.shape[1] == 6 and not source[:, 4:].any()  # padding's columns: zero, so nothing is lost
    state = component_state(model.policy)
    assert torch.equal(state["encoder.stems.cartpole-mid.weight"], source[:, :4])
    assert torch.equal(state["encoder.stems.cartpole-mid.bias"], bundle.tensors["encoder.stems.cartpole.bias"])
    # Its head likewise: the bundle's act in Discrete(3), CartPole's third action masked; the target's has 2.
    status = {c.component: c.status for c in lineage.components}
    assert status["heads"] == "loaded"
    heads = [k for k in state if k.startswith("heads.cartpole-mid.")]
    assert heads
    for key in heads:
        theirs = bundle.tensors[key.replace("cartpole-mid", "cartpole")]
        assert torch.equal(state[key], theirs[: state[key].shape[0]])
    assert any(
        state[k].shape[0] == 2 and bundle.tensors[k.replace("cartpole-mid", "cartpole")].shape[0] == 3 for k in heads
    )


@pytest.mark.parametrize("strategy", ["freeze_encoder", "lr_scaled"])
def test_a_new_stem_trains_at_the_full_rate_inside_a_frozen_or_scaled_encoder(pretrained, strategy):
    algo, cfg, bundle = pretrained
    from rltransfer.transferring import build_target_agent

    c = load_config(cfg)
    model, env, lineage = build_target_agent(
        c, resolve(c), bundle, get_family("classic").task("mountaincar"), strategy, 0
    )
    assert "new stem, trained at the full rate" in lineage.components[0].source
    policy = model.policy
    stem = policy.features_extractor.stems if algo == "ppo" else policy.q_net.features_extractor.stems
    assert stem.weight.requires_grad
    mults = {id(p): g["lr_mult"] for g in policy.optimizer.param_groups for p in g["params"]}
    assert mults[id(stem.weight)] == 1.0
    before = component_state(policy)
    model.learn(256)
    after = component_state(policy)
    assert not torch.equal(before["encoder.stems.mountaincar.weight"], after["encoder.stems.mountaincar.weight"])
    if strategy == "freeze_encoder":  # the rest of the encoder stays bit-identical
        for key in before:
            if key.startswith("encoder.") and ".stems." not in key:
                assert torch.equal(before[key], after[key]), key


@pytest.fixture(scope="module")
def three_sources(tmp_path_factory):
    """A PPO bundle with two CartPole sources (4 observations, 2 actions) and an Acrobot (6, 3)."""
    cfg = _cfg(tmp_path_factory.mktemp("three"), source_tasks=["cartpole", "cartpole-long", "acrobot-short"])
    return cfg, load_bundle(pretrain(cfg).bundle_path)


def _heads(state, task):
    return {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"heads.{task}.")}


def test_mean_head_init_averages_the_sources_of_the_targets_spaces(three_sources):
    # The bundle's heads act in Discrete(3); a mean over all of them mixes Acrobot's torques into
    # CartPole's pushes. A target's head starts from the mean of the sources with its own spaces.
    cfg, bundle = three_sources
    from rltransfer.transferring import build_target_agent

    c = load_config(dict(cfg, target_tasks=["cartpole-mid", "acrobot-long", "mountaincar"],
                         transfer={**cfg["transfer"], "head_init": "mean"}))  # fmt: skip
    family = get_family("classic")

    def build(target):
        model, _, lineage = build_target_agent(c, resolve(c), bundle, family.task(target), "finetune", 0)
        heads = next(row for row in lineage.components if row.component == "heads")
        return _heads(component_state(model.policy), target), heads

    mine, row = build("cartpole-mid")
    assert row.status == "loaded"
    assert row.source == "mean of 2 source heads of the target's spaces (cartpole, cartpole-long)"
    a, b = _heads(bundle.tensors, "cartpole"), _heads(bundle.tensors, "cartpole-long")
    assert mine.keys() == a.keys() and any(a[k].shape[0] == 3 and mine[k].shape[0] == 2 for k in a)
    for k, v in mine.items():
        torch.testing.assert_close(v, (a[k][: v.shape[0]] + b[k][: v.shape[0]]) / 2, rtol=0, atol=1e-7)
    mine, row = build("acrobot-long")  # one source of its spaces: that source's head
    assert row.source == "mean of 1 source heads of the target's spaces (acrobot-short)"
    assert all(torch.equal(v, _heads(bundle.tensors, "acrobot-short")[k]) for k, v in mine.items())
    _, row = build("mountaincar")  # 2 observations, 3 actions: no source has them
    assert row.status == "fresh"
    assert row.source == "fresh: no source task has the target's spaces (2 observations, 3 actions)"


def test_kickstart_teaches_a_target_with_fewer_actions_than_the_bundle(three_sources):
    # Before, kickstart refused CartPole targets of a bundle whose heads act in Discrete(3).
    cfg, bundle = three_sources
    from rltransfer.transferring import build_target_agent

    c = load_config(dict(cfg, target_tasks=["cartpole-mid"], transfer={
        **cfg["transfer"], "head_init": "mean",
        "strategy_params": {"kickstart": {"load": ["encoder", "trunk", "heads"]}}}))  # fmt: skip
    model, env, lineage = build_target_agent(
        c, resolve(c), bundle, get_family("classic").task("cartpole-mid"), "kickstart", 0
    )
    assert lineage.teacher == "mean of 2 source heads of the target's spaces (cartpole, cartpole-long)"
    assert model.teacher.action_space == spaces.Discrete(3) and model.action_space == spaces.Discrete(2)
    # A student started from the teacher's head acts as the teacher, over the target's two actions.
    obs, _ = model.policy.obs_to_tensor(env.reset())
    with torch.no_grad():
        teacher = model._teacher_distribution(obs)
        student = model.policy.get_distribution(obs).distribution
        full = model.teacher.get_distribution(model._teacher_obs(obs)).distribution.probs
    assert teacher.probs.shape == student.probs.shape == (env.num_envs, 2)
    assert torch.all(full[:, 2] == 0)  # the masked third action carries nothing: keeping two loses nothing
    torch.testing.assert_close(teacher.probs, full[:, :2], rtol=0, atol=1e-6)
    torch.testing.assert_close(teacher.probs, student.probs, rtol=0, atol=1e-6)
    model.learn(128)
    assert model.kickstart_log and all(np.isfinite(kl) and kl >= 0 for _, _, kl in model.kickstart_log)


def test_a_saved_target_agent_runs_on_its_task_or_a_named_one_padded_and_refuses_other_spaces(pretrained, tmp_path):
    import gymnasium as gym
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from rltransfer import wrap_target_env
    from rltransfer.errors import UserInputError

    algo, cfg, bundle = pretrained
    transfer(cfg, bundle, "acrobot-long", "zero_shot", seed=0, timesteps=128, out_dir=tmp_path)
    family, model = get_family("classic"), tmp_path / "model.zip"
    agent_obs = wrap_target_env(model, family.make("acrobot-long")).observation_space
    # CartPole's 4 observations padded to Acrobot's 6, its 2 actions taken from the agent's 3 (folded)
    env = wrap_target_env(model, Monitor(family.make("cartpole-mid")), task="cartpole-mid")
    assert env.observation_space == agent_obs and env.action_space == spaces.Discrete(3)
    obs, _ = env.reset(seed=0)
    raw, _ = family.make("cartpole-mid").reset(seed=0)
    flat = obs if algo == "dqn" else obs["obs"]
    assert np.array_equal(flat[:4], raw) and not flat[4:6].any()
    agent = (PPO if algo == "ppo" else DQN).load(model, device="cpu")
    returns, _ = evaluate_policy(agent, env, n_eval_episodes=1, return_episode_rewards=True)
    assert returns[0] >= 1
    with pytest.raises(UserInputError, match=r"is not the one the agent was trained on .*name it: wrap_target_env"):
        wrap_target_env(model, family.make("cartpole-mid"))  # not named: the agent's own task has 6
    with pytest.raises(UserInputError, match=r"\(3,\).* nor task 'cartpole-mid's own \(Box\(.*\(4,\)"):
        wrap_target_env(model, gym.make("Pendulum-v1"), task="cartpole-mid")  # named, but other spaces
