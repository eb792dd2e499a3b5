"""One SB3 vector env over several tasks of a family, with equal slots per task."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rltransfer.envs.conditioning import conditioned_space, conditioning_vector, flat_layout, flat_space, task_onehot
from rltransfer.envs.family import Family, Task, TaskError
from rltransfer.envs.images import agent_view
from rltransfer.envs.mixed import SpaceError, TaskSpaces, fit_to, merge_spaces
from rltransfer.envs.vector import JointPhysics, VectorPhysics
from rltransfer.observation_keys import CONTEXT, OBS, TASK


def task_layout(family: Family, tasks: Sequence[Task]) -> TaskSpaces:
    """The tasks' shared spaces: their own when they agree, else a padded layout (see
    :mod:`rltransfer.envs.mixed`); a clear error names any task that cannot share one.

    SB3's vector envs take the spaces of sub-env 0 and never check the others.
    """
    found = own_spaces(family, tasks)
    try:
        return merge_spaces([t.name for t in tasks], [f[0] for f in found], [f[1] for f in found])
    except SpaceError as err:
        raise TaskError(str(err)) from None


def own_spaces(family: Family, tasks: Sequence[Task]) -> list[tuple[spaces.Space, spaces.Space]]:
    """Each task's own observation and action spaces, as the agent views them (:func:`agent_view`)."""
    found = []
    for task in tasks:
        env = agent_view(family.make(task))
        found.append((env.observation_space, env.action_space))
        env.close()
    return found


def check_spaces(family: Family, tasks: Sequence[Task]) -> tuple[spaces.Space, spaces.Space]:
    """The observation and action spaces the tasks share (padded where they differ)."""
    layout = task_layout(family, tasks)
    return layout.observation, layout.action


def _sub_env(family: Family, task: Task, layout: TaskSpaces) -> gym.Env:
    """One sub-env of a multi-task vector env: the task, monitored, as the agent sees it (:func:`agent_view`), in
    the tasks' shared layout."""
    return fit_to(agent_view(Monitor(family.make(task))), layout)


class MultiTaskVecEnv(DummyVecEnv):
    """A ``DummyVecEnv`` whose sub-envs are assigned to tasks round-robin, in equal numbers.

    Tasks whose spaces differ share a padded layout (:attr:`layout`: each task's own observation
    length and number of actions; see :mod:`rltransfer.envs.mixed`).

    Observations are dicts ``{"obs", "context", "task"}`` (see
    :func:`~rltransfer.envs.conditioning.conditioned_space`; ``task``: one-hot of the head),
    built for all sub-envs at once; with ``flat=True`` and vector entries, the same entries
    concatenated in one Box (:attr:`obs_layout` names them; :attr:`dict_space` is the Dict either
    way). Each sub-env's ``info`` carries ``task`` and ``task_id``. Finished episodes' returns and
    lengths are kept per task in :attr:`episode_returns` / :attr:`episode_lengths` (last 100
    each); :attr:`episodes_finished` counts them all.

    :param family: the tasks' family.
    :param tasks: the tasks; ``task_id`` is the position unless ``head_ids`` says otherwise.
    :param conditioning: ``none`` | ``onehot`` | ``context``.
    :param envs_per_task: sub-envs per task.
    :param onehot_indices: index of each task among source tasks for ``onehot`` conditioning
        (default: its position); ``None`` entries are held-out tasks (an all-zero one-hot).
    :param n_sources: length of the one-hot (default: number of tasks).
    :param n_heads: number of heads of the agent (default: one per task).
    :param head_ids: head index of each task (default: its position).
    :param pad_to: the layout of a larger set of tasks these belong to (observations padded and
        actions drawn as there).
    :param flat: the entries in one flat Box where all are vectors (SB3 stores, copies and converts
        a Dict key by key: off-policy agents run faster on the flat Box; images keep the Dict).
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
        pad_to: TaskSpaces | None = None,
        flat: bool = False,
    ):
        if not tasks:
            raise TaskError("a multi-task env needs at least one task")
        if envs_per_task < 1:
            raise TaskError(f"envs_per_task must be >= 1, got {envs_per_task}")
        self.layout = task_layout(family, tasks)
        if pad_to is not None:  # some of a larger set of tasks (one source task's evaluation, say)
            self.layout = replace(self.layout, observation=pad_to.observation, action=pad_to.action, mixed=pad_to.mixed)
        obs_space = self.layout.observation
        self.tasks = list(tasks)
        self.task_names = [t.name for t in tasks]
        onehot_indices = list(onehot_indices) if onehot_indices is not None else list(range(len(tasks)))
        n_sources = n_sources if n_sources is not None else len(tasks)
        head_ids = list(head_ids) if head_ids is not None else list(range(len(tasks)))
        n_heads = n_heads if n_heads is not None else len(tasks)
        if not all(0 <= h < n_heads for h in head_ids):
            raise TaskError(f"head ids {head_ids} outside 0..{n_heads - 1}")
        self.slot_tasks = [i % len(tasks) for i in range(len(tasks) * envs_per_task)]
        self.head_ids = head_ids
        vectors = [
            conditioning_vector(conditioning, np.asarray(t.context), onehot_indices[i], n_sources)
            for i, t in enumerate(self.tasks)
        ]
        layout = self.layout
        super().__init__([partial(_sub_env, family, self.tasks[i], layout) for i in self.slot_tasks])
        self.dict_space = conditioned_space(obs_space, n_heads, vectors[0])
        self.obs_layout = flat_layout(self.dict_space) if flat else None
        self.observation_space = flat_space(self.dict_space, self.obs_layout) if self.obs_layout else self.dict_space
        self._task_obs = np.stack([task_onehot(head_ids[i], n_heads) for i in self.slot_tasks])
        self._context_obs = (
            None if vectors[0] is None else np.stack([cast(np.ndarray, vectors[i]) for i in self.slot_tasks])
        )
        self._vector = None
        if family.vector is not None and pad_to is None and not self.layout.mixed:
            # The family's vector build steps the envs (the same results, as arrays); self.envs stay for spaces.
            self._vector = family.vector([self.tasks[i].params for i in self.slot_tasks])
        self._physics: tuple[np.ndarray, np.ndarray] | None = None
        """The rewards and ends of the physics of the step under way where it was stepped elsewhere, with other
        envs' (:meth:`physics_stepped`): ``step_wait`` finishes the step from them."""
        self.episode_returns: dict[str, deque[float]] = {n: deque(maxlen=100) for n in self.task_names}
        self.episode_lengths: dict[str, deque[int]] = {n: deque(maxlen=100) for n in self.task_names}
        self.episodes_finished = 0

    @property
    def _raw_obs(self) -> np.ndarray:
        """The sub-envs' own observations (SB3 keys the buffer of a space that is not a Dict by ``None``)."""
        return self.buf_obs[None]  # type: ignore[index]

    def conditioning_entries(self, slot: int) -> dict[str, np.ndarray]:
        """The entries sub-env ``slot``'s observations carry beside ``obs``: ``task``, and ``context``
        where the tasks are conditioned."""
        out = {TASK: self._task_obs[slot]}
        if self._context_obs is not None:
            out[CONTEXT] = self._context_obs[slot]
        return out

    def _entries(self, obs: np.ndarray, rows: int | slice) -> dict[str, np.ndarray]:
        out = {OBS: obs, TASK: self._task_obs[rows]}
        if self._context_obs is not None:
            out[CONTEXT] = self._context_obs[rows]
        return out

    def _flatten(self, entries: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [entries[k] for k, _ in self.obs_layout or ()], axis=-1, dtype=self.observation_space.dtype
        )

    def _obs_from_buf(self):
        return self.observe(self._raw_obs)

    def observe(self, raw: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        """The observations ``step`` returns for the sub-envs' own observations ``raw`` (one row a sub-env)."""
        entries = self._entries(raw, slice(None))
        if self.obs_layout:
            return self._flatten(entries)
        return {k: np.copy(v) for k, v in entries.items()}

    def _slot_obs(self, slot: int, obs: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        entries = self._entries(obs, slot)
        if self.obs_layout:
            return self._flatten(entries)
        return {k: v if k == OBS else np.copy(v) for k, v in entries.items()}

    def _tag(self, infos: list[dict]) -> None:
        for slot, info in enumerate(infos):
            t = self.slot_tasks[slot]
            info["task"], info["task_id"] = self.task_names[t], self.head_ids[t]

    @property
    def can_pause(self) -> bool:
        """Whether :meth:`pause` saves work: the sub-envs step one by one (no vector build)."""
        return self._vector is None

    def pause(self, slots: Sequence[int]) -> None:
        """Sub-envs ``slots`` are not stepped again until the next :meth:`reset`: each step leaves their
        observation as it is, with reward 0 and no end. For an evaluation's envs whose episode has ended
        (their further steps would be thrown away); the other sub-envs step as before. Only where
        :attr:`can_pause`."""
        assert self._vector is None
        for slot in slots:
            if not isinstance(self.envs[slot], _Paused):
                self.envs[slot] = _Paused(self.envs[slot], self._raw_obs[slot].copy())

    def _unpause(self) -> None:
        self.envs = [env.env if isinstance(env, _Paused) else env for env in self.envs]

    def close(self) -> None:
        self._unpause()
        super().close()

    def reset(self):
        self._unpause()
        if self._vector is None:
            obs = super().reset()
        else:
            self._raw_obs[:], self.reset_infos = self._vector.reset(self._seeds)
            self._reset_seeds()
            self._reset_options()
            obs = self._obs_from_buf()
        self._tag(self.reset_infos)
        return obs

    def _check_finite(self, rewards: np.ndarray, raw: np.ndarray | None = None) -> None:
        """:class:`TaskError` naming the first sub-env whose reward or observation (``raw``; by default the
        sub-envs' own now) is NaN or infinite."""
        raw = self._raw_obs if raw is None else raw
        if np.isfinite(rewards).all() and np.isfinite(raw).all():
            return
        bad = ~np.isfinite(rewards) | ~np.isfinite(raw.reshape(self.num_envs, -1)).all(axis=1)
        slot = int(np.flatnonzero(bad)[0])
        what = "reward" if not np.isfinite(rewards[slot]) else "observation"
        raise TaskError(
            f"task '{self.task_names[self.slot_tasks[slot]]}' returned a non-finite {what} "
            f"(sub-env {slot}): {rewards[slot] if what == 'reward' else raw[slot]}"
        )

    def step_wait(self):
        if self._vector is None:
            return self._finish(*super().step_wait())
        physics, self._physics = self._physics, None
        if physics is None:
            return self._from_vector(self._vector.step(self.actions))
        return self._from_vector(self._vector.finish_step(*physics))

    def physics_stepped(self, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """The vector build's physics has stepped for :attr:`actions` elsewhere (with other envs':
        :class:`~rltransfer.envs.vector.JointPhysics`, through :class:`StepTogether`), with these rewards and
        ends: the next ``step_wait`` finishes the step from them (step limit, records, resets, observations)."""
        assert self._vector is not None
        self._physics = (rewards, terminated)

    def _from_vector(self, stepped: tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]):
        self._raw_obs[:], self.buf_rews[:], self.buf_dones[:], self.buf_infos = stepped
        return self._finish(self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), self.buf_infos)

    def _finish(self, obs, rewards: np.ndarray, dones: np.ndarray, infos: list[dict]):
        self._check_finite(rewards)
        self._tag(infos)
        if not dones.any():
            return obs, rewards, dones, infos
        for slot in np.flatnonzero(dones).tolist():
            terminal = infos[slot].get("terminal_observation")
            if terminal is not None:  # SB3 bootstraps truncated episodes from it: same layout
                infos[slot]["terminal_observation"] = self._slot_obs(slot, terminal)
            episode = infos[slot].get("episode")
            if episode is not None:
                name = self.task_names[self.slot_tasks[slot]]
                self.episode_returns[name].append(float(episode["r"]))
                self.episode_lengths[name].append(int(episode["l"]))
                self.episodes_finished += 1
        return obs, rewards, dones, infos


class _Paused(gym.Wrapper):
    """A sub-env :meth:`MultiTaskVecEnv.pause` holds still: its step leaves the env alone and returns the
    observation it had, reward 0, no end; everything else (attributes, methods) is the env's."""

    def __init__(self, env: gym.Env, obs: np.ndarray):
        super().__init__(env)
        self._obs = obs

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self._obs, 0.0, False, False, {}


StepResult = tuple[Any, np.ndarray, np.ndarray, list[dict]]


JOINED_THROUGH = (VecNormalize,)
"""The wrappers a joint step sees through: each passes its actions down in ``step_async`` and finishes its
step from its env's ``step_wait``, once (a wrapper that stepped its env itself, or changed the actions in
``step_wait``, would be stepped alone)."""


def _multitask_under(env: VecEnv) -> MultiTaskVecEnv | None:
    """The :class:`MultiTaskVecEnv` under ``env``: itself, or under wrappers of :data:`JOINED_THROUGH`."""
    while type(env) in JOINED_THROUGH:
        env = cast(VecEnvWrapper, env).venv
    return env if isinstance(env, MultiTaskVecEnv) else None


def vector_env(env: VecEnv) -> MultiTaskVecEnv | None:
    """The :class:`MultiTaskVecEnv` with a family's vector build under ``env`` (:func:`_multitask_under`), whose
    physics a joint step may step; None: there is none."""
    under = _multitask_under(env)
    return under if under is not None and under._vector is not None else None


def pausable(env: VecEnv) -> MultiTaskVecEnv | None:
    """The :class:`MultiTaskVecEnv` under ``env`` (:func:`_multitask_under`) where
    :meth:`~MultiTaskVecEnv.pause` saves work; None otherwise."""
    under = _multitask_under(env)
    return under if under is not None and under.can_pause else None


class StepTogether:
    """Several vector envs (``envs``: one per seed of a batch) stepped as each one's ``step`` would: the
    physics of those whose :func:`vector_env` has a vector build of one family as one
    (:class:`~rltransfer.envs.vector.JointPhysics`), the others one by one. Each env then finishes its step
    with its own ``step_wait`` (a ``VecNormalize`` over it normalises as ever). Call it with the indices of
    the envs to step and their actions; an env whose step raises gets its exception in its place in the
    answer, and the others are stepped all the same.

    ``outcomes_only``: the caller takes each env's observations, rewards and ends, and nothing else of its
    step (an evaluation): the envs that are a bare :class:`MultiTaskVecEnv` over a build that
    :attr:`~rltransfer.envs.vector.VectorPhysics.finishes_jointly` have their steps finished in one call
    (:meth:`~rltransfer.envs.vector.JointPhysics.step_finished`), the same observations, rewards and ends,
    with empty infos and without the envs' own records of the step (their buffers, episode counts)."""

    def __init__(self, envs: Sequence[VecEnv], outcomes_only: bool = False):
        self.envs = list(envs)
        self.inner = [vector_env(env) for env in self.envs]
        self._joints: dict[tuple[int, ...], JointPhysics] = {}
        self._finished = [
            outcomes_only
            and type(env) is MultiTaskVecEnv
            and inner is not None
            and type(cast(VectorPhysics, inner._vector)).finishes_jointly
            for env, inner in zip(self.envs, self.inner)
        ]
        builds = {type(cast(MultiTaskVecEnv, inner)._vector) for inner, f in zip(self.inner, self._finished) if f}
        if len(builds) > 1:  # builds of several families: each steps as usual
            self._finished = [False] * len(self.envs)
        self._finishes = any(self._finished)

    def _joinable(self, which: Sequence[int]) -> tuple[int, ...]:
        vectors = [(i, self.inner[i]) for i in which if self.inner[i] is not None]
        if len(vectors) < 2 or len({type(cast(MultiTaskVecEnv, v)._vector) for _, v in vectors}) != 1:
            return ()
        return tuple(i for i, _ in vectors)

    def __call__(self, which: Sequence[int], actions: Sequence[np.ndarray]) -> list[StepResult | Exception]:
        act = dict(zip(which, actions))
        finished = tuple(i for i in which if self._finished[i]) if self._finishes else ()
        out = self._step_finished(finished, act) if finished else {}
        joined = self._joinable([i for i in which if i not in out] if out else which)
        out |= self._step_joined(joined, act) if joined else {}
        for i in which:
            if i not in out:
                out[i] = _step_or_error(partial(self.envs[i].step, act[i]))
        return [out[i] for i in which]

    def _joint(self, joined: tuple[int, ...]) -> JointPhysics:
        if joined not in self._joints:
            inner = [cast(MultiTaskVecEnv, self.inner[i]) for i in joined]
            self._joints[joined] = JointPhysics([cast(VectorPhysics, env._vector) for env in inner])
        return self._joints[joined]

    def _step_finished(self, joined: tuple[int, ...], act: dict[int, np.ndarray]) -> dict[int, StepResult | Exception]:
        """The envs ``joined`` (``outcomes_only``), each step finished with the others' in one call: each env's
        observations, rewards and ends; none where the joint step raises (they are then stepped as usual,
        where the error belongs to one env)."""
        inner = [cast(MultiTaskVecEnv, self.envs[i]) for i in joined]
        try:
            stepped = self._joint(joined).step_finished([act[i] for i in joined])
        except Exception:
            return {}
        out: dict[int, StepResult | Exception] = {}
        for i, env, (raw, rewards, dones) in zip(joined, inner, stepped):
            try:
                env._check_finite(rewards, raw)
            except TaskError as err:  # the env's own error, as its step would raise it
                out[i] = err
                continue
            out[i] = (env.observe(raw), rewards, dones, [{} for _ in range(env.num_envs)])
        return out

    def _step_joined(self, joined: tuple[int, ...], act: dict[int, np.ndarray]) -> dict[int, StepResult | Exception]:
        """The envs ``joined``, their physics stepped as one; none of them where the joint step itself
        raises (they are then stepped alone, where the error belongs to one env)."""
        inner = [cast(MultiTaskVecEnv, self.inner[i]) for i in joined]
        for i in joined:
            self.envs[i].step_async(act[i])  # down to the vector env, through its wrappers
        try:
            stepped = self._joint(joined).step([env.actions for env in inner])
        except Exception:
            return {}
        out: dict[int, StepResult | Exception] = {}
        for i, env, result in zip(joined, inner, stepped):
            env.physics_stepped(*result)
            out[i] = _step_or_error(self.envs[i].step_wait)
            env._physics = None  # used, or left by a step that raised before reaching it
        return out


def _step_or_error(step: Callable[[], StepResult]) -> StepResult | Exception:
    try:
        return step()
    except Exception as err:  # the env's own error, handed to whoever stepped it
        return err
