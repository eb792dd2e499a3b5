"""A family's task as a Gymnasium vector env: ``gym.make_vec("rltransfer/cartpole-v0", num_envs=64,
task="very-long-heavy")``.

Where the family has a vector build (:mod:`rltransfer.envs.vector`: CartPole, Acrobot, Pendulum, MountainCar),
its envs step as NumPy arrays, with what Gymnasium's ``SyncVectorEnv`` over the family's envs gives, bit for bit
(observations, rewards, ends; its default next-step autoreset: an env whose episode ended is reset by the next
``step``, which ignores its action and returns its first observation, reward 0). Other families, and a
``render_mode``, get that ``SyncVectorEnv`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space

from rltransfer.envs.family import Family, Task
from rltransfer.envs.registry import get_family, make_task_env, task_of
from rltransfer.envs.vector import VectorPhysics


def make_task_vector_env(
    family: str,
    num_envs: int = 1,
    task: str | Mapping[str, Any] | None = None,
    render_mode: str | None = None,
    **params: Any,
) -> VectorEnv:
    """The vector entry point of a family's Gymnasium id: ``num_envs`` envs of one task (named, or given by
    parameters, as :func:`~rltransfer.envs.registry.make_task_env` takes it)."""
    fam = get_family(family)
    resolved = task_of(fam, task, params)
    if fam.vector is None or render_mode is not None:
        make = partial(make_task_env, family, resolved, render_mode)
        return SyncVectorEnv([make for _ in range(num_envs)])
    return FamilyVectorEnv(fam, resolved, num_envs)


class FamilyVectorEnv(VectorEnv):
    """``num_envs`` envs of a family's task, stepped by its vector build, as ``SyncVectorEnv`` steps them."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, family: Family, task: Task, num_envs: int):
        assert family.vector is not None
        single = family.make(task)
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        single.close()
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.physics: VectorPhysics = family.vector([task.params] * num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; ``seed`` an int seeds env i with ``seed + i``, as ``SyncVectorEnv`` does."""
        if options:
            raise ValueError(f"reset options are not taken by {type(self).__name__} (got {options})")
        if isinstance(seed, int):
            seeds: Sequence[int | None] = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed) if seed is not None else [None] * self.num_envs
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        obs, _ = self.physics.reset(seeds)
        self._autoreset[:] = False
        return obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        p = self.physics
        rewards, terminated = p._step(np.asarray(actions))  # every env: the ended ones are reset below
        rewards = np.asarray(rewards, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        p.steps += 1
        truncated = p.steps >= p.max_episode_steps if p.max_episode_steps is not None else np.zeros_like(terminated)
        ended = np.flatnonzero(self._autoreset)
        if len(ended):  # their episode ended at the last step: this one resets them, its action ignored
            p._reset(ended)
            p.steps[ended] = 0
            rewards[ended], terminated[ended], truncated[ended] = 0.0, False, False
        self._autoreset = terminated | truncated
        return p._obs().copy(), rewards, terminated, truncated, {}
