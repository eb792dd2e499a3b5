"""One SB3 vector env over several tasks of a family, with equal slots per task."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.envs.conditioning import TaskConditioning, conditioning_vector
from rltransfer.envs.family import Family, Task, TaskError


def check_spaces(family: Family, tasks: Sequence[Task]) -> tuple[spaces.Space, spaces.Space]:
    """The tasks' shared observation and action spaces; a clear error naming any that differ.

    SB3's vector envs take the spaces of sub-env 0 and never check the others.
    """
    found = []
    for task in tasks:
        env = family.make(task)
        found.append((task.name, env.observation_space, env.action_space))
        env.close()
    name0, obs0, act0 = found[0]
    for name, obs, act in found[1:]:
        if obs != obs0:
            raise TaskError(f"tasks '{name0}' and '{name}' have different observation spaces: {obs0} vs {obs}")
        if act != act0:
            raise TaskError(f"tasks '{name0}' and '{name}' have different action spaces: {act0} vs {act}")
    return obs0, act0


class MultiTaskVecEnv(DummyVecEnv):
    """A ``DummyVecEnv`` whose sub-envs are assigned to tasks round-robin, in equal numbers.

    Observations are dicts (see :class:`~rltransfer.envs.conditioning.TaskConditioning`); each
    sub-env's ``info`` carries ``task`` and ``task_id``. Finished episodes' returns and lengths
    are kept per task in :attr:`episode_returns` / :attr:`episode_lengths` (last 100 each).

    :param family: the tasks' family.
    :param tasks: the tasks, in head order (``task_id`` = position).
    :param conditioning: ``none`` | ``onehot`` | ``context``.
    :param envs_per_task: sub-envs per task.
    :param onehot_indices: index of each task among source tasks for ``onehot`` conditioning
        (default: its position); ``None`` entries are held-out tasks.
    :param n_heads: number of heads of the agent (default: one per task).
    :param head_ids: head index of each task (default: its position).
    """

    def __init__(
        self,
        family: Family,
        tasks: Sequence[Task],
        conditioning: str,
        envs_per_task: int = 1,
        onehot_indices: Sequence[int | None] | None = None,
        n_sources: int | None = None,
        n_heads: int | None = None,
        head_ids: Sequence[int] | None = None,
    ):
        if not tasks:
            raise TaskError("a multi-task env needs at least one task")
        if envs_per_task < 1:
            raise TaskError(f"envs_per_task must be >= 1, got {envs_per_task}")
        check_spaces(family, tasks)
        self.tasks = list(tasks)
        self.task_names = [t.name for t in tasks]
        onehot_indices = list(onehot_indices) if onehot_indices is not None else list(range(len(tasks)))
        n_sources = n_sources if n_sources is not None else len(tasks)
        head_ids = list(head_ids) if head_ids is not None else list(range(len(tasks)))
        n_heads = n_heads if n_heads is not None else len(tasks)
        self.slot_tasks = [i % len(tasks) for i in range(len(tasks) * envs_per_task)]

        def factory(i: int):
            task = self.tasks[i]
            vector = conditioning_vector(conditioning, np.asarray(task.context), onehot_indices[i], n_sources)

            def make():
                env = TaskConditioning(family.make(task), task.name, head_ids[i], n_heads, vector)
                return Monitor(env)

            return make

        super().__init__([factory(i) for i in self.slot_tasks])
        self.episode_returns = {n: deque(maxlen=100) for n in self.task_names}
        self.episode_lengths = {n: deque(maxlen=100) for n in self.task_names}

    def step_wait(self):
        obs, rewards, dones, infos = super().step_wait()
        for slot in np.flatnonzero(dones):
            episode = infos[slot].get("episode")
            if episode is not None:
                name = self.task_names[self.slot_tasks[slot]]
                self.episode_returns[name].append(float(episode["r"]))
                self.episode_lengths[name].append(int(episode["l"]))
        return obs, rewards, dones, infos
