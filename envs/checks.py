"""``rltransfer families --check``: is a family what the pipeline assumes?

- every task's env builds (its parameters are ones the env takes);
- every task passes Gymnasium's env checker;
- every task's resets and steps return what the pipeline takes: one finite reward, an observation of its space's
  shape (finite; a discrete one within ``0 .. n-1``), an info dict (the env checker only warns of these);
- no task's env normalises its observations or rewards with running statistics (Gymnasium's
  ``NormalizeObservation`` or ``NormalizeReward`` in the family's build): each env rltransfer builds would keep
  its own, and an agent be evaluated on other inputs, or scored in other units, than it trained on;
- the tasks' spaces share one layout: the same spaces, or vector observations of different lengths and different
  numbers of Discrete actions (per-task input stems and heads), as an experiment over them needs, in a form SB3
  reads and acts in (``rltransfer.envs.space_forms``: a Box observation of at least one dimension, discrete
  values from 0, flat MultiDiscrete and MultiBinary spaces, a Box of actions bounded on both sides);
- every task's episodes end: it has a time limit, or at least a random policy's episode ends within the
  longest episode rltransfer evaluates;
- every task repeats itself: the same reset seed and the same actions give the same observations (an env
  that draws from an unseeded generator does not, and neither its runs nor its evaluations repeat);
- every parameter changes the dynamics: the same reset seed and the same actions, with the parameter at
  its default and at the end of its range farther from it, give different observations;
- no state leaks between tasks in one process: a task's trajectory is the same before and after other
  tasks are built and run, and an env built before them runs as one built after (a setting written to a
  module or a class, not to the instance, fails this);
- a family's vector build (``Family(vector=...)``, where it has one) steps every task's envs as the family's own
  envs step, bit for bit: the same observations, rewards, ends and episode records for the same seeds and actions,
  also where a batch of seeds steps several seeds' builds as one.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from rltransfer.envs.behaviour import raised, rollout
from rltransfer.envs.family import MAX_EPISODE_STEPS, Family, Task, TaskError
from rltransfer.envs.space_forms import check_action_form, check_observation_form, shown

STEPS = 200


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str = ""


def trajectory(env: gym.Env, seed: int = 0, steps: int = STEPS) -> np.ndarray:
    """The observations of ``steps`` seeded random actions from a reset with ``seed`` (resets again, with
    the next seeds, where an episode ends), flattened into one array."""
    return np.concatenate(rollout(env, seed=seed, steps=steps).flat())


def _plain(message: str) -> str:
    """A checker warning without its colour codes and prefix, on one line."""
    return re.sub(r"\x1b\[[0-9;]*m", "", message).splitlines()[0].removeprefix("WARN: ").strip()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def check_tasks(family: Family) -> list[Check]:
    """Gymnasium's env checker on every task."""
    out = []
    for name, task in family.tasks.items():
        env = family.make(task)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_env(env.unwrapped, skip_render_check=True)
            notes = sorted({_plain(str(w.message)) for w in caught})
            out.append(Check(f"env checker: {name}", True, ("warnings: " + "; ".join(notes)) if notes else ""))
        except Exception as err:  # the checker's assertion, or the env's own failure
            out.append(Check(f"env checker: {name}", False, f"{type(err).__name__}: {err}"))
        finally:
            env.close()
    return out


def check_builds(family: Family, tasks: Iterable[Task] | None = None) -> list[Check]:
    """Every task's env builds (``tasks``: the family's by default): a failure is told in the env's own words,
    with the file and line that raised it, instead of a traceback from whichever check built it first."""
    for task in family.tasks.values() if tasks is None else tasks:
        params = ", ".join(f"{k}={v:g}" for k, v in task.params.items()) or "its defaults"
        try:
            env = family.make(task)
        except Exception as err:  # the family's build or the env's constructor refused the task's parameters
            return [Check("builds", False, f"task '{task.name}' of family '{family.name}' ({params}) could not be "
                          f"built: {raised(err)}")]  # fmt: skip
        if not isinstance(env, gym.Env):
            return [Check("builds", False, f"task '{task.name}' of family '{family.name}' ({params}): its build "
                          f"returned {_kind(env)}, not a gymnasium.Env; SB3's vector envs and Gymnasium's wrappers "
                          "take only those: subclass gymnasium.Env, one env a task (an env of the older gym package: "
                          "wrap it in shimmy's GymV26CompatibilityV0 in the build)")]  # fmt: skip
        env.close()
    return [Check("builds", True, "every task's env builds")]


def _kind(value: object) -> str:
    """What a value is, by its class's full name."""
    cls = type(value)
    return f"a {cls.__module__}.{cls.__qualname__}"


def check_steps(family: Family, tasks: Iterable[Task] | None = None, steps: int = STEPS) -> list[Check]:
    """Every task's resets and ``steps`` seeded random steps return what the pipeline takes (``tasks``: the
    family's by default): :func:`~rltransfer.envs.behaviour.rollout`'s checks. SB3 would stop on these with an
    error far from the env (a broadcast of the wrong shape), or train on other numbers."""
    for task in family.tasks.values() if tasks is None else tasks:
        env = family.make(task)
        try:
            rollout(env, steps=steps)
        except TaskError as err:
            return [Check("steps", False, f"task '{task.name}' of family '{family.name}': {err}")]
        finally:
            env.close()
    return [Check("steps", True, f"every task's resets and {steps} seeded random steps return one finite reward, "
                  "an observation of its space and an info dict")]  # fmt: skip


RUNNING_STATISTICS = {
    gym.wrappers.NormalizeObservation: (
        "normalises its observations with running statistics",
        "an agent would be evaluated on other inputs than it trained on",
    ),
    gym.wrappers.NormalizeReward: (
        "scales its rewards by a running estimate of the return's spread",
        "returns, thresholds and scores would be of a reward whose scale changes as the env runs",
    ),
}
"""Gymnasium's wrappers that keep running statistics in the env: what each does, and what it would do to a run."""


def check_wrappers(family: Family, tasks: Iterable[Task] | None = None) -> list[Check]:
    """No task's env keeps running statistics of its observations or rewards (:data:`RUNNING_STATISTICS`, where
    they update): every training and evaluation env rltransfer builds would keep its own, and an env would not
    repeat itself from a reset seed (the "seeded" check took them for an unseeded generator). ``agent.normalize``
    keeps them with the agent instead (SB3's ``VecNormalize``), frozen in evaluation."""
    for task in family.tasks.values() if tasks is None else tasks:
        env = family.make(task)
        try:
            e: object = env
            while isinstance(e, gym.Wrapper):
                does = next((d for cls, d in RUNNING_STATISTICS.items() if isinstance(e, cls)), None)
                if does is not None and getattr(e, "update_running_mean", True):
                    return [Check("wrappers", False, (
                        f"task '{task.name}' of family '{family.name}': its env {does[0]} ({type(e).__name__} in "
                        f"the family's build): each env rltransfer builds (a run's training envs, its evaluation "
                        f"envs) would keep statistics of its own, so {does[1]}; leave it out of the build and set "
                        "agent.normalize: true (SB3's VecNormalize: observations normalised and rewards scaled while "
                        "training, the statistics kept with the agent and frozen in evaluation)"
                    ))]  # fmt: skip
                e = e.env
        finally:
            env.close()
    return [Check("wrappers", True, "no env keeps running statistics of its observations or rewards")]


def check_layout(family: Family) -> list[Check]:
    """The tasks' spaces share one layout (:func:`~rltransfer.envs.multitask.task_layout`), in a form SB3 reads and
    acts in (:mod:`~rltransfer.envs.space_forms`): an experiment over tasks that do not is refused when its config
    loads. Where they differ, say how (each gets an input stem and head)."""
    from rltransfer.envs.multitask import task_layout

    tasks = list(family.tasks.values())
    try:
        layout = task_layout(family, tasks)
    except TaskError as err:
        return [Check("spaces", False, f"family '{family.name}': {err}")]
    try:
        check_observation_form(family, layout.observation)
        check_action_form(family, layout.action)
    except TaskError as err:
        return [Check("spaces", False, str(err))]
    if not layout.mixed:
        return [Check("spaces", True, f"every task observes {shown(layout.observation)} and acts in "
                      f"{shown(layout.action)}")]  # fmt: skip
    sizes = ", ".join(
        f"{t.name} {o}" + (f"/{a}" if a else "") for t, o, a in zip(tasks, layout.obs_dims, layout.action_dims)
    )
    return [Check("spaces", True, f"the tasks' spaces differ (observation entries{'/actions' if any(layout.action_dims) else ''}: "
                  f"{sizes}): each task gets its own input stem and head")]  # fmt: skip


def check_parameters(family: Family, steps: int = STEPS) -> list[Check]:
    """Each parameter, at the end of its range farther from its default, changes the trajectory. Where no task
    sits at that end, its env may fail to build or break the step contract there: a failed check says how."""
    try:
        reference = trajectory(family.make(family.task({}, where="check")), steps=steps)
    except Exception as err:
        return [Check("parameters", False, f"every parameter at its default: {raised(err)}")]
    out = []
    for p in family.parameters.values():
        other = p.low if abs(p.low - p.default) > abs(p.high - p.default) else p.high
        if other == p.default:
            out.append(Check(f"parameter {p.name}", True, "its range is one value: nothing to vary"))
            continue
        try:
            moved = trajectory(family.make(family.task({p.name: other}, where="check")), steps=steps)
        except Exception as err:
            out.append(Check(f"parameter {p.name}", False, f"{p.default:g} -> {other:g}: {raised(err)}"))
            continue
        ok = not _same(reference, moved)
        detail = f"{p.default:g} -> {other:g}: " + ("the trajectory changes" if ok else f"the same {steps} steps")
        out.append(Check(f"parameter {p.name}", ok, detail if ok else detail + ": it has no effect on the dynamics"))
    return out


def time_limit(env: gym.Env) -> int | None:
    """The env's time limit: its ``TimeLimit`` wrapper's, or its spec's ``max_episode_steps`` (None: neither)."""
    e: object = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return int(e._max_episode_steps)
        e = e.env
    spec = env.spec
    return spec.max_episode_steps if spec is not None else None


def random_episode_length(env: gym.Env, limit: int = MAX_EPISODE_STEPS, seed: int = 0) -> int | None:
    """How many steps a random policy's episode lasts from a reset with ``seed`` (None: not ended in ``limit``)."""
    space = env.action_space
    space.seed(seed)
    env.reset(seed=seed)
    for step in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(space.sample())
        if terminated or truncated:
            return step
    return None


def check_episodes_end(
    family: Family, limit: int = MAX_EPISODE_STEPS, tasks: Iterable[Task] | None = None
) -> list[Check]:
    """Every task's episodes end (``tasks``: the family's by default): evaluation runs whole episodes. A time
    limit settles it; without one, a random policy's episode must end within ``limit`` steps (a good policy's
    may still not: say so)."""
    limits, unlimited = {}, []
    for task in family.tasks.values() if tasks is None else tasks:
        name = task.name
        env = family.make(task)
        try:
            found = time_limit(env)
            if found is not None:
                limits[name] = found
                continue
            if random_episode_length(env, limit) is None:
                return [Check("episodes end", False, f"task '{name}' of family '{family.name}': a random policy's "
                              f"episode did not end in "
                              f"{limit:,} steps; give the env a time limit (gymnasium.wrappers.TimeLimit(env, "
                              "max_episode_steps=...) in the family's build, or max_episode_steps where it is "
                              "registered)")]  # fmt: skip
            unlimited.append(name)
        finally:
            env.close()
    detail = f"time limit {min(limits.values()):,} to {max(limits.values()):,} steps" if limits else ""
    if limits and min(limits.values()) == max(limits.values()):
        detail = f"time limit {min(limits.values()):,} steps"
    if unlimited:
        detail = (detail + "; " if detail else "") + (
            f"no time limit on {', '.join(unlimited)}, where a random policy's episodes end: an agent's must end "
            f"too (an evaluation stops with an error after {limit:,} steps)"
        )
    return [Check("episodes end", True, detail)]


def repeats(env: gym.Env, seed: int = 0, steps: int = 50) -> bool:
    """Whether ``env`` runs the same ``steps`` twice (observations, rewards, ends) from a reset with ``seed`` under
    the same seeded actions: as an experiment's ``envs.json`` needs its rollouts to (:meth:`Rollout.same_as`)."""
    return rollout(env, seed=seed, steps=steps).same_as(rollout(env, seed=seed, steps=steps))


def check_seeding(family: Family, steps: int = STEPS) -> list[Check]:
    """Every task runs the same twice from the same reset seed and actions."""
    failed = []
    for name, task in family.tasks.items():
        env = family.make(task)
        try:
            if not repeats(env, steps=steps):
                failed.append(name)
        finally:
            env.close()
    if failed:
        return [Check("seeded", False, f"{', '.join(failed)}: the same reset seed and actions give other observations "
                      "each time; draw every random number from self.np_random, which reset(seed=...) seeds (call "
                      "super().reset(seed=seed) first), and carry nothing from one episode into the next (running "
                      "statistics, a count of episodes)")]  # fmt: skip
    return [
        Check("seeded", True, f"every task runs the same twice from the same reset seed and actions ({steps} steps)")
    ]


def check_isolation(family: Family, steps: int = STEPS) -> list[Check]:
    """A task's trajectory does not depend on which other tasks were built or run in the process."""
    tasks: list[Task] = list(family.tasks.values())
    first = tasks[0]
    early = family.make(first)  # built before the others
    alone = trajectory(family.make(first), steps=steps)
    others = [family.make(t) for t in tasks[1:]]  # alive together, each run once
    for env in others:
        trajectory(env, steps=steps)
    before = trajectory(early, steps=steps)  # before anything of its own task is built again
    again = trajectory(family.make(first), steps=steps)
    ok = _same(alone, again) and _same(alone, before)
    detail = (
        f"'{first.name}' runs the same before and after the {len(others)} other task(s) are built and run"
        if ok
        else f"'{first.name}' runs differently once other tasks are built: a setting reaches beyond its instance "
        "(a module or class attribute?)"
    )
    return [Check("no state shared between tasks", ok, detail)]


def check_family(family: Family, steps: int = STEPS) -> list[Check]:
    """Every check of this module, in order (none where a task does not build; those that roll the envs out
    only where their steps pass and no env keeps running statistics)."""
    from rltransfer.envs.vector_check import check_vector_build  # it builds on this module's Check

    built = check_builds(family)
    if not built[0].ok:
        return built
    stepped, wrapped = check_steps(family, steps=steps), check_wrappers(family)
    if not stepped[0].ok or not wrapped[0].ok:
        return built + check_tasks(family) + stepped + wrapped + check_layout(family)
    return (
        built
        + check_tasks(family)
        + stepped
        + wrapped
        + check_layout(family)
        + check_episodes_end(family)
        + check_seeding(family, steps)
        + check_parameters(family, steps)
        + check_isolation(family, steps)
        + check_vector_build(family)
    )
