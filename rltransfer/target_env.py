"""A saved target agent on a plain Gymnasium env: the observation entries it was trained with, added.

A target agent sees more than its task's observation: a one-hot ``task`` entry, the conditioning vector
(``context``) where the bundle was conditioned, observations normalised with the statistics it trained
with, and, for families whose tasks' spaces differ, zero-padded observations and folded actions. The run
saves all of that with the model (the attribute :data:`RECORD`, kept by SB3's ``save`` and ``load``), so
that the model file alone is enough::

    model = PPO.load("runs/quickstart/runs/very-long-heavy/finetune/seed-0/model.zip")
    env = rltransfer.wrap_target_env(model, get_family("cartpole").make("very-long-heavy"))
    evaluate_policy(model, env)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import ValidationError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.envs import Family, MultiTaskVecEnv, Task
from rltransfer.envs.images import agent_view
from rltransfer.envs.mixed import FoldAction, PadObservation, same_layout, widen_bounds
from rltransfer.errors import UserInputError
from rltransfer.normalization import FrozenRunningMeanStd, obs_stats
from rltransfer.observation_keys import CONTEXT, OBS
from rltransfer.records.base import first_problem
from rltransfer.records.observation_stats import ObservationStats
from rltransfer.records.run_result import RESULT_FILE
from rltransfer.records.target_observation import ADAPTING, ObservationRecord, TargetTask
from rltransfer.spaces_json import space_from_json, space_to_json

RECORD = "target_observation"
"""The model attribute (saved in model.zip) that says how its observations are built."""


def observation_record(env: VecEnv, bundle: Any, target: Mapping[str, Any], final: bool = True) -> ObservationRecord:
    """What a target agent trained on ``env`` (a MultiTaskVecEnv, perhaps in a VecNormalize) from
    ``bundle`` needs added to its task's own observations. Not ``final`` (set before training,
    for what a callback saves): statistics that training will still change are marked :data:`ADAPTING`."""
    adapting = (
        not final and isinstance(env, VecNormalize) and env.training
        and not isinstance(env.obs_rms[OBS], FrozenRunningMeanStd)
    )  # fmt: skip
    inner = env.venv if isinstance(env, VecNormalize) else env
    assert isinstance(inner, MultiTaskVecEnv), type(inner)
    entries = inner.conditioning_entries(0)
    return ObservationRecord(
        algo=bundle.algo,
        family=bundle.family,
        family_spec=bundle.manifest.family_spec,
        conditioning=bundle.conditioning,
        source_tasks=list(bundle.task_names),
        target=TargetTask(name=target["name"], params=dict(target["params"])),
        obs_space=space_to_json(inner.dict_space.spaces[OBS]),
        entries={k: np.asarray(v).tolist() for k, v in entries.items()},
        obs_layout=list(inner.obs_layout) if inner.obs_layout else None,
        normalization=ADAPTING if adapting else obs_stats(env),
    )


class TargetObservation(gym.ObservationWrapper):
    """Adds a target agent's ``task`` and ``context`` entries to a task's observations (and normalises
    them, pads them or flattens the entries where the agent was trained so)."""

    def __init__(self, env: gym.Env, record: ObservationRecord, observation_space: spaces.Space):
        super().__init__(env)
        assert record.normalization != ADAPTING  # read_record refuses it
        self.record = record
        self.observation_space = observation_space
        self._entries = {k: np.asarray(v, dtype=np.float32) for k, v in record.entries.items()}
        self._layout = record.obs_layout
        self._stats = record.normalization

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray] | np.ndarray:
        obs = np.asarray(observation)
        if isinstance(self._stats, ObservationStats):
            obs = self._stats.normalise(obs)
        entries = {OBS: obs, **{k: v.copy() for k, v in self._entries.items()}}
        if self._layout:
            dtype = self.observation_space.dtype
            return np.concatenate([np.asarray(entries[k], dtype=dtype).ravel() for k, _ in self._layout])
        return entries


def _family_task(record: ObservationRecord, task: Any = None) -> tuple[Family, Task]:
    """The family of an agent of ``record`` and ``task`` in it (a name, a Task or parameters; by default the
    agent's target), or a :class:`UserInputError` naming what is unknown."""
    from rltransfer.envs import TaskError, family_of

    try:
        family = family_of(record.family, record.family_spec)
        target = {"name": record.target.name, **record.target.params}
        return family, family.task(task if task is not None else target)
    except TaskError as err:
        raise UserInputError(str(err)) from None


def _conditioning(record: ObservationRecord, task: Any) -> dict[str, list[float]]:
    """The ``context`` entry of ``task`` for an agent of ``record`` (none without conditioning)."""
    from rltransfer.envs import conditioning_vector

    _, task = _family_task(record, task)
    sources = record.source_tasks
    index = sources.index(task.name) if task.name in sources else None
    vector = conditioning_vector(record.conditioning, np.asarray(task.context), index, len(sources))
    return {} if vector is None else {CONTEXT: vector.tolist()}


def read_record(model: str | Path | BaseAlgorithm) -> tuple[ObservationRecord, spaces.Space, spaces.Space]:
    """The observation record of a saved target agent (a model.zip, its run directory, or a loaded
    model), with the agent's observation and action spaces."""
    if isinstance(model, BaseAlgorithm):
        record = getattr(model, RECORD, None)
        where = f"this {type(model).__name__}"
        spaces_: tuple[Any, Any] = (model.observation_space, model.action_space)
    else:
        path = Path(model)
        path = path / "model.zip" if path.is_dir() else path
        if not path.is_file() and (path.parent / RESULT_FILE).is_file():
            raise UserInputError(
                f"'{model}': the run's result is there but not its model.zip (a run restored from a publication: a "
                "publication ships every run's result and its bundles, not the target agents; train the run again "
                "with 'rltransfer transfer' to have its agent)"
            )
        if not path.is_file():
            raise UserInputError(f"'{model}': no such model file (a target run's model.zip, or its directory)")
        try:
            data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
        except Exception as err:  # not an SB3 archive
            raise UserInputError(f"'{path}' is not an SB3 model file: {err}") from None
        data = data or {}
        record = data.get(RECORD)
        where = f"'{path}'"
        spaces_ = (data.get("observation_space"), data.get("action_space"))
    if not record:
        raise UserInputError(
            f"{where} records no target observation layout: it is not a target agent rltransfer saved, or it "
            "was saved before rltransfer recorded one; build its env from its bundle with "
            "rltransfer.make_target_env(bundle, target)"
        )
    try:
        record = ObservationRecord.model_validate(record)
    except ValidationError as err:
        raise UserInputError(
            f"{where} records a target observation layout that rltransfer cannot read ({first_problem(err)}): "
            "build its env from its bundle with rltransfer.make_target_env(bundle, target)"
        ) from None
    if record.normalization == ADAPTING:
        raise UserInputError(
            f"{where} was saved during its training (by a callback), while training still adapted its observation "
            "statistics: the statistics it acted with then are not in it; evaluate the run's final model.zip, or "
            "save the statistics with the checkpoint (SB3's CheckpointCallback(save_vecnormalize=True)) and "
            "normalise a rltransfer.make_target_env(bundle, target) with them (VecNormalize.load)"
        )
    return record, *spaces_


def wrap_target_env(model: str | Path | BaseAlgorithm, env: gym.Env, task: Any = None) -> gym.Env:
    """``env`` (the target task's plain Gymnasium env, or another task of the family, named by ``task``)
    with the observation entries the saved target agent ``model`` was trained with: what SB3's
    ``evaluate_policy`` and an enjoy script need, from the model file alone. Where the family's tasks'
    spaces differ, the task's observations are zero-padded and its actions folded as in training; an env
    of other spaces is refused.

    :param model: a loaded target agent, its ``model.zip`` or its run directory.
    :param task: the task ``env`` runs, where it is not the one the agent was trained on (a name of the
        family or a Task): its conditioning vector replaces the target's. An env made from the family's
        Gymnasium id (``gym.make("rltransfer/cartpole-v0", task="medium")``) says its task itself.
    """
    record, model_space, action_space = read_record(model)
    task = _env_task(env, record, task)
    env = agent_view(env)  # a channels-last image channels first, as the agent was trained on it
    if task is not None:
        record = record.model_copy(update={"entries": {**record.entries, **_conditioning(record, task)}})
    obs_space = space_from_json(record.obs_space)
    if env.observation_space != obs_space or env.action_space != action_space:
        # A task of a family whose tasks' spaces differ is padded and folded: only from its own spaces.
        name, own_obs, own_action = _task_spaces(record, task)
        for kind, got, own, agent in [
            ("observation", env.observation_space, own_obs, obs_space),
            ("action", env.action_space, own_action, action_space),
        ]:
            if got in (own, agent):
                continue
            message = f"the env's {kind} space {got} is not the one the agent was trained on ({agent})"
            if own != agent:  # the task's own, which the agent's pads or extends
                message += f" nor task '{name}'s own ({own})"
            if task is None:
                message += (
                    f"; if the env runs another task of family '{record.family}', name it: "
                    "wrap_target_env(model, env, task=...)"
                )
            raise UserInputError(message)
        if env.observation_space != obs_space and same_layout(env.observation_space, obs_space):
            env = widen_bounds(env, cast(spaces.Box, obs_space))  # the same observations, declared in the agent's
        elif env.observation_space != obs_space:
            env = PadObservation(env, cast(spaces.Box, obs_space))
        if env.action_space != action_space:
            env = FoldAction(env, cast(spaces.Discrete, action_space))
    return TargetObservation(env, record, model_space)


def _env_task(env: gym.Env, record: ObservationRecord, task: Any) -> Any:
    """The task ``env`` runs for an agent of ``record``: ``task`` as given, or, for an env made from the
    family's Gymnasium id (``gym.make("rltransfer/cartpole-v0", task=...)``), the one it was made for (a
    ``task`` that differs from it is refused, as is an env of another family's id); None: the agent's
    target."""
    from rltransfer.envs.registry import GYM_NAMESPACE, gym_id

    spec = env.spec
    if spec is None or not spec.id.startswith(f"{GYM_NAMESPACE}/"):
        return task
    if spec.id != gym_id(record.family):
        raise UserInputError(
            f"the env is {spec.id}'s, a task of another family than the agent's ('{record.family}': "
            f"{gym_id(record.family)})"
        )
    given = {k: v for k, v in spec.kwargs.items() if k not in ("family", "render_mode")}
    made_for = given.get("task", given)  # no task: its parameters ({}: the family's defaults)
    if task is not None and _family_task(record, task)[1].params != _family_task(record, made_for)[1].params:
        raise UserInputError(
            f"task={task!r}, but the env was made for another task of family '{record.family}' ({made_for!r}, "
            f"by {spec.id}): leave task= out, or make the env of that task"
        )
    return made_for


def _task_spaces(record: ObservationRecord, task: Any) -> tuple[str, spaces.Space, spaces.Space]:
    """The name and own observation and action spaces (as the agent views them) of ``task``, by default the
    agent's target, built from the agent's family."""
    family, resolved = _family_task(record, task)
    env = agent_view(family.make(resolved))
    try:
        return resolved.name, env.observation_space, env.action_space
    finally:
        env.close()


def evaluate(
    model: str | Path, target: str | None = None, episodes: int = 10, seed: int = 0, deterministic: bool = True
) -> tuple[str, list[float]]:
    """Evaluate the saved target agent ``model`` with SB3's ``evaluate_policy`` on ``target`` (a task of its
    family with the same spaces; by default the one it was trained on): the task's name and each episode's
    return. Episodes are reset with seeds ``seed``, ``seed + 1``, ..."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltransfer.agents import get_algorithm
    from rltransfer.config import check_seed, check_steps
    from rltransfer.evaluation import EpisodeLimit

    check_steps(episodes, "episodes")
    seed = check_seed(seed)
    record, _, _ = read_record(model)
    family, task = _family_task(record, target)
    path = Path(model)
    agent = get_algorithm(record.algo).algo_class.load(path / "model.zip" if path.is_dir() else path, device="cpu")
    env = EpisodeLimit(DummyVecEnv([lambda: wrap_target_env(agent, Monitor(family.make(task)), task)]))
    env.seed(seed)  # episode i's reset seed: seed + i (DummyVecEnv seeds its first reset, the env goes on)
    returns, _ = evaluate_policy(
        agent, env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
    )
    return task.name, [float(r) for r in np.atleast_1d(returns)]
