"""A family's vector build: N envs of its tasks stepped as numpy arrays, as SB3's ``DummyVecEnv`` steps N
Gymnasium envs one by one, with the same results.

:class:`VectorPhysics` keeps every env's state in arrays with its parameters (``params[name]``: one value per
env) and does what ``DummyVecEnv`` over ``Monitor(gym.make(...))`` does around the physics: a random generator
per env, seeded as Gymnasium seeds an env (``reset(seed=s)``: ``np.random.default_rng(s)``; an env without a
seed keeps its stream), the episode's step limit (``TimeLimit``), auto-reset of finished envs with
``terminal_observation`` and ``TimeLimit.truncated`` in their info, and Monitor's ``episode`` record
(``r``, ``l``, ``t``). A family provides one by subclassing it (``_reset`` and ``_step`` of its physics)
and passing the class as ``Family(vector=...)``; :class:`~rltransfer.envs.multitask.MultiTaskVecEnv` then
steps its envs through it. ``tests/test_vector_envs.py`` checks the trajectories against the family's own
env: the same observations, rewards and ends, bit for bit, for the same parameters, seeds and actions.

Gymnasium's own vector CartPole cannot stand in: one generator for all envs, one parameter set, and
auto-reset on the step after the end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def scalar_pow(x: np.ndarray | float, p: float) -> np.ndarray:
    """``x ** p`` element by element as NumPy computes it for one scalar (C's ``pow``), in ``x``'s dtype.
    Not ``x ** p`` of the whole array: for ``p = 2`` NumPy squares an array (``x * x``), which differs from
    ``pow`` in the last bit now and then, so a vector build raises to a power this way wherever its
    single env raises a scalar."""
    arr = np.asarray(x)
    return np.array([v**p for v in arr.ravel()], dtype=arr.dtype).reshape(arr.shape)


class VectorPhysics:
    """N envs of a family, each with its own parameters (``params``: one mapping per env)."""

    max_episode_steps: int | None = None
    """The step limit of an episode (Gymnasium's ``TimeLimit``); None: none."""

    state_fields: tuple[str, ...] = ("state",)
    """The per-env arrays (the envs along their first axis) that ``_step`` reads and replaces: what
    :class:`JointPhysics` gathers from several builds and hands back. Everything else ``_step`` reads is
    a parameter or a constant derived from them in ``__init__``, one value per env."""

    finishes_jointly: bool = False
    """Whether :meth:`JointPhysics.step_finished` may finish this build's steps with other builds' in one call:
    its ``_reset`` and ``_obs`` read and write no per-env array but :attr:`state_fields` (besides ``rngs``, the
    parameters and the constants ``__init__`` derives from them), as its ``_step`` does. The family builds do;
    a build of one's own that does may say so (its evaluations then finish their steps in one call)."""

    def __init__(self, params: Sequence[Mapping[str, float]]):
        self.n = len(params)
        self.params = {k: np.array([float(p[k]) for p in params]) for k in params[0]}
        self.rngs = [np.random.default_rng() for _ in range(self.n)]
        self.steps = np.zeros(self.n, dtype=np.int64)
        self.returns = np.zeros(self.n)
        self.t_start = time.time()
        self._episode_start = np.full(self.n, self.t_start)

    # -- the physics: what a family's subclass writes --------------------------------------------------
    def _reset(self, index: np.ndarray) -> None:
        """Draw the start state of the envs ``index`` (from ``self.rngs[i]``, as the single env would)."""
        raise NotImplementedError

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of every env: (rewards, terminated)."""
        raise NotImplementedError

    def _obs(self) -> np.ndarray:
        """Every env's observation, as the single env returns it."""
        raise NotImplementedError

    # -- DummyVecEnv's part --------------------------------------------------------------------------------
    def reset(self, seeds: Sequence[int | None] | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset every env, env ``i`` with ``seeds[i]`` where given: its observations and infos."""
        for i, seed in enumerate(seeds if seeds is not None else [None] * self.n):
            if seed is not None:
                self.rngs[i] = np.random.default_rng(seed)
        everyone = np.arange(self.n)
        self._reset(everyone)
        self.steps[:] = 0
        self.returns[:] = 0.0
        self._episode_start[:] = time.time()
        return self._obs(), [{} for _ in range(self.n)]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One step of every env, finished ones reset: observations, rewards (float32), dones, infos."""
        return self.finish_step(*self._step(np.asarray(actions)))

    def finish_step(
        self, rewards: np.ndarray, terminated: np.ndarray, infos: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """What :meth:`step` does after the physics (``_step``'s rewards and ends): the step limit, Monitor's
        record, auto-reset (``infos=False``: without the infos, left empty)."""
        terminated = np.asarray(terminated, dtype=bool)
        self.steps += 1
        self.returns += rewards
        truncated = (
            self.steps >= self.max_episode_steps if self.max_episode_steps is not None else np.zeros(self.n, bool)
        )
        dones = terminated | truncated
        obs = self._obs()
        made: list[dict[str, Any]] = (
            [{"TimeLimit.truncated": t} for t in (truncated & ~terminated).tolist()] if infos else []
        )
        if dones.any():
            ended = np.flatnonzero(dones)
            now = time.time()
            for i in ended if infos else ():
                made[i]["episode"] = {
                    "r": round(float(self.returns[i]), 6), "l": int(self.steps[i]),
                    "t": round(now - self.t_start, 6),
                }  # fmt: skip
                made[i]["terminal_observation"] = obs[i].copy()
            self._reset(ended)
            self.steps[ended] = 0
            self.returns[ended] = 0.0
            obs = self._obs()
        return obs, rewards.astype(np.float32), dones, made


class JointPhysics:
    """Several vector builds of one family (``members``), their physics stepped as one: every env's state
    gathered into one array, one ``_step`` of a build over all their envs (each with its own parameters),
    and each member given back its envs' states, and its rewards and ends to finish its step with
    (:meth:`VectorPhysics.finish_step`: step limit, Monitor's record, resets from its own generators). The
    physics acts env by env, element by element, so each member's results are the bits of its own
    :meth:`VectorPhysics.step` (``tests/test_vector_envs.py``); what is saved is the per-call cost of NumPy,
    paid once for all."""

    def __init__(self, members: Sequence[VectorPhysics]):
        cls = type(members[0])
        if any(type(m) is not cls for m in members):
            raise ValueError("a joint step needs builds of one family")
        self.members = list(members)
        params = [{k: float(v[i]) for k, v in m.params.items()} for m in self.members for i in range(m.n)]
        self.joint = cls(params)  # the same parameters env by env, so the same constants derived from them
        edges = np.cumsum([0] + [m.n for m in self.members])
        self.slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def step(self, actions: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The physics of every member's envs for its ``actions[i]``: each member holds its envs' new states,
        and gets its ``(rewards, terminated)`` to finish its step with. Where ``_step`` raises, no member
        has changed."""
        fields = self.joint.state_fields
        self._gather(fields)
        rewards, terminated = self.joint._step(np.concatenate([np.asarray(a) for a in actions]))
        self._scatter(fields)
        return [(rewards[rows], terminated[rows]) for rows in self.slices]

    def step_finished(self, actions: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`step`, and each member's step finished too (:meth:`VectorPhysics.finish_step`: the step limit,
        the resets from each env's own generator), for all members in one call: each member's observations,
        rewards (float32) and ends, the bits of its own ``step``. No infos are made (an evaluation needs
        none). Only for builds that :attr:`~VectorPhysics.finishes_jointly`; where it raises, no member has
        changed."""
        joint = self.joint
        fields = (*joint.state_fields, "steps", "returns")
        self._gather(fields)
        joint.rngs = [rng for m in self.members for rng in m.rngs]  # the members' own generators
        rewards, terminated = joint._step(np.concatenate([np.asarray(a) for a in actions]))
        obs, rewards, dones = joint.finish_step(rewards, terminated, infos=False)[:3]
        self._scatter(fields)
        return [(obs[rows], rewards[rows], dones[rows]) for rows in self.slices]

    def _gather(self, fields: Sequence[str]) -> None:
        """The members' per-env arrays ``fields``, one after another, into the joint build (copies)."""
        for name in fields:
            setattr(self.joint, name, np.concatenate([getattr(m, name) for m in self.members]))

    def _scatter(self, fields: Sequence[str]) -> None:
        """Each member given back its rows of the joint build's arrays ``fields``."""
        for m, rows in zip(self.members, self.slices):
            for name in fields:
                setattr(m, name, getattr(self.joint, name)[rows])
