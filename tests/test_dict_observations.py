"""A Dict observation of vectors and discrete values (a goal-conditioned env's, say): read flattened into one
vector, as SB3's MultiInputPolicy reads it (its CombinedExtractor), beside the task's conditioning entries; a
family that observes one checks, pre-trains, transfers with every strategy and evaluates, per process and
batched, and its saved agent runs on the plain env. A Dict holding an image is refused, saying what is read."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from plane import Plane, transfer_with_every_strategy
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import CombinedExtractor

from rltransfer.bundle import load_bundle
from rltransfer.config import load_config
from rltransfer.envs import Family, Parameter, get_family, register_family
from rltransfer.envs.behaviour import observation_problem, rollout
from rltransfer.envs.checks import check_family
from rltransfer.envs.images import agent_view
from rltransfer.errors import ConfigError
from rltransfer.target_env import wrap_target_env
from rltransfer.validation import validate

pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")

SEEN = spaces.Dict({"position": spaces.Box(-10, 10, (2,), np.float32), "cell": spaces.Discrete(25)})


class DictPlane(Plane):
    """The plane observing its position and the index of its cell, as two entries of a Dict (and, with
    ``image``, a picture of nothing)."""

    def __init__(self, gain: float = 1.0, image: bool = False):
        seen = SEEN if not image else spaces.Dict({**SEEN.spaces, "view": spaces.Box(0, 255, (8, 8, 3), np.uint8)})
        super().__init__(gain, spaces.Discrete(5), seen)
        self.image = image

    def _observe(self):
        cell = np.clip(np.round(self.pos).astype(np.int64) + 2, 0, 4)
        obs = {"position": self.pos.astype(np.float32), "cell": int(cell[0] * 5 + cell[1])}
        return {**obs, "view": np.zeros((8, 8, 3), np.uint8)} if self.image else obs


def dict_family(image: bool = False) -> Family:
    return register_family(
        Family(
            name=f"plane-dict{'-image' if image else ''}", parameters=[Parameter("gain", default=1.0, low=0.25, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(DictPlane(p["gain"], image), 30),
            tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
            targets=["fast"], reward_threshold=-20.0,
        ),
        overwrite=True,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def family():
    return dict_family()


def test_the_agents_read_what_sb3s_multi_input_policy_reads(family):
    """The flattened observation is the CombinedExtractor's features of the observation SB3's policy preprocesses:
    each entry flattened (a Discrete one one-hot), concatenated in the Dict's order."""
    env = family.make("default")
    obs, _ = env.reset(seed=4)
    seen, _ = agent_view(family.make("default")).reset(seed=4)
    assert seen.shape == (27,)
    tensors = {k: torch.as_tensor(np.asarray(v))[None] for k, v in obs.items()}
    features = CombinedExtractor(env.observation_space)(preprocess_obs(tensors, env.observation_space))
    np.testing.assert_array_equal(seen, features[0].numpy())


def test_a_rollout_checks_each_entry_and_keeps_the_flattened_observation(family):
    kept = rollout(family.make("default"), steps=5)
    assert all(o.shape == (27,) for o in kept.observations)
    position = spaces.Box(-10, 10, (2,), np.float32)
    assert observation_problem(SEEN, {"position": np.zeros(2, np.float32), "cell": 3}) is None
    assert observation_problem(SEEN, {"position": np.zeros(3), "cell": 3}) == (
        f"in its entry 'position' an observation of shape (3,), where its observation_space is {position}"
    )
    assert observation_problem(SEEN, {"cell": 30, "position": np.zeros(2)}).startswith("in its entry 'cell' an")
    assert observation_problem(SEEN, {"position": np.zeros(2)}) == (
        "an observation of ['position'], where its observation_space is a Dict of ['cell', 'position']"
    )


def test_families_check_passes_a_family_that_observes_a_dict(family):
    checks = {c.name: c for c in check_family(family)}
    assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
    assert checks["spaces"].detail.startswith("every task observes Box(") and "(27,)" in checks["spaces"].detail


@pytest.mark.parametrize("algo,batch_seeds", [("ppo", True), ("ppo", False), ("dqn", False)])
def test_a_family_that_observes_a_dict_transfers_with_every_strategy(algo, batch_seeds, tmp_path):
    """Each run was refused: a Dict observation was told to be flattened in the family's build."""
    result, _ = transfer_with_every_strategy("plane-dict", algo, batch_seeds, tmp_path)
    assert load_bundle(result.run_dir / "pretrain/bundle").policy.observation_space["obs"].shape == (27,)
    if algo == "ppo":
        model = PPO.load(result.run_dir / "runs/fast/finetune/seed-1/model.zip", device="cpu")
        env = wrap_target_env(model, Monitor(get_family("plane-dict").make("fast")))
        _, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
        assert lengths == [30, 30]


def test_a_dict_holding_an_image_is_refused_saying_what_is_read():
    dict_family(image=True)
    with pytest.raises(
        ConfigError,
        match=r"config key 'family': family 'plane-dict-image' observes a Dict \(.*'view': Box\(0, 255, \(8, 8, 3\), "
        r"uint8\)\)\) that holds more than vectors and discrete values; .*or an image alone",
    ):
        validate(load_config({"family": "plane-dict-image"}))
