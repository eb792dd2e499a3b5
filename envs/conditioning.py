"""How an agent knows which task it is in: the task-conditioned observation wrapper."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

CONDITIONINGS = ("none", "onehot", "context")


class TaskConditioning(gym.Wrapper):
    """Turns an env's observation into ``{"obs": obs, "context": vector, "task": one-hot head}``.

    ``context`` is the conditioning vector (absent with ``none``): a one-hot over the source
    tasks, or the task's normalised parameters. ``task`` is only used to route samples to
    their task's heads. ``info`` carries ``task`` (name) and ``task_id`` (head index).

    :param env: the task's environment.
    :param task_name: the task's name, reported in ``info``.
    :param task_id: index of the head that acts for this task.
    :param n_heads: number of heads of the agent.
    :param vector: the conditioning vector, or ``None`` for no conditioning.
    """

    def __init__(self, env: gym.Env, task_name: str, task_id: int, n_heads: int, vector: np.ndarray | None):
        super().__init__(env)
        if not 0 <= task_id < n_heads:
            raise ValueError(f"task_id {task_id} outside 0..{n_heads - 1}")
        self.task_name = task_name
        self.task_id = int(task_id)
        self.vector = None if vector is None else np.asarray(vector, dtype=np.float32)
        self.observation_space = conditioned_space(env.observation_space, n_heads, self.vector)

    def _wrap(self, obs: Any) -> dict[str, Any]:
        out = {"obs": obs, "task": task_onehot(self.task_id, self.observation_space["task"].shape[0])}
        if self.vector is not None:
            out["context"] = self.vector.copy()
        return out

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        info["task"], info["task_id"] = self.task_name, self.task_id
        return self._wrap(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["task"], info["task_id"] = self.task_name, self.task_id
        return self._wrap(obs), reward, terminated, truncated, info


def task_onehot(head: int, n_heads: int) -> np.ndarray:
    """The ``task`` entry of an observation: the one-hot of its head."""
    vec = np.zeros(n_heads, dtype=np.float32)
    vec[head] = 1.0
    return vec


def conditioned_space(obs_space: spaces.Space, n_heads: int, vector: np.ndarray | None) -> spaces.Dict:
    """The observation space of a task-conditioned env."""
    # ``task`` is the one-hot of the agent's head for this task: it routes samples to heads
    # (a float vector, so routing costs the policy no preprocessing).
    entries: dict[str, spaces.Space] = {
        "obs": obs_space,
        "task": spaces.Box(0.0, 1.0, shape=(n_heads,), dtype=np.float32),
    }
    if vector is not None:
        entries["context"] = spaces.Box(-1.0, 1.0, shape=np.shape(vector), dtype=np.float32)
    return spaces.Dict(entries)


def conditioning_vector(
    conditioning: str, context: np.ndarray, onehot_index: int | None, n_sources: int
) -> np.ndarray | None:
    """The vector a task's observations carry.

    :param conditioning: ``none`` | ``onehot`` | ``context``.
    :param context: the task's normalised parameters.
    :param onehot_index: the task's index among source tasks (``None`` for a held-out task,
        whose one-hot is all zeros: it is none of the sources).
    :param n_sources: number of source tasks.
    """
    if conditioning == "none":
        return None
    if conditioning == "context":
        return np.asarray(context, dtype=np.float32)
    if conditioning == "onehot":
        vec = np.zeros(n_sources, dtype=np.float32)
        if onehot_index is not None:
            vec[onehot_index] = 1.0
        return vec
    raise ValueError(f"conditioning '{conditioning}' unknown; allowed: {', '.join(CONDITIONINGS)}")
