"""MountainCar with a different engine force and gravity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

from rltransfer.envs.family import Family, Parameter
from rltransfer.envs.vector import VectorPhysics


def build_mountaincar(params: Mapping[str, float]) -> gym.Env:
    """A ``MountainCar-v0`` env with engine ``force`` and ``gravity``."""
    env = gym.make("MountainCar-v0")
    mc = cast(MountainCarEnv, env.unwrapped)
    mc.force = params["force"]
    mc.gravity = params["gravity"]
    return env


_REF = MountainCarEnv()  # Gymnasium's constants (bounds, goal), read, not restated


class MountainCarVector(VectorPhysics):
    """N mountain cars, each with its own engine force and gravity: Gymnasium's ``MountainCarEnv.step`` with
    every scalar an array over the envs, the same operations in the same order."""

    finishes_jointly = True  # _reset and _obs touch only the state fields

    max_episode_steps = 200  # MountainCar-v0's TimeLimit

    def __init__(self, params):
        super().__init__(params)
        self.state = np.zeros((self.n, 2))

    def _reset(self, index: np.ndarray) -> None:
        for i in index:
            self.state[i] = np.array([self.rngs[i].uniform(low=-0.6, high=-0.4), 0])

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        position, velocity = self.state.T
        velocity = velocity + ((actions - 1) * self.params["force"] + np.cos(3 * position) * (-self.params["gravity"]))
        velocity = np.clip(velocity, -_REF.max_speed, _REF.max_speed)
        position = position + velocity
        position = np.clip(position, _REF.min_position, _REF.max_position)
        velocity = np.where((position == _REF.min_position) & (velocity < 0), 0.0, velocity)
        terminated = (position >= _REF.goal_position) & (velocity >= _REF.goal_velocity)
        self.state = np.stack((position, velocity), axis=1)
        return np.full(self.n, -1.0), terminated

    def _obs(self) -> np.ndarray:
        return self.state.astype(np.float32)


MOUNTAINCAR = Family(
    name="mountaincar",
    description="MountainCar-v0 with varied engine force and gravity",
    parameters=[
        Parameter("force", 0.001, 0.0005, 0.002, "engine force per step"),
        Parameter("gravity", 0.0025, 0.0015, 0.0035, "gravity term per step"),
    ],
    build=build_mountaincar,
    vector=MountainCarVector,
    tasks={
        "default": {},
        "strong": {"force": 0.0013},
        "flat": {"gravity": 0.002},
        "strong-flat": {"force": 0.0013, "gravity": 0.002},
        "mid": {"force": 0.00115, "gravity": 0.00225},
        "weak-steep": {"force": 0.0009, "gravity": 0.0027},
    },
    source=["default", "strong", "flat", "strong-flat"],
    targets={"mid": "interpolation", "weak-steep": "extrapolation"},
)

FAMILIES = [MOUNTAINCAR]
