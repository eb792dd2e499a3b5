"""MountainCar with a different engine force and gravity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

from rltransfer.envs.family import Family, Parameter


def build_mountaincar(params: Mapping[str, float]) -> gym.Env:
    """A ``MountainCar-v0`` env with engine ``force`` and ``gravity``."""
    env = gym.make("MountainCar-v0")
    mc = cast(MountainCarEnv, env.unwrapped)
    mc.force = params["force"]
    mc.gravity = params["gravity"]
    return env


MOUNTAINCAR = Family(
    name="mountaincar",
    description="MountainCar-v0 with varied engine force and gravity",
    parameters=[
        Parameter("force", 0.001, 0.0005, 0.002, "engine force per step"),
        Parameter("gravity", 0.0025, 0.0015, 0.0035, "gravity term per step"),
    ],
    build=build_mountaincar,
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
