"""What a task's env does, measured: a short rollout of seeded random actions from a seeded reset.

The family checks compare such rollouts (does the env repeat itself, does a parameter change it), and an
experiment keeps each task's rollout summed up, step by step, beside its results (its spaces and parameters
too): finished work is re-used only where the env still does what it did when the work was made, so that an
edited env (its reward, its dynamics, a task's parameters) is not met with results of the env before.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltransfer.envs.family import TaskError

STEPS = 50
"""The rollout's length: long enough to pass through a reward or a termination, short enough that rounding on
another kind of CPU stays far below what a change to the env moves."""

RESET, STEP = "observation, info", "observation, reward, terminated, truncated, info"


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


def observation_problem(space: spaces.Space, obs: Any) -> str | None:
    """What is wrong with ``obs`` as an observation of ``space`` that SB3 would fail on, or train on as other
    numbers (None: nothing): a vector of another shape, a non-finite entry, a discrete value outside ``0 .. n-1``.
    Not every departure from ``space.contains``: a value past a Box's bounds, or an observation of another
    dtype, SB3 takes as it is."""
    if isinstance(space, spaces.Dict):
        return _entry_problem(space, obs)
    if isinstance(space, spaces.Box):
        if np.shape(obs) != space.shape:
            return f"an observation of shape {np.shape(obs)}, where its observation_space is {space}"
        if not np.isfinite(np.asarray(obs, dtype=float)).all():
            return f"a non-finite observation {np.asarray(obs).tolist()}"
    elif isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        n = np.asarray(space.n if isinstance(space, spaces.Discrete) else space.nvec)
        start, values = np.asarray(space.start), np.asarray(obs)
        if values.shape != n.shape or not np.issubdtype(values.dtype, np.number):
            return f"an observation {values.tolist()!r}, where its observation_space is {space}"
        if not ((values >= start) & (values < start + n) & (values == np.round(values))).all():
            values_from = "0 to n - 1" if not start.any() else "start to start + n - 1"
            return f"an observation {values.tolist()} outside its observation_space {space} (values {values_from})"
    elif isinstance(space, spaces.MultiBinary) and np.shape(obs) != space.shape:
        return f"an observation of shape {np.shape(obs)}, where its observation_space is {space}"
    return None


def _entry_problem(space: spaces.Dict, obs: Any) -> str | None:
    """:func:`observation_problem` of a Dict observation: its keys, then each entry's."""
    if not isinstance(obs, dict) or set(obs) != set(space.spaces):
        keys = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
        return f"an observation of {keys}, where its observation_space is a Dict of {sorted(space.spaces)}"
    for key, entry in space.spaces.items():
        if (problem := observation_problem(entry, obs[key])) is not None:
            return f"in its entry '{key}' {problem}"
    return None


def reward_problem(reward: Any) -> str | None:
    """What is wrong with a step's ``reward`` (None: nothing): one number, finite."""
    try:
        value = float(reward)
    except (TypeError, ValueError):
        shape = f" of shape {np.shape(reward)}" if isinstance(reward, np.ndarray) else ""
        return f"a reward of type {type(reward).__name__}{shape} ({reward!r}), where a step's reward is one number"
    return None if math.isfinite(value) else f"a non-finite reward ({value})"


def _returned(result: Any, what: str, names: str) -> tuple[Any, ...]:
    """``result`` of the env's ``what`` as the tuple Gymnasium's API returns (``names``), or :class:`TaskError`."""
    if not isinstance(result, tuple) or len(result) != len(names.split(", ")):
        size = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise TaskError(f"{what} returned {size}, where Gymnasium's API returns ({names}) (gym's old API?)")
    return result


def raised(err: BaseException) -> str:
    """An exception in its own words, with the file and line that raised it (the env's own code, say)."""
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{type(err).__name__}: {err} (raised at {frame.filename}:{frame.lineno})"


def _call(what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``method(*args, **kwargs)`` of the env; an exception it raises as :class:`TaskError` naming ``what`` and
    where it was raised, instead of a traceback from whichever check called it first."""
    try:
        return method(*args, **kwargs)
    except Exception as err:
        raise TaskError(f"{what} raised {raised(err)}") from err


def _checked(env: gym.Env, where: str, obs: Any, reward: Any = 0.0, info: Any = None) -> None:
    """:class:`TaskError` saying what ``env`` returned ``where`` that the pipeline cannot take."""
    problem = observation_problem(env.observation_space, obs) or reward_problem(reward)
    if problem is None and not isinstance(info, dict):
        problem = f"an info of type {type(info).__name__}, where Gymnasium's reset and step return a dict"
    if problem is not None:
        raise TaskError(f"{where} returned {problem}")


def rollout(env: gym.Env, seed: int = 0, steps: int = STEPS) -> Rollout:
    """``steps`` random actions (the action space seeded with ``seed``) from a reset with ``seed``; where an
    episode ends, a reset with the next seed.

    Raises :class:`TaskError` where the env returns what SB3 cannot take or would misread, naming the step: a
    reward that is not one finite number, an observation not of its space's shape, not finite, or outside a
    discrete space, an info that is not a dict (:func:`observation_problem`, :func:`reward_problem`); and where
    the env's reset or step raises, naming the call and the env's line that raised."""
    space = env.action_space
    space.seed(seed)
    obs, info = _returned(_call(f"reset(seed={seed})", env.reset, seed=seed), f"reset(seed={seed})", RESET)
    _checked(env, f"reset(seed={seed})", obs, info=info)
    observations = [_kept(env, obs)]
    rewards, ends = [], []
    episode = 0
    for step in range(1, steps + 1):
        where = f"step {step} of a seeded random rollout"
        obs, reward, terminated, truncated, info = _returned(_call(where, env.step, space.sample()), where, STEP)
        _checked(env, where, obs, reward, info)
        observations.append(_kept(env, obs))
        rewards.append(float(reward))
        ends.append(bool(terminated or truncated))
        if terminated or truncated:
            episode += 1
            again = f"reset(seed={seed + episode})"
            obs, info = _returned(_call(again, env.reset, seed=seed + episode), again, RESET)
            _checked(env, again, obs, info=info)
            observations.append(_kept(env, obs))
    return Rollout(observations, rewards, ends)


def _kept(env: gym.Env, obs: Any) -> Any:
    """An observation as a rollout keeps it: a Dict's flattened (Gymnasium's ``flatten``, as its agents read it)."""
    return spaces.flatten(env.observation_space, obs) if isinstance(env.observation_space, spaces.Dict) else obs
