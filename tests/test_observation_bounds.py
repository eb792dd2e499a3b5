"""Bounds that follow a task's parameter. Tasks whose float Box observations differ in their bounds alone (as
CartPole's track length sets its position's): one layout, as SB3's policies see them (they read no float Box's
bounds), not the stems and per-task sizes of tasks whose spaces differ; the widest bounds declared, the
observations as the tasks give them. A Box of actions whose range follows a parameter: refused, with the fix."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from plane import Plane, transfer_with_every_strategy
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from rltransfer.bundle import load_bundle
from rltransfer.config import load_config
from rltransfer.envs import Family, MultiTaskVecEnv, Parameter, get_family, register_family
from rltransfer.envs.checks import check_family
from rltransfer.envs.mixed import merge_spaces
from rltransfer.errors import ConfigError
from rltransfer.target_env import wrap_target_env
from rltransfer.validation import validate

pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")


def seen(gain: float, dtype=np.float32) -> spaces.Box:
    """The plane's position (always within [-10, 10]) in bounds that grow with the gain."""
    return spaces.Box(-(10 + gain), 10 + gain, (2,), dtype)


@pytest.fixture(autouse=True)
def bounded():
    register_family(
        Family(
            name="plane-bounded", parameters=[Parameter("gain", default=1.0, low=0.25, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(Plane(p["gain"], spaces.Discrete(5), seen(p["gain"])), 30),
            tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
            targets=["fast"], reward_threshold=-20.0,
        ),
        overwrite=True,
    )  # fmt: skip


def test_float_boxes_whose_bounds_alone_differ_share_one_layout_declaring_the_widest():
    wide = merge_spaces(["a", "b"], [seen(1.0), spaces.Box(np.array([-12, -9]), 9.0, (2,), np.float32)], [spaces.Discrete(5)] * 2)  # fmt: skip
    assert not wide.mixed and wide.obs_dims == (2, 2) and wide.action_dims == (5, 5)
    assert wide.observation == spaces.Box(np.array([-12, -11]), 11.0, (2,), np.float32)
    # Not one layout: another dtype (padded and cast, as tasks whose spaces differ), integer bounds (an image's).
    assert merge_spaces(["a", "b"], [seen(1.0), seen(1.0, np.float64)], [spaces.Discrete(5)] * 2).mixed
    with pytest.raises(ValueError, match="need 1-D Box ones"):
        merge_spaces(["a", "b"], [spaces.Box(0, 255, (3, 4, 4), np.uint8), spaces.Box(0, 9, (3, 4, 4), np.uint8)],
                     [spaces.Discrete(5)] * 2)  # fmt: skip


def test_the_tasks_observations_reach_the_agent_as_they_are_in_the_widest_bounds():
    family = get_family("plane-bounded")
    env = MultiTaskVecEnv(family, [family.task("default"), family.task("slow")], "context")
    assert not env.layout.mixed and env.observation_space["obs"] == seen(1.0)  # 11 is wider than 10.5
    env.seed(3)
    got = env.reset()["obs"]
    for slot, task in enumerate(["default", "slow"]):
        own = family.make(task)
        np.testing.assert_array_equal(got[slot], own.reset(seed=3 + slot)[0])


def test_normalisation_and_shared_heads_apply_as_to_one_space():
    """They were refused, as for observations of different lengths ('{default: 2, slow: 2, fast: 2}')."""
    validate(load_config({"family": "plane-bounded", "agent": {"normalize": True, "heads": "shared"}}))
    with pytest.raises(ConfigError, match="stem_width.*leave stem_width out"):  # no stems: the width does nothing
        validate(load_config({"family": "plane-bounded", "agent": {"encoder": {"stem_width": 8}}}))


@pytest.mark.parametrize("algo,batch_seeds", [("ppo", True), ("ppo", False), ("dqn", False)])
def test_a_family_whose_bounds_follow_a_parameter_transfers_with_every_strategy(algo, batch_seeds, tmp_path):
    """Pre-trained without input stems, to a target of wider bounds than any source's (each run refused the
    target's observation as not the bundle's); the saved agent evaluates on another task of the family."""
    result, _ = transfer_with_every_strategy("plane-bounded", algo, batch_seeds, tmp_path)
    bundle = load_bundle(result.run_dir / "pretrain/bundle")
    assert bundle.architecture.task_spaces is None and not [k for k in bundle.tensors if ".stems." in k]
    assert bundle.policy.observation_space["obs"] == seen(1.0)
    if algo == "ppo":
        model = PPO.load(result.run_dir / "runs/fast/finetune/seed-0/model.zip", device="cpu")
        assert model.observation_space["obs"] == seen(2.0)  # the target's own
        env = wrap_target_env(model, Monitor(get_family("plane-bounded").make("slow")), task="slow")
        _, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
        assert lengths == [30, 30]


def test_families_check_tells_how_the_tasks_spaces_share_a_layout():
    spaces_check = {c.name: c for c in check_family(get_family("plane-bounded"))}["spaces"]
    assert spaces_check.ok and spaces_check.detail.startswith("every task observes Box(-12.0, 12.0, (2,), float32)")
    classic = {c.name: c for c in check_family(get_family("classic"))}["spaces"]
    assert (
        classic.ok
        and "cartpole 4/2, " in classic.detail
        and "mountaincar 2/3): each task gets its own" in classic.detail
    )


def test_a_box_of_actions_whose_range_follows_a_parameter_is_refused_with_the_fix(tmp_path):
    """A policy's action would mean another force in each task: rescaled to [-1, 1], a fraction of the task's own."""
    register_family(
        Family(
            name="plane-torque", parameters=[Parameter("gain", default=1.0, low=0.25, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(Plane(1.0, spaces.Box(-p["gain"], p["gain"], (2,), np.float32)), 30),
            tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
            targets=["fast"], reward_threshold=-20.0,
        ),
        overwrite=True,
    )  # fmt: skip
    fix = r"give every task one Box: .*gymnasium.wrappers.RescaleAction\(env, -1.0, 1.0\)"
    (check,) = [c for c in check_family(get_family("plane-torque")) if c.name == "spaces"]
    assert not check.ok and re.search(
        r"tasks 'default' and 'slow' have action spaces Box\(-1.0, 1.0.*" + fix, check.detail
    )
    with pytest.raises(ConfigError, match=r"config keys 'source_tasks'/'target_tasks': .*" + fix):
        validate(load_config({"family": "plane-torque", "output_dir": str(tmp_path)}))
