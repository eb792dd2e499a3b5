"""CartPole with a different pole, cart, gravity and push force.

Gymnasium's CartPole caches ``total_mass`` and ``polemass_length`` in ``__init__``; both are
recomputed here from the new masses and length, on the instance only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from rltransfer.envs.family import Family, Parameter
from rltransfer.envs.vector import VectorPhysics


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


_REF = CartPoleEnv()  # Gymnasium's constants (time step, bounds), read, not restated


class CartPoleVector(VectorPhysics):
    """N CartPoles, each with its own pole, cart, gravity and push force, stepped as arrays: Gymnasium's
    ``CartPoleEnv.step`` (Euler integration) with every scalar an array over the envs, the same operations
    in the same order (the same bits)."""

    finishes_jointly = True  # _reset and _obs touch only the state fields

    max_episode_steps = 500  # CartPole-v1's TimeLimit

    def __init__(self, params):
        super().__init__(params)
        p = self.params
        self.total_mass = p["masspole"] + p["masscart"]
        self.polemass_length = p["masspole"] * p["length"]
        self.state = np.zeros((self.n, 4))

    def _reset(self, index: np.ndarray) -> None:
        for i in index:
            self.state[i] = self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,))

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, tau = self.params, _REF.tau
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, p["force_mag"], -p["force_mag"])
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (p["gravity"] * sintheta - costheta * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * np.square(costheta) / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + tau * x_dot
        x_dot = x_dot + tau * xacc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * thetaacc
        self.state = np.stack((x, x_dot, theta, theta_dot), axis=1)
        terminated = (
            (x < -_REF.x_threshold) | (x > _REF.x_threshold)
            | (theta < -_REF.theta_threshold_radians) | (theta > _REF.theta_threshold_radians)
        )  # fmt: skip
        return np.ones(self.n), terminated

    def _obs(self) -> np.ndarray:
        return self.state.astype(np.float32)


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
    vector=CartPoleVector,
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
