"""A run's ``result.json``: what one (target, strategy, seed) run measured, and under which config.

One typed record with one owner: this module reads and writes it (a run directory's file, a publication's
runs file) and scores it (:meth:`FinishedRun.rescored`); the run, the experiment, the report and
``rltransfer verify`` use its fields. A field a result does not hold (``reuse_key`` of a run that loads a
bundle, ``copied_from`` of one that ran here) stays absent when it is written back, so reading and writing
a result changes no byte of it.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from rltransfer.atomic import atomic_write_bytes, write_json_atomic
from rltransfer.records.base import Record, first_problem
from rltransfer.records.machine import Machine
from rltransfer.stats import metrics
from rltransfer.store.layout import run_key

RESULT_FILE = "result.json"
RUNS_FILE = "runs.jsonl.gz"
"""A publication's results, every run's ``result.json`` one line (:func:`write_json_lines`)."""


class _Record(Record):
    model_config = ConfigDict(populate_by_name=True)


class Curve(_Record):
    """The run's evaluations: at each ``step``, the mean (and standard deviation) of the episodes'
    returns and that mean normalised, s = (R - random) / (threshold - random)."""

    step: list[int]
    returns: list[float] = Field(alias="return")
    return_std: list[float]
    score: list[float]


class RunMetrics(_Record):
    """The per-run metrics of the normalised curve (the evaluation protocol)."""

    p0: float
    final: float
    auc: float
    ttt: float
    """Steps to the threshold; the budget where it was not reached (censored, ``reached`` false)."""
    reached: bool


class CopiedFrom(_Record):
    """The run of another experiment this one was copied from (:mod:`rltransfer.store.reuse`)."""

    run_dir: str
    run_hash: str | None


class _Run(_Record):
    target: str
    target_params: dict[str, Any]
    split: str
    """``interpolation`` or ``extrapolation``: where the target lies from the sources."""
    strategy: str
    seed: int
    pretrain_seed: int
    """The pre-training it transferred from (every run names it; ``scratch`` loads nothing of it)."""
    run_hash: str
    """The run's hash (:func:`~rltransfer.store.keys.run_hash`): a finished run is re-used under it."""
    threshold: float
    random_return: float
    code_revision: str | None = None
    machine: Machine | None = None
    """The CPU it computed on (:mod:`rltransfer.records.machine`; absent in results written before it was
    recorded, 2026-12-03)."""
    engine: str | None = None
    """``batched`` where the run trained side by side with other seeds of its cell (the batched engine: other
    random streams than SB3's own ``learn``, which trained a run without it)."""
    reuse_key: str | None = None
    """Set where the run loads nothing from a bundle: another experiment may copy it."""

    @property
    def key(self) -> str:
        return run_key(self.target, self.strategy, self.seed)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


class FinishedRun(_Run):
    """A run that trained (or was evaluated) to its budget."""

    status: Literal["ok"]
    budget: int
    bundle_sha256: str | None = None
    """The checksum of the bundle weights it was built from."""
    components: dict[str, str]
    """What became of each bundle component (loaded, frozen, new...)."""
    curve: Curve
    metrics: RunMetrics
    copied_from: CopiedFrom | None = None

    def rescored(self, threshold: float, random_return: float | None = None) -> FinishedRun:
        """The run scored against another threshold (and random return): the curve's returns normalised
        again and the metrics recomputed (a threshold scores what a run did; the returns stay as
        measured)."""
        rand = self.random_return if random_return is None else random_return
        scores = [float(metrics.normalise(r, rand, threshold)) for r in self.curve.returns]
        curve = self.curve.model_copy(update={"score": scores})
        update = {"threshold": threshold, "random_return": rand, "curve": curve}
        return self.model_copy(update={**update, "metrics": run_metrics(curve.step, scores, self.budget)})


class FailedRun(_Run):
    """A run that raised (or whose worker died): the error, and the evaluations made before it."""

    status: Literal["failed"]
    error: str
    traceback: str | None = None
    curve: Curve | None = None


RunResult = Annotated[FinishedRun | FailedRun, Field(discriminator="status")]
"""A result: finished (``status`` ``ok``) or failed."""

_RESULT: TypeAdapter[FinishedRun | FailedRun] = TypeAdapter(RunResult)


def parse_result(data: Any) -> FinishedRun | FailedRun:
    """A result from its JSON object.

    :raises ValueError: naming the first field that is wrong."""
    try:
        return _RESULT.validate_python(data)
    except ValidationError as err:
        raise ValueError(f"not a run result: {first_problem(err)}") from None


def run_metrics(steps: list[int], scores: list[float], budget: int) -> RunMetrics:
    """Per-run metrics of a normalised learning curve."""
    ttt, reached = metrics.time_to_threshold(steps, scores, budget)
    return RunMetrics(
        p0=scores[0],
        final=metrics.final(steps, scores, budget),
        auc=metrics.auc(steps, scores, budget),
        ttt=ttt,
        reached=reached,
    )


def read_result(path: Path) -> FinishedRun | FailedRun | None:
    """A run directory's result, or ``None`` where there is none or it is not one (a run is then run
    again, as one that never finished)."""
    try:
        return parse_result(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def write_json_lines(objects: Iterable[dict[str, Any]], path: Path) -> None:
    """``objects`` one JSON object a line (keys sorted), gzip-compressed with no timestamp, so that the same
    objects give the same bytes: a publication's runs file, written atomically (a stop mid-write leaves the
    file it replaces)."""
    text = "".join(json.dumps(o, sort_keys=True) + "\n" for o in objects)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(text.encode())
    atomic_write_bytes(path, buf.getvalue())


def read_json_lines(path: Path) -> list[Any]:
    """The objects of a file :func:`write_json_lines` wrote.

    :raises OSError, ValueError: where it is not one."""
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]
