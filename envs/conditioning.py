"""How an agent knows which task it is in: the conditioned observation layout and vectors."""

from __future__ import annotations

from typing import cast

import numpy as np
from gymnasium import spaces

from rltransfer.observation_keys import CONTEXT, FLAT_ORDER, OBS, TASK

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
        OBS: obs_space,
        TASK: spaces.Box(0.0, 1.0, shape=(n_heads,), dtype=np.float32),
    }
    if vector is not None:
        entries[CONTEXT] = spaces.Box(-1.0, 1.0, shape=np.shape(vector), dtype=np.float32)
    return spaces.Dict(entries)


def flat_layout(space: spaces.Space) -> tuple[tuple[str, int], ...] | None:
    """Each entry's name and length in a flat observation (:data:`rltransfer.observation_keys.FLAT_ORDER`), when every entry
    of the Dict ``space`` is a vector (a 1-D Box); ``None`` otherwise (an image, say)."""
    if not isinstance(space, spaces.Dict):
        return None
    if not all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in space.spaces.values()):
        return None
    return tuple((key, int(cast(spaces.Box, space[key]).shape[0])) for key in FLAT_ORDER if key in space.spaces)


def flat_space(space: spaces.Dict, layout: tuple[tuple[str, int], ...]) -> spaces.Box:
    """One Box of the Dict's entries, in ``layout``'s order."""
    entries = [cast(spaces.Box, space[key]) for key, _ in layout]
    return spaces.Box(
        np.concatenate([e.low for e in entries]),
        np.concatenate([e.high for e in entries]),
        dtype=np.result_type(*[e.dtype for e in entries]),
    )


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
