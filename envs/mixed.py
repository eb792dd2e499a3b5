"""Tasks whose observation or action spaces differ: one shared (padded) layout for a vector env.

SB3's vector envs and buffers need one observation and one action space. Tasks with vector
observations of different lengths, or with different numbers of discrete actions, are brought to
the largest: observations are zero-padded at the end, and actions are drawn from the largest
``Discrete``. The agent sees, per task, how many observation entries are real (its input stem reads
only those) and which actions exist (its head never picks the others). An action a task does not
have (a random exploration step of DQN, say) is folded back into its range (``a mod n``).

Float ``Box`` observations of one shape and dtype whose bounds alone differ (a parameter that sets a
bound, as CartPole's track length sets its position's) share one layout as they are: SB3's policies do
not read a float Box's bounds. The layout declares the widest, and the tasks' spaces do not differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SpaceError(ValueError):
    """Tasks whose spaces cannot share one layout."""


@dataclass(frozen=True)
class TaskSpaces:
    """The shared layout of several tasks' spaces."""

    observation: spaces.Space
    """The shared observation space (a padded 1-D Box where the tasks' differ)."""
    action: spaces.Space
    obs_dims: tuple[int, ...]
    """Each task's own observation length (the rest of ``observation`` is padding)."""
    action_dims: tuple[int, ...]
    """Each task's own number of discrete actions."""
    mixed: bool
    """Whether the tasks' spaces differ (then stems and action masks are needed)."""


def merge_spaces(names: Sequence[str], obs: Sequence[spaces.Space], act: Sequence[spaces.Space]) -> TaskSpaces:
    """One layout for tasks ``names`` with observation spaces ``obs`` and action spaces ``act``.

    Identical spaces merge trivially. Otherwise every observation must be a 1-D float ``Box`` and
    every action space ``Discrete`` (or all of them the same ``Box``, ``MultiDiscrete`` or ``MultiBinary``): a
    clear error names two tasks that cannot share one.
    """
    if all(same_layout(o, obs[0]) for o in obs) and all(a == act[0] for a in act):
        n = act[0].n if isinstance(act[0], spaces.Discrete) else 0
        dim = int(np.prod(obs[0].shape)) if isinstance(obs[0], spaces.Box) else 0
        return TaskSpaces(widest(obs), act[0], (dim,) * len(names), (int(n),) * len(names), False)
    odd = next((i for i, o in enumerate(obs) if not isinstance(o, spaces.Box) or len(o.shape) != 1), None)
    if odd is not None:  # a layout pads vectors only: an image or a discrete observation stays as it is
        differ = next((i for i, o in enumerate(obs) if o != obs[odd]), None)
        if differ is not None:
            raise SpaceError(
                f"tasks '{names[odd]}' and '{names[differ]}' observe {obs[odd]} and {obs[differ]}: tasks whose "
                "observations differ need 1-D Box ones (zero-padded to the longest); an image, or a Discrete, "
                "MultiDiscrete or MultiBinary observation, must be the same for every task"
            )
        first = next(i for i, a in enumerate(act) if a != act[0])
        raise SpaceError(
            f"tasks '{names[0]}' and '{names[first]}' act in {act[0]} and {act[first]}: tasks whose actions differ "
            f"need 1-D Box observations (each task's input stem reads its own), not {obs[0]}"
        )
    boxes = [o for o in obs if isinstance(o, spaces.Box)]  # every one (checked above)
    discrete = [a for a in act if isinstance(a, spaces.Discrete)]
    if len(discrete) == len(act):
        if any(int(a.start) != 0 for a in discrete):
            raise SpaceError("tasks of different action spaces need Discrete actions starting at 0")
        action: spaces.Space = spaces.Discrete(max(int(a.n) for a in discrete))
        action_dims = tuple(int(a.n) for a in discrete)
    elif all(a == act[0] for a in act):
        action, action_dims = act[0], (0,) * len(names)
    else:
        first = next(i for i, a in enumerate(act) if a != act[0])
        bounds = isinstance(act[0], spaces.Box) and isinstance(act[first], spaces.Box) and act[0].shape == act[first].shape  # fmt: skip
        raise SpaceError(
            f"tasks '{names[0]}' and '{names[first]}' have action spaces {act[0]} and {act[first]}: tasks may "
            f"differ in their number of Discrete actions, not in {type(act[first]).__name__} actions (their "
            "action spaces must be equal)"
            + (
                "; where a parameter sets the actions' range, give every task one Box: rescale each task's actions "
                "to [-1, 1] in the family's build (gymnasium.wrappers.RescaleAction(env, -1.0, 1.0): an action is "
                "then a fraction of the task's own range), or declare the widest range and clip in the env's step"
                if bounds
                else ""
            )
        )
    dims = tuple(int(o.shape[0]) for o in boxes)
    width = max(dims)
    low = np.zeros(width, dtype=np.float32)
    high = np.zeros(width, dtype=np.float32)
    low[:] = np.min([np.pad(np.asarray(o.low, np.float32), (0, width - len(o.low))) for o in boxes], axis=0)
    high[:] = np.max([np.pad(np.asarray(o.high, np.float32), (0, width - len(o.high))) for o in boxes], axis=0)
    return TaskSpaces(spaces.Box(low, high, dtype=np.float32), action, dims, action_dims, True)


def same_layout(a: spaces.Space | None, b: spaces.Space | None) -> bool:
    """Whether observation spaces ``a`` and ``b`` are one to SB3's policies: equal, or float Boxes of one shape
    and dtype (whose bounds the policies do not read)."""
    if a == b:
        return True
    return (
        isinstance(a, spaces.Box)
        and isinstance(b, spaces.Box)
        and a.shape == b.shape
        and a.dtype == b.dtype
        and np.issubdtype(a.dtype, np.floating)
    )


def widest(boxes: Sequence[spaces.Space]) -> spaces.Space:
    """The first of spaces that share one layout (:func:`same_layout`), with the lowest low and highest high of
    each entry where their bounds differ."""
    first = boxes[0]
    if all(b == first for b in boxes):
        return first
    low = np.min([cast(spaces.Box, b).low for b in boxes], axis=0)
    high = np.max([cast(spaces.Box, b).high for b in boxes], axis=0)
    return spaces.Box(low, high, dtype=cast(spaces.Box, first).dtype)


def widen_bounds(env: gym.Env, space: spaces.Box) -> gym.Env:
    """``env`` declaring ``space``, a float Box of its shape and dtype with wider bounds (Gymnasium's
    ``TransformObservation``); the observations are the env's own."""
    return gym.wrappers.TransformObservation(env, _unchanged, space)


def _unchanged(observation: np.ndarray) -> np.ndarray:
    return observation


class PadObservation(gym.ObservationWrapper):
    """Zero-pads a 1-D observation to ``width`` entries (float32)."""

    def __init__(self, env: gym.Env, space: spaces.Box):
        super().__init__(env)
        self.observation_space = space
        self._pad = int(space.shape[0]) - int(cast(spaces.Box, env.observation_space).shape[0])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.pad(np.asarray(observation, dtype=np.float32), (0, self._pad))


class FoldAction(gym.ActionWrapper):
    """Accepts actions of a larger ``Discrete``; an action the task does not have becomes ``a mod n``."""

    def __init__(self, env: gym.Env, space: spaces.Discrete):
        super().__init__(env)
        self.action_space = space
        self._n = int(cast(spaces.Discrete, env.action_space).n)

    def action(self, action):
        return int(action) % self._n


def fit_to(env: gym.Env, layout: TaskSpaces) -> gym.Env:
    """``env`` with the shared layout's spaces (unchanged when they are its own)."""
    if env.observation_space != layout.observation and same_layout(env.observation_space, layout.observation):
        env = widen_bounds(env, cast(spaces.Box, layout.observation))  # the tasks' float Boxes' bounds differ
    elif env.observation_space != layout.observation:  # only where the tasks' differ: a padded Box
        env = PadObservation(env, cast(spaces.Box, layout.observation))
    if env.action_space != layout.action:  # likewise a larger Discrete
        env = FoldAction(env, cast(spaces.Discrete, layout.action))
    return env
