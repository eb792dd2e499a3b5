"""An experiment directory's ``manifest.json``: which config and code ran, the protocol its runs were
scored under, the pre-trainings it judged and how each run of the grid ended.

One typed record with one owner: this module reads and writes it; the experiment changes it through its
methods, the report and ``rltransfer verify`` read it. A field a manifest does not hold (one written
before the field existed, a publication's) stays absent when the record is written back, so re-reading
and re-writing a manifest changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_serializer, field_validator

from rltransfer.atomic import write_json_atomic
from rltransfer.errors import UserInputError
from rltransfer.records.base import Record, first_problem
from rltransfer.records.machine import Machine
from rltransfer.source_gate import Pretraining

MANIFEST_FILE = "manifest.json"

RunState = Literal["pending", "running", "ok", "failed", "interrupted"]


def now() -> str:
    """A manifest's timestamps: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Record(Record):
    model_config = ConfigDict(validate_assignment=True)


class RunEntry(_Record):
    """How one run of the grid stands (its result lies in its run directory)."""

    status: RunState
    started: str | None = None
    finished: str | None = None
    wall_seconds: float | None = None
    """The run's own time on its worker, evaluation included."""
    eval_seconds: float | None = None
    error: str | None = None
    copied_from: str | None = None
    """The run directory of another experiment it was copied from (:mod:`rltransfer.store.reuse`)."""


class TaskScale(_Record):
    """What scores a target's returns: s = (R - random_return) / (threshold - random_return)."""

    threshold: float
    random_return: float


class Protocol(_Record):
    """The evaluation protocol the grid's runs were measured and scored under."""

    every: int
    episodes: int
    deterministic: bool
    budget: int
    eval_seed: int
    seeds: int
    """Transfer seeds per (target, strategy)."""
    pretrain_seeds: int
    tasks: dict[str, TaskScale]
    """Per target task."""
    pretrain_kept: list[int]
    """The pre-training seeds transferred from, by place (transfer seed i: place i mod their number)."""
    min_source_score: float | None
    source_tasks: list[str] = Field(default_factory=list)


class ExperimentManifest(_Record):
    """The content of ``manifest.json``."""

    experiment: str | None = None
    config_hash: str | None = None
    """The experiment hash (:func:`~rltransfer.store.keys.experiment_hash`) of the config it ran."""
    layout_version: int | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    code_revision: str | None = None
    machine: Machine | None = None
    """The CPU of the last invocation (each run records its own)."""
    started: str | None = None
    finished: str | None = None
    status: str | None = None
    """``running``, ``done``, ``failed runs``, ``interrupted`` or ``pre-trainings rejected``."""
    runs: dict[str, RunEntry] = Field(default_factory=dict)
    """By run key, ``<target>/<strategy>/seed-<s>``."""
    pretrainings: list[Pretraining] = Field(default_factory=list)
    protocol: Protocol | None = None
    pretrain_steps: int | None = None
    """Source steps one kept pre-training cost (rejected ones' included)."""
    workers: int | None = None
    grid_seconds: float | None = None
    grid_runs: int | None = None
    """How many runs the last invocation ran (the others were re-used)."""

    @field_validator("pretrainings", mode="before")
    @classmethod
    def _without_kept(cls, value: Any) -> Any:
        # "kept" is written for readers of the JSON; the record derives it from the slot.
        if isinstance(value, list):
            return [{k: v for k, v in p.items() if k != "kept"} if isinstance(p, dict) else p for p in value]
        return value

    @field_serializer("pretrainings")
    def _with_kept(self, value: list[Pretraining]) -> list[dict[str, Any]]:
        return [p.to_dict() for p in value]

    # -- reading and writing ------------------------------------------------------------------------
    @classmethod
    def read(cls, run_dir: Path) -> ExperimentManifest:
        """The manifest of ``run_dir`` (an empty one where there is none yet).

        :raises UserInputError: when it is there but not a manifest, naming what is wrong.
        """
        path = Path(run_dir) / MANIFEST_FILE
        if not path.is_file():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as err:
            raise UserInputError(
                f"'{path}' is not an experiment manifest: {first_problem(err)} ({err.error_count()} problem(s)); "
                "restore it or remove the directory"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without the fields the manifest never held (see the module's docstring)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def write(self, run_dir: Path) -> None:
        write_json_atomic(Path(run_dir) / MANIFEST_FILE, self.to_json())

    # -- what the experiment records ------------------------------------------------------------------
    def start(self, **fields: Any) -> None:
        """An invocation's start (its experiment, hash, versions, revision, layout); the runs' entries of
        earlier invocations are kept."""
        for name, value in {**fields, "started": now(), "finished": None, "status": "running"}.items():
            setattr(self, name, value)

    def set_run(self, key: str, status: RunState, **fields: Any) -> None:
        """Run ``key``'s entry, replaced."""
        self.runs = {**self.runs, key: RunEntry(status=status, **fields)}

    def plan_run(self, key: str, finished: bool) -> None:
        """A run of this invocation's grid: ``ok`` where it finished already (keeping what its entry says),
        ``pending`` where it has no entry yet."""
        entry = self.runs.get(key)
        if entry is None:
            self.set_run(key, "ok" if finished else "pending")
        elif finished and entry.status != "ok":
            self.set_run(key, "ok", **entry.model_dump(exclude_unset=True, exclude={"status"}))

    def end(self, status: str, **fields: Any) -> None:
        """The invocation's end: its status, when, and what else it measured (workers, grid time...)."""
        for name, value in {"status": status, "finished": now(), **fields}.items():
            setattr(self, name, value)

    def finished_runs(self) -> int:
        return sum(1 for r in self.runs.values() if r.status == "ok")
