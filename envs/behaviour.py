"""What a task's env does, measured: a short rollout of seeded random actions from a seeded reset.

The family checks compare such rollouts (does the env repeat itself, does a parameter change it), and an
experiment keeps each task's rollout summed up, step by step, beside its results (its spaces and parameters
too): finished work is re-used only where the env still does what it did when the work was made, so that an
edited env (its reward, its dynamics, a task's parameters) is not met with results of the env before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

STEPS = 50
"""The rollout's length: long enough to pass through a reward or a termination, short enough that rounding on
another kind of CPU stays far below what a change to the env moves."""


@dataclass(frozen=True)
class Rollout:
    """The observations as the env returned them (the observation of every reset among them), and each step's
    reward and whether its episode ended there (terminated or truncated)."""

    observations: list[Any]
    rewards: list[float]
    ends: list[bool]

    def same_as(self, other: Rollout) -> bool:
        """Whether ``other`` is this rollout to the bit (an env that repeats itself from its seeds)."""
        return (
            self.rewards == other.rewards
            and self.ends == other.ends
            and len(self.observations) == len(other.observations)
            and all(np.array_equal(a, b) for a, b in zip(self.flat(), other.flat()))
        )

    def flat(self) -> list[np.ndarray]:
        """Each observation flattened to float64."""
        return [np.asarray(obs, dtype=float).ravel() for obs in self.observations]

    def sums(self) -> list[list[float]]:
        """Each observation summed up: the sum of its entries, of their squares, and of the entries weighted
        by ``sin(1), sin(2), ...`` (a change that moves entries among themselves changes it). An image's
        summary is as short as a vector's."""
        out = []
        for obs in self.flat():
            weights = np.sin(np.arange(1, obs.size + 1, dtype=np.float64))
            out.append([float(obs.sum()), float(np.dot(obs, obs)), float(np.dot(obs, weights))])
        return out


def rollout(env: gym.Env, seed: int = 0, steps: int = STEPS) -> Rollout:
    """``steps`` random actions (the action space seeded with ``seed``) from a reset with ``seed``; where an
    episode ends, a reset with the next seed."""
    space = env.action_space
    space.seed(seed)
    obs, _ = env.reset(seed=seed)
    observations = [obs]
    rewards, ends = [], []
    episode = 0
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(space.sample())
        observations.append(obs)
        rewards.append(float(reward))
        ends.append(bool(terminated or truncated))
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
            observations.append(obs)
    return Rollout(observations, rewards, ends)
