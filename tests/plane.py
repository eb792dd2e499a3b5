"""A family of one's own acting in a MultiDiscrete or a MultiBinary space (the tests of PPO's multi-actions,
per process and batched)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltransfer.envs import Family, Parameter, register_family

KINDS = {
    "plane-md": spaces.MultiDiscrete([3, 3]),
    "plane-mb": spaces.MultiBinary(4),
}


class Plane(gym.Env):
    """A point on a plane pushed along both axes at once, rewarded for staying near the origin. MultiDiscrete
    ``[3, 3]``: each axis's push left, none or right; MultiBinary ``4``: left, right, down, up, each pressed or
    not."""

    def __init__(self, gain: float = 1.0, action_space: spaces.Space = KINDS["plane-md"]):
        self.gain = gain
        self.observation_space = spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-2, 2, 2)
        return self.pos.astype(np.float32), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)), action
        a = np.asarray(action, dtype=np.float64)
        push = a[[1, 3]] - a[[0, 2]] if isinstance(self.action_space, spaces.MultiBinary) else a - 1
        self.pos = np.clip(self.pos + 0.2 * self.gain * push, -10, 10)
        return self.pos.astype(np.float32), -float(np.abs(self.pos).sum()), False, False, {}


def plane_family(name: str, action_space: spaces.Space | None = None) -> Family:
    space = KINDS[name] if action_space is None else action_space
    return register_family(
        Family(
            name=name, parameters=[Parameter("gain", default=1.0, low=0.25, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(Plane(p["gain"], space), max_episode_steps=30),
            tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
            targets=["fast"], reward_threshold=-20.0,
        ),
        overwrite=True,
    )  # fmt: skip
