"""``rltransfer families --check``'s "vector build" check: a family's vector build (``Family(vector=...)``, which
steps its envs wherever rltransfer steps them, in pre-training, runs and evaluations) gives the results of the
family's own envs stepped one by one, bit for bit, also where a batch of seeds steps several seeds' builds as one
(:class:`~rltransfer.envs.multitask.StepTogether`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rltransfer.envs.behaviour import raised
from rltransfer.envs.checks import Check
from rltransfer.envs.family import Family, Task
from rltransfer.envs.multitask import MultiTaskVecEnv, StepTogether
from rltransfer.observation_keys import OBS

VECTOR_STEPS = 1000
"""Steps of the vector build's check: enough for random policies' episodes to end and restart."""


def check_vector_build(family: Family, steps: int = VECTOR_STEPS) -> list[Check]:
    """Where the family has a vector build (``Family(vector=...)``, which steps its envs wherever rltransfer steps
    them, in pre-training, runs and evaluations): it gives the results of the family's own envs stepped one by
    one, as SB3's ``DummyVecEnv`` steps them, bit for bit: the same observations, rewards, ends, terminal
    observations and episode records, for every task's parameters, the same reset seeds and seeded random
    actions, over episodes that end and restart from each env's own stream. None where the family has none."""
    if family.vector is None:
        return []
    tasks = list(family.tasks.values())
    try:
        vector = MultiTaskVecEnv(family, tasks, "none", envs_per_task=2)
    except Exception as err:  # the vector build's constructor (the envs built in the builds check)
        return [Check("vector build", False, f"building it raised {raised(err)}")]
    if vector._vector is None:
        vector.close()
        return [Check("vector build", True, "not used: the tasks' spaces differ (their envs step one by one)")]
    alone = MultiTaskVecEnv(family, tasks, "none", envs_per_task=2)
    alone._vector = None  # the family's envs, stepped one by one
    names = [tasks[i].name for i in vector.slot_tasks]
    space = vector.action_space
    space.seed(0)
    ended = 0
    for env in (vector, alone):
        env.seed(0)
    step = 0
    try:
        differs = _differs(_reset(vector), _reset(alone))
        while differs is None and step < steps:
            step += 1
            actions = np.stack([space.sample() for _ in range(vector.num_envs)])
            stepped = alone.step(actions)
            differs = _differs(vector.step(actions), stepped)
            ended += int(stepped[2].sum())
    except Exception as err:  # the vector build's own code, most likely (the envs passed the steps check)
        at = "the reset" if step == 0 else f"step {step}"
        return [Check("vector build", False, f"{at} raised {raised(err)}")]
    finally:
        vector.close()
        alone.close()
    if differs is not None:
        what, slot = differs
        at = "after the reset" if step == 0 else f"at step {step}"
        return [Check("vector build", False, f"task '{names[slot]}' (sub-env {slot}): its {what} {at} differs from "
                      "the family's env's, for the same parameters, reset seeds and actions; the vector build must give "
                      "build's results bit for bit (rltransfer steps the family's envs with it)")]  # fmt: skip
    joint = _joint_difference(family, tasks, steps // 2)
    if joint is not None:
        return [Check("vector build", False, joint)]
    return [Check("vector build", True, f"every task's envs step as the family's own envs, bit for bit ({steps} "
                  f"steps of {vector.num_envs} envs, {ended} episodes ended), and as themselves when a batch of seeds "
                  "steps its builds as one")]  # fmt: skip


def _joint_difference(family: Family, tasks: list[Task], steps: int) -> str | None:
    """Three seeds' vector builds (the tasks, in reverse, the first alone) stepped as one, as a batch of seeds
    steps them (:class:`~rltransfer.envs.multitask.StepTogether`; also with their steps finished in one call, as
    an evaluation's, where the build says it may): how a seed's results differ from its build stepped alone, or
    None."""
    groups = [tasks, tasks[::-1], tasks[:1]]
    ways = (False, True) if family.vector is not None and family.vector.finishes_jointly else (False,)
    for outcomes_only in ways:
        how = "their steps finished in one call (an evaluation's)" if outcomes_only else "their physics stepped as one"
        together: list[MultiTaskVecEnv] = []
        alone: list[MultiTaskVecEnv] = []
        try:
            together += [MultiTaskVecEnv(family, g, "none", envs_per_task=2) for g in groups]
            alone += [MultiTaskVecEnv(family, g, "none", envs_per_task=2) for g in groups]
            space = together[0].action_space
            space.seed(1)
            step_all = StepTogether(together, outcomes_only=outcomes_only)
            for i, (a, b) in enumerate(zip(together, alone)):
                a.seed(10 * i)
                b.seed(10 * i)
                a.reset()
                b.reset()
            for step in range(1, steps + 1):
                actions = [np.stack([space.sample() for _ in range(env.num_envs)]) for env in together]
                for i, (result, env, act) in enumerate(zip(step_all([0, 1, 2], actions), alone, actions)):
                    if isinstance(result, Exception):
                        raise result
                    own = env.step(act)
                    if outcomes_only:  # no infos made
                        own = (*own[:3], result[3])
                    differs = _differs(result, own)
                    if differs is not None:
                        what, slot = differs
                        return (f"stepped with other seeds' builds ({how}, as a batch of seeds steps them), task "
                                f"'{env.task_names[env.slot_tasks[slot]]}' (seed {i}, sub-env {slot}): its {what} at "
                                f"step {step} differs from its build's stepped alone; _step must act env by env (no "
                                "value taken across envs) and the build's state_fields name every per-env array "
                                "_step reads and replaces")  # fmt: skip
        except Exception as err:
            return f"stepped with other seeds' builds ({how}, as a batch of seeds steps them): {raised(err)}"
        finally:
            for env in together + alone:
                env.close()
    return None


def _reset(env: MultiTaskVecEnv) -> tuple[Any, np.ndarray, np.ndarray, list[dict]]:
    """A reset as a step's results: the observations, no rewards, no ends, the reset infos."""
    obs = env.reset()
    return obs, np.zeros(env.num_envs), np.zeros(env.num_envs, bool), [{} for _ in range(env.num_envs)]


def _differs(mine: tuple, theirs: tuple) -> tuple[str, int] | None:
    """The first of a step's results (observations, rewards, ends, infos; by name) where ``mine`` differs from
    ``theirs``, and the sub-env."""
    for name, v, a in zip(("observation", "reward", "end"), mine, theirs):
        v, a = np.asarray(_raw(v)), np.asarray(_raw(a))
        rows = np.flatnonzero(~(v == a).reshape(len(v), -1).all(axis=1))
        if rows.size:
            return name, int(rows[0])
    for slot, (iv, ia) in enumerate(zip(mine[3], theirs[3])):
        tv, ta = iv.get("terminal_observation"), ia.get("terminal_observation")
        if (tv is None) != (ta is None) or (ta is not None and not np.array_equal(_raw(tv), _raw(ta))):
            return "terminal observation", slot
        ev, ea = iv.get("episode"), ia.get("episode")
        if (ev is None) != (ea is None) or (ea is not None and (ev["r"], ev["l"]) != (ea["r"], ea["l"])):
            return "episode record (return, length)", slot
        if iv.get("TimeLimit.truncated", False) != ia.get("TimeLimit.truncated", False):
            return "time-limit truncation", slot
    return None


def _raw(obs: Any) -> Any:
    """The env's own observation in a conditioned one (its ``obs`` entry)."""
    return obs[OBS] if isinstance(obs, dict) else obs
