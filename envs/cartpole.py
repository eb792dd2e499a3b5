"""CartPole with a different pole, cart, gravity and push force.

Gymnasium's CartPole caches ``total_mass`` and ``polemass_length`` in ``__init__``; both are
recomputed here from the new masses and length, on the instance only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rltransfer.envs.family import Family, Parameter


def build_cartpole(params: Mapping[str, float]) -> gym.Env:
    """A ``CartPole-v1`` env whose physics use ``params`` (``length`` is the half-length)."""
    env = gym.make("CartPole-v1")
    cp = cast(CartPoleEnv, env.unwrapped)
    cp.length = params["length"]
    cp.masspole = params["masspole"]
    cp.masscart = params["masscart"]
    cp.gravity = params["gravity"]
    cp.force_mag = params["force_mag"]
    recompute(cp, params)
    return env


def recompute(cp: CartPoleEnv, params: Mapping[str, float]) -> None:
    """The quantities CartPole derives from its masses and length in ``__init__``, again (a family
    declared as data over ``CartPole-v1`` names this as its ``derived`` hook)."""
    cp.total_mass = cp.masspole + cp.masscart
    cp.polemass_length = cp.masspole * cp.length


PARAMETERS = [
    Parameter("length", 0.5, 0.1, 3.0, "half the pole's length [m]"),
    Parameter("masspole", 0.1, 0.01, 1.0, "pole mass [kg]"),
    Parameter("masscart", 1.0, 0.2, 5.0, "cart mass [kg]"),
    Parameter("gravity", 9.8, 2.0, 20.0, "gravity [m/s^2]"),
    Parameter("force_mag", 10.0, 2.0, 30.0, "push force [N]"),
]

CARTPOLE = Family(
    name="cartpole",
    description="CartPole-v1 with varied pole length and mass, cart mass, gravity and push force",
    parameters=PARAMETERS,
    build=build_cartpole,
    tasks={
        "default": {},
        "short": {"length": 0.3},
        "long": {"length": 0.8},
        "light-gravity": {"gravity": 6.0},
        "heavy-gravity": {"gravity": 13.0},
        "heavy-pole": {"masspole": 0.4},
        "medium": {"length": 0.6, "gravity": 11.0},
        "very-long-heavy": {"length": 1.6, "gravity": 16.0, "masspole": 0.3},
        "weak-push": {"force_mag": 4.0, "length": 1.0},
    },
    source=["short", "default", "long", "light-gravity", "heavy-gravity"],
    targets={
        "medium": "interpolation",
        "very-long-heavy": "extrapolation",
        "weak-push": "extrapolation",
    },
)

FAMILIES = [CARTPOLE]
