"""What SB3 itself pays for dictionary observations: plain SB3 DQN on CartPole with the raw observation,
with 10 more entries in one flat Box (the size of rltransfer's conditioning and routing entries), and with a
Dict of the same entries (what PPO and image agents see; DQN and SAC on vectors get the flat Box). Same
network, fused Adam, one torch thread, 10 envs; repetitions alternate between the arms.

    python benchmarks/dict_observation_cost.py [--steps 20480] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.agents import MlpEncoder


class FlatExtra(gym.ObservationWrapper):
    """The observation and 10 zeros in one Box."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        shape = env.observation_space.shape
        assert shape is not None
        self.observation_space = spaces.Box(-np.inf, np.inf, (shape[0] + 10,), np.float32)

    def observation(self, obs):
        return np.concatenate([obs, np.zeros(10, np.float32)]).astype(np.float32)


class DictExtra(gym.ObservationWrapper):
    """The observation and two 5-entry vectors as a Dict, as rltransfer's ``obs``/``context``/``task``."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {"obs": env.observation_space, "context": spaces.Box(-1, 1, (5,)), "task": spaces.Box(0, 1, (5,))}
        )

    def observation(self, obs):
        return {"obs": obs, "context": np.zeros(5, np.float32), "task": np.zeros(5, np.float32)}


def run(wrap, policy: str, steps: int, seed: int) -> float:
    env = DummyVecEnv([lambda: wrap(Monitor(gym.make("CartPole-v1"))) for _ in range(10)])
    model = DQN(
        policy, env, seed=seed, device="cpu",
        policy_kwargs=dict(features_extractor_class=MlpEncoder,
                           features_extractor_kwargs=dict(hidden=[64], activation="relu"),
                           net_arch=[64], optimizer_kwargs=dict(fused=True)),
    )  # fmt: skip
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_480)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    arms = {
        "raw Box": (lambda e: e, "MlpPolicy"),
        "flat Box +10": (FlatExtra, "MlpPolicy"),
        "Dict of 3 keys": (DictExtra, "MultiInputPolicy"),
    }
    res: dict[str, list[float]] = {k: [] for k in arms}
    for rep in range(args.reps):
        for name, (wrap, policy) in arms.items():
            res[name].append(run(wrap, policy, args.steps, rep))
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["raw Box"]
    for name, value in med.items():
        print(f"{name:<16} {value:8.0f} env steps/s  ({value / base:.3f} of raw)")


if __name__ == "__main__":
    main()
