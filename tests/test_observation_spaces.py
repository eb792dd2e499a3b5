"""Discrete, MultiDiscrete and MultiBinary observations, read as SB3's policies read them (a discrete value
one-hot encoded, a binary one as its 0/1 entries): a family of one's own that observes them pre-trains, transfers
with every strategy and evaluates with each algorithm that acts in its actions, per process and batched; what
SB3 would misread, and settings that need Box observations, are refused when the config loads, saying why."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from plane import SEEN, Plane, plane_family, transfer_with_every_strategy
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from torch import nn

from rltransfer.agents import ALGORITHMS
from rltransfer.bundle import load_bundle
from rltransfer.config import load_config
from rltransfer.envs import Family, get_family, register_family
from rltransfer.envs.checks import check_layout
from rltransfer.errors import ConfigError
from rltransfer.target_env import wrap_target_env
from rltransfer.validation import validate

pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")

WIDTH = {"plane-sees-d": 25, "plane-sees-md": 10, "plane-sees-mb": 10}
"""The width of each family's observation as the policy reads it: 25 cells one-hot; a column and a row of 5,
each one-hot; the 10 bits as they are."""


@pytest.fixture(autouse=True)
def families():
    for name in SEEN:
        plane_family(name)


@pytest.mark.parametrize(
    "family,algo,batch_seeds",
    [
        ("plane-sees-d", "ppo", True), ("plane-sees-d", "ppo", False), ("plane-sees-md", "ppo", True),
        ("plane-sees-md", "dqn", True), ("plane-sees-md", "dqn", False), ("plane-sees-mb", "ppo", False),
        ("plane-sees-mb", "sac", True), ("plane-sees-mb", "sac", False),
    ],
)  # fmt: skip
def test_a_family_of_discrete_observations_pre_trains_transfers_with_every_strategy_and_evaluates(
    family, algo, batch_seeds, tmp_path
):
    # Kickstarting's teacher read a Discrete observation's width from a Box's shape (an IndexError, every run).
    result, _ = transfer_with_every_strategy(family, algo, batch_seeds, tmp_path)
    seen = SEEN[family][0]
    bundle = load_bundle(result.run_dir / "pretrain/bundle")
    assert bundle.policy.observation_space["obs"] == seen
    model = ALGORITHMS[algo].base.load(result.run_dir / "runs/fast/finetune/seed-1/model.zip", device="cpu")
    assert model.observation_space["obs"] == seen
    net = {"dqn": "q_net", "sac": "actor"}.get(algo)  # the network whose encoder the others share (PPO: one)
    encoder = (getattr(model.policy, net) if net else model.policy).features_extractor
    first = next(m for m in encoder.modules() if isinstance(m, nn.Linear))
    context = model.observation_space.spaces.get("context")
    reads = WIDTH[family] + (context.shape[0] if context is not None else 0)
    assert first.in_features == reads  # SB3's one-hot encoding (or the bits), beside the context: not the raw value
    env = wrap_target_env(model, Monitor(plane_family(family).make("fast")))
    _, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [30, 30]


def config(family: str, **agent):
    return load_config({"name": family, "family": family, "agent": agent})


@pytest.mark.parametrize(
    "space,says",
    [
        (spaces.Discrete(25, start=-12), r"values start at -12; SB3's policies one-hot encode values from 0"),
        (spaces.MultiDiscrete([5, 5], start=[-2, -2]), r"values start at \[-2, -2\]; SB3's policies one-hot"),
        (spaces.MultiDiscrete([[5, 5], [2, 2]]), r"of shape \(2, 2\); SB3's policies read one-dimensional ones"),
        (spaces.MultiBinary([2, 5]), r"of shape \(2, 5\); SB3's policies read one-dimensional ones"),
    ],
    ids=["Discrete-start", "MultiDiscrete-start", "MultiDiscrete-2d", "MultiBinary-2d"],
)
def test_observations_sb3_would_misread_are_refused_with_the_fix(space, says):
    """When the config loads, and by ``families --check`` (its "spaces" check passed them)."""
    family = plane_family("plane-sees-odd", spaces.Discrete(5), space)
    with pytest.raises(ConfigError, match=rf"config key 'family': family 'plane-sees-odd' observes .*{says}.*Flatten"):
        validate(config("plane-sees-odd"))
    (check,) = check_layout(family)
    assert not check.ok and re.match(rf"family 'plane-sees-odd' observes .*{says}.*Flatten", check.detail)


def test_a_box_of_one_number_is_refused_with_the_reshape_that_fixes_it():
    """SB3's policies fail on it (an IndexError as they flatten a batch of shape (n,)); of shape (1,) it trains."""
    plane_family("plane-sees-scalar", spaces.Discrete(5), spaces.Box(-5, 5, (), np.float32))
    says = r"observes Box\(-5.0, 5.0, \(\), float32\), of shape \(\) \(one number\).*ReshapeObservation\(env, \(1,\)\)"
    with pytest.raises(ConfigError, match=rf"config key 'family': family 'plane-sees-scalar' {says}"):
        validate(config("plane-sees-scalar"))
    (check,) = check_layout(get_family("plane-sees-scalar"))
    assert not check.ok and re.match(rf"family 'plane-sees-scalar' {says}", check.detail)


@pytest.mark.parametrize("family", list(SEEN))
def test_normalising_discrete_observations_is_refused(family):
    with pytest.raises(ConfigError, match=r"config key 'agent.normalize': .*Box observations.*use false"):
        validate(config(family, algo="sac" if family == "plane-sees-mb" else "ppo", normalize=True))


def test_tasks_whose_discrete_observations_differ_are_refused_naming_both():
    def build(p):  # the fast task sees a grid of another size
        seen = spaces.Discrete(36) if p["gain"] > 1.5 else spaces.Discrete(25)
        return gym.wrappers.TimeLimit(Plane(p["gain"], spaces.Discrete(5), seen), max_episode_steps=30)

    base = plane_family("plane-sees-d")
    register_family(
        Family(name="plane-sees-wider", parameters=list(base.parameters.values()), build=build,
               tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
               targets=["fast"], reward_threshold=-20.0),
        overwrite=True,
    )  # fmt: skip
    says = r"tasks 'default' and 'fast' observe Discrete\(25\) and Discrete\(36\): .*must be the same for every task"
    with pytest.raises(ConfigError, match=says):
        validate(config("plane-sees-wider"))
