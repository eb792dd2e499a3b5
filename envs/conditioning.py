"""How an agent knows which task it is in: the conditioned observation layout and vectors."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

CONDITIONINGS = ("none", "onehot", "context")


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
