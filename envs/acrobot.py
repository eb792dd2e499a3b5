"""Acrobot with different link lengths and masses.

Gymnasium's Acrobot keeps its physics in *class* attributes; they are shadowed on the instance
here, so two tasks live side by side. Each link's centre of mass stays at half its length and
its moment of inertia scales with ``m * l**2`` (both equal Gymnasium's values at the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from numpy import cos, pi, sin

from rltransfer.envs.family import Family, Parameter
from rltransfer.envs.vector import VectorPhysics, scalar_pow


def build_acrobot(params: Mapping[str, float]) -> gym.Env:
    """An ``Acrobot-v1`` env whose links use ``params``."""
    env = gym.make("Acrobot-v1")
    ac = cast(AcrobotEnv, env.unwrapped)
    ac.LINK_LENGTH_1 = params["link_length_1"]
    ac.LINK_LENGTH_2 = params["link_length_2"]
    ac.LINK_MASS_1 = params["link_mass_1"]
    ac.LINK_MASS_2 = params["link_mass_2"]
    ac.LINK_COM_POS_1 = ac.LINK_LENGTH_1 / 2
    ac.LINK_COM_POS_2 = ac.LINK_LENGTH_2 / 2
    # Gymnasium's _dsdt uses one LINK_MOI for both links; keep one, scaled by the mean m*l^2.
    ac.LINK_MOI = 0.5 * (ac.LINK_MASS_1 * ac.LINK_LENGTH_1**2 + ac.LINK_MASS_2 * ac.LINK_LENGTH_2**2)
    return env


class AcrobotVector(VectorPhysics):
    """N acrobots, each with its own links: Gymnasium's ``AcrobotEnv.step`` (``rk4`` over ``_dsdt``, the
    "book" dynamics, then ``wrap`` and ``bound``) with every scalar an array over the envs, the same
    operations in the same order. Gymnasium draws a fresh state in float32 and computes its first
    observation from it in float32; so does this (:attr:`fresh`)."""

    finishes_jointly = True  # _reset and _obs touch only the state fields

    max_episode_steps = 500  # Acrobot-v1's TimeLimit
    state_fields = ("state", "fresh")

    def __init__(self, params):
        super().__init__(params)
        p = self.params
        self.m1, self.m2 = p["link_mass_1"], p["link_mass_2"]
        self.l1 = p["link_length_1"]
        self.lc1, self.lc2 = p["link_length_1"] / 2, p["link_length_2"] / 2
        # Every x**2 of Gymnasium's (of a Python float or a NumPy scalar) is C's pow: scalar_pow, not x * x.
        self.moi = 0.5 * (self.m1 * scalar_pow(self.l1, 2) + self.m2 * scalar_pow(p["link_length_2"], 2))
        self.lc1_2, self.lc2_2, self.l1_2 = scalar_pow(self.lc1, 2), scalar_pow(self.lc2, 2), scalar_pow(self.l1, 2)
        self.state = np.zeros((self.n, 4))
        self.fresh = np.ones(self.n, dtype=bool)

    def _reset(self, index: np.ndarray) -> None:
        for i in index:
            self.state[i] = self.rngs[i].uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)
        self.fresh[index] = True

    def _dsdt(self, y: np.ndarray) -> np.ndarray:
        m1, m2, l1, lc1, lc2 = self.m1, self.m2, self.l1, self.lc1, self.lc2
        I1 = I2 = self.moi  # noqa: N806  (Gymnasium's names)
        g = 9.8
        a = y[-1]
        theta1, theta2, dtheta1, dtheta2 = y[0], y[1], y[2], y[3]
        d1 = m1 * self.lc1_2 + m2 * (self.l1_2 + self.lc2_2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
        d2 = m2 * (self.lc2_2 + l1 * lc2 * cos(theta2)) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * scalar_pow(dtheta2, 2) * sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * scalar_pow(dtheta1, 2) * sin(theta2) - phi2) / (
            m2 * self.lc2_2 + I2 - scalar_pow(d2, 2) / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack((dtheta1, dtheta2, ddtheta1, ddtheta2, np.zeros(self.n)))

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torque = np.asarray(AcrobotEnv.AVAIL_TORQUE, dtype=np.float64)[actions]
        y0 = np.concatenate((self.state.T, torque[None]))  # rk4 over [0, dt], one step
        dt = AcrobotEnv.dt - 0
        dt2 = dt / 2.0
        k1 = self._dsdt(y0)
        k2 = self._dsdt(y0 + dt2 * k1)
        k3 = self._dsdt(y0 + dt2 * k2)
        k4 = self._dsdt(y0 + dt * k3)
        ns = (y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))[:4]
        for row in (0, 1):  # wrap(x, -pi, pi)
            x = ns[row]
            while (x > pi).any():
                x = np.where(x > pi, x - 2 * pi, x)
            while (x < -pi).any():
                x = np.where(x < -pi, x + 2 * pi, x)
            ns[row] = x
        ns[2] = np.minimum(np.maximum(ns[2], -AcrobotEnv.MAX_VEL_1), AcrobotEnv.MAX_VEL_1)
        ns[3] = np.minimum(np.maximum(ns[3], -AcrobotEnv.MAX_VEL_2), AcrobotEnv.MAX_VEL_2)
        self.state = ns.T.copy()
        self.fresh[:] = False
        terminated = -cos(self.state[:, 0]) - cos(self.state[:, 1] + self.state[:, 0]) > 1.0
        return np.where(terminated, 0.0, -1.0), terminated

    def _obs(self) -> np.ndarray:
        s = np.where(self.fresh[:, None], self.state.astype(np.float32), self.state)  # float64, values of float32
        obs = np.stack((cos(s[:, 0]), sin(s[:, 0]), cos(s[:, 1]), sin(s[:, 1]), s[:, 2], s[:, 3]), axis=1)
        if self.fresh.any():  # a fresh state's cos and sin are float32's
            f = self.state[self.fresh].astype(np.float32)
            obs[self.fresh] = np.stack(
                (cos(f[:, 0]), sin(f[:, 0]), cos(f[:, 1]), sin(f[:, 1]), f[:, 2], f[:, 3]), axis=1
            )
        return obs.astype(np.float32)


ACROBOT = Family(
    name="acrobot",
    description="Acrobot-v1 with varied link lengths and masses",
    parameters=[
        Parameter("link_length_1", 1.0, 0.5, 2.0, "length of link 1 [m]"),
        Parameter("link_length_2", 1.0, 0.5, 2.0, "length of link 2 [m]"),
        Parameter("link_mass_1", 1.0, 0.5, 3.0, "mass of link 1 [kg]"),
        Parameter("link_mass_2", 1.0, 0.5, 3.0, "mass of link 2 [kg]"),
    ],
    build=build_acrobot,
    vector=AcrobotVector,
    tasks={
        "default": {},
        "short-links": {"link_length_1": 0.8, "link_length_2": 0.8},
        "long-links": {"link_length_1": 1.2, "link_length_2": 1.2},
        "heavy-tip": {"link_mass_2": 1.5},
        "light-tip": {"link_mass_2": 0.7},
        "mid": {"link_length_1": 1.1, "link_mass_2": 1.2},
        "heavy-long": {"link_length_1": 1.5, "link_length_2": 1.5, "link_mass_1": 2.0, "link_mass_2": 2.0},
    },
    source=["default", "short-links", "long-links", "heavy-tip", "light-tip"],
    targets={"mid": "interpolation", "heavy-long": "extrapolation"},
)

FAMILIES = [ACROBOT]
