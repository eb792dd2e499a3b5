"""A family across classic-control environments of different observation and action spaces:
CartPole (4 observations, 2 actions), Acrobot (6, 3) and MountainCar (2, 3).

Its tasks cannot share one input layer or one output layer: the multi-task agent gets a per-task
input stem and per-task heads sized to each task (see :mod:`rltransfer.envs.mixed`), in front of and
behind a shared encoder and trunk.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym

from rltransfer.envs.acrobot import ACROBOT
from rltransfer.envs.cartpole import CARTPOLE
from rltransfer.envs.family import Family, Parameter
from rltransfer.envs.mountaincar import MOUNTAINCAR


def build_classic(params: Mapping[str, float]) -> gym.Env:
    """Environment ``env`` (0 CartPole, 1 Acrobot, 2 MountainCar) with its size scaled by ``scale``:
    CartPole's pole length, Acrobot's link lengths, MountainCar's engine force."""
    env, scale = int(params["env"]), float(params["scale"])
    if env == 0:
        return CARTPOLE.make({"length": 0.5 * scale})
    if env == 1:
        return ACROBOT.make({"link_length_1": 1.0 * scale, "link_length_2": 1.0 * scale})
    return MOUNTAINCAR.make({"force": 0.001 * scale})


CLASSIC = Family(
    name="classic",
    description="CartPole, Acrobot and MountainCar in one family: observations and actions of different sizes",
    parameters=[
        Parameter("env", 0, 0, 2, "0 CartPole, 1 Acrobot, 2 MountainCar", integer=True),
        Parameter("scale", 1.0, 0.8, 1.6, "pole length / link lengths / engine force, relative to the default"),
    ],
    build=build_classic,
    tasks={
        "cartpole": {"env": 0},
        "cartpole-mid": {"env": 0, "scale": 1.3},
        "cartpole-long": {"env": 0, "scale": 1.6},
        "acrobot": {"env": 1},
        "acrobot-short": {"env": 1, "scale": 0.8},
        "acrobot-long": {"env": 1, "scale": 1.25},
        "mountaincar": {"env": 2},
    },
    source=["cartpole", "cartpole-long", "acrobot-short"],
    # cartpole-mid: a pole between the two source poles; acrobot-long: an observation length and action
    # count seen among the sources (its stem and head can start from acrobot-short's); mountaincar: a new
    # observation length (a new stem).
    targets={"cartpole-mid": "interpolation", "acrobot-long": "extrapolation", "mountaincar": "extrapolation"},
)

FAMILIES = [CLASSIC]
