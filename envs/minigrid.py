"""MiniGrid layouts: tasks that share the egocentric 7x7 view and differ in layout and size.

The observation is MiniGrid's encoded view (object, colour, state codes per cell), channels
first and as float32, ``Box(0, 10, (3, 7, 7))``: the ``cnn`` encoder reads it as is (SB3 would
otherwise treat a uint8 image as pixels and divide by 255). ``layout`` is a code: 0 Empty,
1 DoorKey, 2 LavaGap; ``size`` is the grid's side. MiniGrid's reward is
``1 - 0.9 * steps / max_steps`` on success, 0 otherwise; the family's threshold, 0.8, means
reaching the goal reliably within about a fifth of the allowed steps. MiniGrid is an optional
extra: ``pip install 'rltransfer[minigrid]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltransfer.envs.family import Family, Parameter, TaskError

LAYOUTS = ("empty", "doorkey", "lavagap")
MAX_CODE = 10.0  # largest MiniGrid object code (OBJECT_TO_IDX["lava"] == 9, "agent" == 10)


class ChannelsFirstView(gym.ObservationWrapper):
    """MiniGrid's ``image`` observation, as float32 channels-first codes."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        image = cast(spaces.Box, cast(spaces.Dict, env.observation_space)["image"])
        h, w, c = image.shape
        self.observation_space = spaces.Box(0.0, MAX_CODE, shape=(c, h, w), dtype=np.float32)

    def observation(self, observation):
        return np.ascontiguousarray(np.transpose(observation["image"], (2, 0, 1)), dtype=np.float32)


def build_minigrid(params: Mapping[str, float]) -> gym.Env:
    """A MiniGrid env of the given ``layout`` code and ``size``."""
    try:
        from minigrid.envs import DoorKeyEnv, EmptyEnv, LavaGapEnv
    except ImportError as err:
        raise TaskError("the minigrid family needs MiniGrid: pip install 'rltransfer[minigrid]'") from err
    size = int(params["size"])
    layout = LAYOUTS[int(params["layout"])]
    env = {"empty": EmptyEnv, "doorkey": DoorKeyEnv, "lavagap": LavaGapEnv}[layout](size=size)
    return ChannelsFirstView(env)


MINIGRID = Family(
    name="minigrid",
    description="MiniGrid Empty / DoorKey / LavaGap layouts of several sizes (7x7 egocentric view)",
    parameters=[
        Parameter("layout", 1, 0, 2, "0 Empty, 1 DoorKey, 2 LavaGap", integer=True),
        Parameter("size", 5, 5, 10, "grid side, walls included", integer=True),
    ],
    build=build_minigrid,
    tasks={
        "empty-5": {"layout": 0, "size": 5},
        "empty-6": {"layout": 0, "size": 6},
        "empty-8": {"layout": 0, "size": 8},
        "doorkey-5": {"layout": 1, "size": 5},
        "doorkey-6": {"layout": 1, "size": 6},
        "doorkey-8": {"layout": 1, "size": 8},
        "lavagap-5": {"layout": 2, "size": 5},
        "lavagap-6": {"layout": 2, "size": 6},
        "lavagap-7": {"layout": 2, "size": 7},
    },
    source=["empty-5", "empty-8", "doorkey-5", "lavagap-5", "lavagap-6"],
    # An Empty room between the two source Empty rooms; a bigger DoorKey than any source, and a LavaGap
    # bigger than any source LavaGap.
    targets={
        "empty-6": "interpolation",
        "doorkey-6": "extrapolation",
        "doorkey-8": "extrapolation",
        "lavagap-7": "extrapolation",
    },
    reward_threshold=0.8,
    threshold_note="MiniGrid has none; 0.8 = reaching the goal within about 22% of max_steps",
)

FAMILIES = [MINIGRID]
