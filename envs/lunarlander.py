"""LunarLander with different gravity, wind and turbulence (discrete and continuous actions).

Gymnasium's LunarLander takes these as constructor arguments and stores them on the instance
(its Box2D world is per instance), so several landers with different gravity share a process.
Box2D is an optional extra: ``pip install rltransfer[box2d]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym

from rltransfer.envs.family import Family, Parameter, TaskError


def _build(params: Mapping[str, float], continuous: bool) -> gym.Env:
    try:
        import Box2D  # noqa: F401
    except ImportError as err:
        raise TaskError("the lunarlander families need Box2D: pip install 'rltransfer[box2d]'") from err
    wind, turbulence = params["wind_power"], params["turbulence_power"]
    return gym.make(
        "LunarLander-v3",
        continuous=continuous,
        gravity=params["gravity"],
        enable_wind=wind > 0 or turbulence > 0,
        wind_power=wind,
        turbulence_power=turbulence,
    )


def build_lunarlander(params: Mapping[str, float]) -> gym.Env:
    """A discrete-action ``LunarLander-v3`` env."""
    return _build(params, continuous=False)


def build_lunarlander_continuous(params: Mapping[str, float]) -> gym.Env:
    """A continuous-action ``LunarLander-v3`` env."""
    return _build(params, continuous=True)


PARAMETERS = [
    # Gymnasium asserts -12 < gravity < 0.
    Parameter("gravity", -10.0, -11.9, -2.0, "gravity [m/s^2], negative is down"),
    Parameter("wind_power", 0.0, 0.0, 20.0, "maximum wind force (0: no wind)"),
    Parameter("turbulence_power", 0.0, 0.0, 2.0, "maximum rotational turbulence"),
]
TASKS = {
    "default": {},
    "low-gravity": {"gravity": -6.0},
    "high-gravity": {"gravity": -11.5},
    "breeze": {"wind_power": 5.0, "turbulence_power": 0.5},
    "mid": {"gravity": -8.0, "wind_power": 3.0, "turbulence_power": 0.3},
    "windy": {"wind_power": 15.0, "turbulence_power": 1.5},
    "moon": {"gravity": -3.0},
}
SOURCE = ["default", "low-gravity", "high-gravity", "breeze"]
TARGETS = {"mid": "interpolation", "windy": "extrapolation", "moon": "extrapolation"}

LUNARLANDER = Family(
    name="lunarlander",
    description="LunarLander-v3 (discrete) with varied gravity, wind and turbulence",
    parameters=PARAMETERS,
    build=build_lunarlander,
    tasks=TASKS,
    source=SOURCE,
    targets=TARGETS,
    reward_threshold=200.0,
)
LUNARLANDER_CONTINUOUS = Family(
    name="lunarlander-continuous",
    description="LunarLander-v3 (continuous) with varied gravity, wind and turbulence",
    parameters=PARAMETERS,
    build=build_lunarlander_continuous,
    tasks=TASKS,
    source=SOURCE,
    targets=TARGETS,
    reward_threshold=200.0,
)

FAMILIES = [LUNARLANDER, LUNARLANDER_CONTINUOUS]
