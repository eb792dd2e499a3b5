"""Tasks and families: parameterised Gymnasium environments with source/target splits."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rltransfer.envs.mujoco_warnings import route_mujoco_warnings
from rltransfer.envs.vector import VectorPhysics

SPLITS = ("interpolation", "extrapolation")
MAX_EPISODE_STEPS = 100_000
"""The longest episode rltransfer evaluates: one still running after this many steps is an error (its env has
no time limit, and a return cut off at an arbitrary step would be no measurement)."""


class TaskError(ValueError):
    """A task or parameter that a family does not allow (unknown name, out of range...)."""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, or "" where none is close (the
    pipeline's rltransfer.errors.did_you_mean; envs imports nothing of the pipeline)."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _one_name(kind: str, name: str) -> str:
    """``name``, where it names one directory (a task's runs live in a directory of its name: ``../x`` would leave
    the experiment's, ``a/b`` nest); else a TaskError (rltransfer.config's ``is_one_name``, restated: envs
    imports nothing of the pipeline)."""
    if not isinstance(name, str) or name.strip() != name or name in ("", ".", "..") or "/" in name or "\\" in name:
        raise TaskError(
            f"{kind} name {name!r}: expected one directory name: not empty, no '/' or '\\', not '.' or '..', "
            "no spaces at either end"
        )
    return name


@dataclass(frozen=True)
class Parameter:
    """One physical parameter of a family, with its default and valid range (inclusive)."""

    name: str
    default: float
    low: float
    high: float
    doc: str = ""
    integer: bool = False
    """Only whole numbers are valid (a size, a layout code)."""

    def __post_init__(self) -> None:
        _one_name("parameter", self.name)  # a task given by its parameters is named after them
        if self.low > self.high:
            raise TaskError(
                f"parameter '{self.name}': range [{self.low}, {self.high}] has its low end above its high end"
            )
        if not self.low <= self.default <= self.high:
            raise TaskError(
                f"parameter '{self.name}': default {self.default} outside its range [{self.low}, {self.high}]"
            )

    def normalise(self, value: float) -> float:
        """Map ``value`` from ``[low, high]`` to ``[-1, 1]`` (0 for a degenerate range)."""
        if self.high == self.low:
            return 0.0
        return 2.0 * (value - self.low) / (self.high - self.low) - 1.0


@dataclass(frozen=True)
class Task:
    """One concrete environment of a family: a name and a full set of parameter values."""

    family: str
    name: str
    params: Mapping[str, float]
    context: tuple[float, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "context": list(self.context)}


Builder = Callable[[Mapping[str, float]], gym.Env]


class Family:
    """A named set of tasks that share meaning, and how to build each one.

    :param name: the family's name (``rltransfer families`` lists it).
    :param parameters: the family's parameters, with defaults and valid ranges.
    :param build: ``params -> gymnasium.Env``; must apply every parameter to *this instance*
        only (never to module- or class-level state) and recompute derived quantities.
    :param tasks: named tasks, each a dict of parameter overrides (others take defaults).
    :param source: names of the default source (pre-training) tasks.
    :param targets: default held-out target tasks; a mapping name -> split label
        (``interpolation`` | ``extrapolation``), or a list of names whose split is
        inferred: interpolation when every parameter lies within the sources' range.
    :param reward_threshold: the return that counts as solving a task; ``None`` takes the
        Gymnasium spec's ``reward_threshold`` of the built env.
    :param threshold_note: why the threshold is what it is, where it is not Gymnasium's.
    :param description: one line for ``rltransfer families``.
    :param vector: a :class:`~rltransfer.envs.vector.VectorPhysics` subclass that steps N of the family's envs
        as numpy arrays with the same results as ``build``'s envs (optional; a speed-up).
    """

    def __init__(
        self,
        name: str,
        parameters: Iterable[Parameter],
        build: Builder,
        tasks: Mapping[str, Mapping[str, float]],
        source: Iterable[str],
        targets: Mapping[str, str] | Iterable[str],
        reward_threshold: float | None = None,
        threshold_note: str = "",
        description: str = "",
        vector: type[VectorPhysics] | None = None,
    ) -> None:
        self.name = name
        self.spec: dict[str, Any] | None = None
        """The declaration of a family declared as data (:mod:`rltransfer.envs.declared`); None for code."""
        self.parameters: dict[str, Parameter] = {p.name: p for p in parameters}
        self.build = build
        """``params -> gymnasium.Env`` (:meth:`make` builds a task's env with it)."""
        self.description = description
        self.threshold_note = threshold_note
        self.tasks: dict[str, Task] = {_one_name("task", n): self._task(n, p, f"task '{n}'") for n, p in tasks.items()}
        self.source_tasks: list[str] = [self._known(n) for n in source]
        if not self.source_tasks:
            raise TaskError(f"family '{name}': needs at least one source task")
        if isinstance(targets, Mapping):
            self.target_tasks = {self._known(n): self._split(s) for n, s in targets.items()}
        else:
            self.target_tasks = {self._known(n): self.infer_split(self.tasks[n], self.source_tasks) for n in targets}
        overlap = set(self.source_tasks) & set(self.target_tasks)
        if overlap:
            raise TaskError(f"family '{name}': tasks both source and target: {sorted(overlap)}")
        self._threshold = reward_threshold
        self.vector = vector
        """The family's vector build (:mod:`rltransfer.envs.vector`): N of its envs stepped as arrays, with
        the same results as ``build``'s; None: its envs are stepped one by one."""

    # -- tasks -------------------------------------------------------------------------------
    def task(self, spec: str | Task | Mapping[str, Any], where: str = "") -> Task:
        """Resolve a task name, a :class:`Task`, or a parameter dict (optional ``name`` key); an error names
        ``where`` first (a config key, say)."""
        at = f"{where}: " if where else ""
        if isinstance(spec, Task):
            if spec.family != self.name:
                raise TaskError(f"{at}task '{spec.name}' belongs to family '{spec.family}', not '{self.name}'")
            return spec
        if isinstance(spec, str):
            if spec not in self.tasks:
                raise TaskError(
                    f"{at}unknown task '{spec}' in family '{self.name}'{did_you_mean(spec, self.tasks)}; "
                    f"known tasks: {', '.join(self.tasks)}"
                )
            return self.tasks[spec]
        if isinstance(spec, Mapping):
            params = dict(spec)
            name = params.pop("name", None)
            if name is not None:
                _one_name(f"{at}task", name)
            task = self._task(str(name), params, where)  # validates before the name uses the values
            if name is None:
                name = "_".join(f"{k}={task.params[k]:g}" for k in sorted(params)) or "default-params"
                task = Task(self.name, name, task.params, task.context)
            return task
        raise TaskError(f"{at}expected a task name or a parameter mapping, got {type(spec).__name__}")

    def _task(self, name: str, overrides: Mapping[str, Any], where: str) -> Task:
        at = f"{where}: " if where else ""
        params: dict[str, float] = {}
        for key, value in overrides.items():
            if key not in self.parameters:
                raise TaskError(
                    f"{at}unknown parameter '{key}' for family '{self.name}'{did_you_mean(key, self.parameters)}; "
                    f"parameters: {', '.join(self.parameters)}"
                )
            p = self.parameters[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TaskError(f"{at}parameter '{key}' must be a finite number, got {value!r}")
            if p.integer and float(value) != int(value):
                raise TaskError(f"{at}parameter '{key}' must be a whole number, got {value}")
            if not p.low <= value <= p.high:
                raise TaskError(
                    f"{at}parameter '{key}'={value} is out of range [{p.low}, {p.high}] in family '{self.name}'"
                )
            params[key] = float(value)
        full = {k: params.get(k, p.default) for k, p in self.parameters.items()}
        context = tuple(self.parameters[k].normalise(v) for k, v in full.items())
        return Task(self.name, name, full, context)

    def _known(self, name: str) -> str:
        self.task(name, where=f"family '{self.name}'")
        return name

    @staticmethod
    def _split(label: str) -> str:
        if label not in SPLITS:
            raise TaskError(f"split label '{label}' unknown; allowed: {', '.join(SPLITS)}")
        return label

    def infer_split(self, task: Task, sources: Iterable[str | Task | Mapping[str, Any]]) -> str:
        """``interpolation`` when every parameter of ``task`` lies within the sources' range."""
        src = [self.task(s) for s in sources]
        for key in self.parameters:
            values = [s.params[key] for s in src]
            if not min(values) <= task.params[key] <= max(values):
                return "extrapolation"
        return "interpolation"

    def split_of(
        self, task: str | Task | Mapping[str, Any], sources: Iterable[str | Task | Mapping[str, Any]] | None = None
    ) -> str:
        """The split of a task: ``source``, its labelled split, or inferred from the sources."""
        t = self.task(task)
        sources = list(sources) if sources is not None else self.source_tasks
        src_names = [self.task(s).name for s in sources]
        if t.name in src_names:
            return "source"
        # The family's label holds for its own default sources (same tasks, same parameters).
        if (
            sorted(src_names) == sorted(self.source_tasks)
            and t.name in self.target_tasks
            and t == self.tasks.get(t.name)
        ):
            return self.target_tasks[t.name]
        return self.infer_split(t, sources)

    def sample_tasks(self, n: int, seed: int, prefix: str = "sampled") -> list[Task]:
        """``n`` tasks with parameters drawn uniformly from their ranges, reproducibly."""
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            params = {
                k: float(rng.integers(int(p.low), int(p.high) + 1)) if p.integer else float(rng.uniform(p.low, p.high))
                for k, p in self.parameters.items()
            }
            out.append(self._task(f"{prefix}-{seed}-{i}", params, f"sampled task {i}"))
        return out

    def context(self, task: str | Task | Mapping[str, Any]) -> np.ndarray:
        """The task's conditioning vector: its parameters normalised to ``[-1, 1]``."""
        return np.asarray(self.task(task).context, dtype=np.float32)

    def nearest(self, task: str | Task | Mapping[str, Any], among: Sequence[str | Task | Mapping[str, Any]]) -> int:
        """The index of the task of ``among`` nearest to ``task`` by context (Euclidean distance between their
        normalised parameters; the first of equally near ones)."""
        contexts = np.array([self.context(t) for t in among])
        return int(np.argmin(np.linalg.norm(contexts - self.context(task), axis=1)))

    # -- environments -------------------------------------------------------------------------
    def make(self, task: str | Task | Mapping[str, Any]) -> gym.Env:
        """Build a fresh ``gymnasium.Env`` for ``task`` (a name, a Task, or a parameter dict)."""
        params = self.task(task).params
        route_mujoco_warnings()  # where an env built before loaded MuJoCo
        return self.build(params)

    def reward_threshold(self, task: str | Task | Mapping[str, Any] | None = None) -> float:
        """The return that counts as solving a task (family's own, else the Gymnasium spec's)."""
        if self._threshold is not None:
            return float(self._threshold)
        env = self.make(task if task is not None else self.source_tasks[0])
        try:
            spec = env.spec
            if spec is None or spec.reward_threshold is None:
                raise TaskError(f"family '{self.name}' defines no reward threshold and its env has none")
            return float(spec.reward_threshold)
        finally:
            env.close()

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: parameters, tasks and the default splits."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {
                k: {"default": p.default, "low": p.low, "high": p.high, "doc": p.doc}
                for k, p in self.parameters.items()
            },
            "tasks": {k: dict(t.params) for k, t in self.tasks.items()},
            "source_tasks": list(self.source_tasks),
            "target_tasks": dict(self.target_tasks),
            "reward_threshold": self._threshold,
            "threshold_note": self.threshold_note,
        }

    def __repr__(self) -> str:
        return f"Family({self.name!r}, tasks={list(self.tasks)})"
