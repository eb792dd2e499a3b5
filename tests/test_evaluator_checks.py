"""The evaluator never scores an agent with a non-finite parameter, whatever algorithm trains it."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.agents.updates import NonFiniteError, non_finite_parameter
from rltransfer.evaluation import Evaluator


class Poison(BaseCallback):
    """Makes one weight of the value network NaN at a given step (SB3's own PPO does not check)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps == self.at:
            with torch.no_grad():
                self.model.policy.mlp_extractor.value_net[0].weight[0, 0] = float("nan")
        return True


def test_the_evaluator_stops_a_run_before_it_scores_a_non_finite_agent():
    def env():
        return DummyVecEnv([lambda: gym.make("CartPole-v1")])

    model = PPO("MlpPolicy", env(), n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    evaluator = Evaluator(env, 128, 512, 2, True, lambda r: r, seed=0)
    with pytest.raises(NonFiniteError, match=r"non-finite parameter 'mlp_extractor.value_net.0.weight' at step 256"):
        model.learn(512, callback=[Poison(at=200), evaluator])
    assert evaluator.curve["step"] == [0, 128]


def test_the_first_non_finite_parameter_is_named():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    assert non_finite_parameter(net) is None
    with torch.no_grad():
        net[2].bias[1] = float("inf")
        assert non_finite_parameter(net) == "2.bias"
        net[0].weight[3, 2] = float("nan")
    assert non_finite_parameter(net) == "0.weight"  # the first in the module's order, not the first made
    assert non_finite_parameter(torch.nn.Tanh()) is None  # no parameters
