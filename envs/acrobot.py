"""Acrobot with different link lengths and masses.

Gymnasium's Acrobot keeps its physics in *class* attributes; they are shadowed on the instance
here, so two tasks live side by side. Each link's centre of mass stays at half its length and
its moment of inertia scales with ``m * l**2`` (both equal Gymnasium's values at the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from rltransfer.envs.family import Family, Parameter


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
