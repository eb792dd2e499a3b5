"""An experiment directory's ``envs.json``: what its family's envs did when its results were made.

A config names a family and its tasks; it does not hold the family's code. So an env edited since (its
reward, its dynamics, a task's parameters in the family's registration) leaves every hash as it was, and
finished work would be re-used for an env it was not made with. The experiment records each task's spaces,
parameters and a short seeded rollout summed up (:mod:`rltransfer.envs.behaviour`), and the family's
parameter ranges (the conditioning scales by them); a directory whose record differs from the env as it is
now is refused, as one of another config is, and its work is not copied to another experiment.

Rollouts compare to :data:`RELATIVE` (and :data:`ABSOLUTE` near zero), not to the bit: on another kind of CPU
an env's physics can round a last digit apart, which an edit to the env does not come near. One typed record
with one owner: this module reads, writes and compares it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltransfer.atomic import atomic_write_bytes
from rltransfer.records.base import Record

ENVS_FILE = "envs.json"
RELATIVE = 1e-5
ABSOLUTE = 1e-6


class TaskBehaviour(Record):
    """One task's env: its parameters, its spaces (:func:`~rltransfer.spaces_json.space_to_json`) and a
    rollout of seeded random actions: each observation's sums, each step's reward and whether its episode
    ended. No rollout where the env does not repeat itself from the same seeds (nothing to compare)."""

    params: dict[str, float]
    time_limit: int | None
    """Its ``TimeLimit``'s steps (None: no time limit)."""
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    observations: list[list[float]] | None = None
    rewards: list[float] | None = None
    ends: list[bool] | None = None

    def differences(self, then: TaskBehaviour) -> list[str]:
        """What differs from ``then`` (the record's): what is now, and what was."""
        out = []
        if self.params != then.params:
            out.append(f"parameters {self.params}, were {then.params}")
        if self.time_limit != then.time_limit:
            out.append(f"time limit {self.time_limit}, was {then.time_limit}")
        for kind in ("observation_space", "action_space"):
            if getattr(self, kind) != getattr(then, kind):
                out.append(f"{kind.replace('_', ' ')} {getattr(self, kind)}, was {getattr(then, kind)}")
        if out or self.observations is None or then.observations is None:
            return out
        for what, now_, was in (
            ("observations", self.observations, then.observations),
            ("rewards", self.rewards, then.rewards),
            ("episodes' ends", self.ends, then.ends),
        ):
            at = _first_apart(now_ or [], was or [])
            if at is not None:
                out.append(f"{what} differ from step {at} of a seeded random rollout")
                break
        return out


class EnvBehaviour(Record):
    """A family's envs as an experiment met them: its parameters (``name: [default, low, high]``) and its tasks'
    behaviour by name."""

    family: str
    parameters: dict[str, list[float]]
    tasks: dict[str, TaskBehaviour]

    @classmethod
    def read(cls, run_dir: Path) -> EnvBehaviour | None:
        """The record in ``run_dir`` (None: the directory has none, or one this version cannot read)."""
        try:
            return cls.model_validate(json.loads((Path(run_dir) / ENVS_FILE).read_text()))
        except (OSError, ValueError, ValidationError):
            return None

    def write(self, run_dir: Path) -> None:
        """Into ``run_dir``, atomically, as compact JSON (a rollout is a few hundred numbers a task)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
        atomic_write_bytes(Path(run_dir) / ENVS_FILE, text.encode())

    def differences(self, then: EnvBehaviour) -> list[str]:
        """How the envs now differ from ``then`` on what both recorded (a task one of them never met is no
        difference), each said as ``where: what``."""
        if self.family != then.family:
            return [f"family '{self.family}' here, '{then.family}' there"]
        out = [
            f"family '{self.family}', parameter '{name}': default and range {value}, were {then.parameters[name]}"
            for name, value in self.parameters.items()
            if name in then.parameters and value != then.parameters[name]
        ]
        out += [f"parameter '{name}' is new" for name in self.parameters if name not in then.parameters]
        out += [f"parameter '{name}' is gone" for name in then.parameters if name not in self.parameters]
        by_what: dict[str, list[str]] = {}  # one line for what several tasks changed alike
        for name, task in self.tasks.items():
            for what in task.differences(then.tasks[name]) if name in then.tasks else []:
                by_what.setdefault(what, []).append(f"'{name}'")
        return out + [f"task{'s' * (len(n) > 1)} {', '.join(n)}: {what}" for what, n in by_what.items()]

    def merged(self, then: EnvBehaviour | None) -> EnvBehaviour:
        """This record with the tasks only ``then`` met kept (a target left out of the config keeps its runs)."""
        if then is None:
            return self
        return self.model_copy(update={"tasks": {**then.tasks, **self.tasks}})


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=ABSOLUTE) or (math.isnan(a) and math.isnan(b))


def _first_apart(now: Sequence[Any], then: Sequence[Any]) -> int | None:
    """The first index where ``now`` and ``then`` (numbers, or lists of numbers) differ, or None."""
    for i, (a, b) in enumerate(zip(now, then)):
        pair = (a, b) if isinstance(a, list) and isinstance(b, list) else ([a], [b])
        if len(pair[0]) != len(pair[1]) or not all(_close(x, y) for x, y in zip(*pair)):
            return i
    return None if len(now) == len(then) else min(len(now), len(then))
