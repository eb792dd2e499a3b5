"""One run of an experiment grid: (target, strategy, seed) -> result.json.

A job is plain data, so any backend (a local process pool, Ray) can run it, and the same job
gives the same result.json wherever it runs.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rltransfer.atomic import atomic_write_bytes
from rltransfer.records.run_result import RESULT_FILE, Curve, FailedRun, FinishedRun, run_metrics
from rltransfer.revision import code_revision
from rltransfer.stats import metrics

if TYPE_CHECKING:
    from rltransfer.validation import Setup


@dataclass(frozen=True)
class RunJob:
    """Everything one run needs, as plain data."""

    config: dict[str, Any]
    config_hash: str
    bundle: str
    target: dict[str, Any]
    """``{"name": ..., "params": {...}}``."""
    split: str
    strategy: str
    seed: int
    pretrain_seed: int
    threshold: float
    random_return: float
    out_dir: str
    reuse_key: str | None = None
    """Set where the run loads nothing from its bundle: other experiments may copy it (:mod:`rltransfer.store.reuse`)."""
    tb_dir: str | None = None
    """Where its TensorBoard events go (the experiment's tree, :func:`rltransfer.store.layout.run_tb`); None:
    ``<out_dir>/tb``."""

    @property
    def key(self) -> str:
        return f"{self.target['name']}/{self.strategy}/seed-{self.seed}"


def eval_tag(target: str) -> str:
    """The TensorBoard tag group of a target's evaluations: its runs' curves and the strategies' IQMs."""
    return f"eval/{target}"


def _identity(job: RunJob) -> dict[str, Any]:
    """What every result of ``job`` records, whatever became of the run."""
    return {
        "target": job.target["name"],
        "target_params": job.target["params"],
        "split": job.split,
        "strategy": job.strategy,
        "seed": job.seed,
        "pretrain_seed": job.pretrain_seed,
        "config_hash": job.config_hash,
        "threshold": job.threshold,
        "random_return": job.random_return,
        **({"reuse_key": job.reuse_key} if job.reuse_key else {}),
        "code_revision": code_revision(),
    }


def record_failure(job: RunJob, error: str) -> dict[str, Any]:
    """A run whose worker itself failed (a crashed process, a lost Ray task): its failed result written
    where the run would have written it, so the report lists it; returns the run's summary."""
    FailedRun(**_identity(job), status="failed", error=error).write(Path(job.out_dir) / RESULT_FILE)
    return {"key": job.key, "status": "failed", "error": error, "wall_seconds": 0.0, "eval_seconds": 0.0}


@functools.lru_cache(maxsize=4)
def _setup_of(config: str) -> Setup:
    """A job's config (its JSON) resolved, once a process: every run of one experiment a worker takes
    shares it (the experiment validated the config where it started). The JSON keeps the config's key
    order: a declared family's parameters are in it, and their order is the order of its context."""
    from rltransfer.config import load_config
    from rltransfer.validation import resolve

    return resolve(load_config(json.loads(config)))


def execute(job: RunJob) -> dict[str, Any]:
    """Run one job and write its ``result.json`` (status ``ok`` or ``failed``); return a summary.

    Exceptions of the run are caught and recorded: one failing run never stops the grid.
    """
    import torch

    torch.set_num_threads(1)
    out = Path(job.out_dir)
    start = time.perf_counter()
    base = _identity(job)
    evaluator = None
    result: FinishedRun | FailedRun
    try:
        from rltransfer.bundle import load_bundle
        from rltransfer.evaluation import Evaluator
        from rltransfer.transferring import eval_env_factory, transfer

        setup = _setup_of(json.dumps(job.config))
        cfg = setup.config
        bundle = load_bundle(job.bundle)
        target = {"name": job.target["name"], **job.target["params"]}
        ev = cfg.evaluation
        budget = cfg.transfer.timesteps

        def normalise(r: float) -> float:
            return float(metrics.normalise(r, job.random_return, job.threshold))

        evaluator = Evaluator(
            eval_env_factory(setup, bundle, target, ev.episodes),
            ev.every,
            budget,
            ev.episodes,
            ev.deterministic,
            normalise,
            seed=job.seed,
            tag=eval_tag(job.target["name"]),
        )
        res = transfer(
            setup, bundle, target, job.strategy, seed=job.seed, out_dir=out, callbacks=[evaluator],
            tb_dir=job.tb_dir,
        )  # fmt: skip
        curve = Curve.model_validate(evaluator.curve)
        result = FinishedRun(
            **base,
            status="ok",
            budget=budget,
            bundle_sha256=res.lineage.bundle_sha256,
            components=res.lineage.components_status(),
            curve=curve,
            metrics=run_metrics(curve.step, curve.score, budget),
        )
    except Exception as err:  # recorded, not raised: the rest of the grid goes on
        made = evaluator is not None and evaluator.curve["step"]
        result = FailedRun(
            **base,
            status="failed",
            error=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(limit=8),
            **({"curve": Curve.model_validate(evaluator.curve)} if made and evaluator is not None else {}),
        )
    wall = time.perf_counter() - start
    result.write(out / RESULT_FILE)
    return {
        "key": job.key,
        "status": result.status,
        "error": result.error if isinstance(result, FailedRun) else None,
        "wall_seconds": wall,
        "eval_seconds": evaluator.eval_seconds if evaluator is not None else 0.0,
    }


# -- jobs that carry their inputs and return their outputs (a cluster without a shared filesystem) --------
SHIPPED = "<shipped with the job>"
"""The path fields of a detached job: the worker puts the bundle it is given, and the run's outputs, in a
directory of its own."""


def detached(job: RunJob) -> RunJob:
    """``job`` without the driver's paths: its bundle travels as bytes, its outputs come back by value
    (the config's ``output_dir`` is the driver's too: a run writes where its job says, never there)."""
    return replace(job, bundle=SHIPPED, out_dir=SHIPPED, tb_dir=None, config={**job.config, "output_dir": SHIPPED})


def bundle_files(path: str | Path) -> dict[str, bytes]:
    """What a worker needs of a bundle: its weights and manifest (not the pickled model, which only
    resumes a pre-training), by file name."""
    from rltransfer.bundle import MANIFEST_FILE, WEIGHTS_FILE

    return {name: (Path(path) / name).read_bytes() for name in (WEIGHTS_FILE, MANIFEST_FILE)}


def execute_detached(job: RunJob, bundle: dict[str, bytes]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """:func:`execute` on a worker that shares no filesystem with the driver: the bundle is written from
    ``bundle`` into a directory of the worker's, and the run's outputs (result, model, lineage, TensorBoard
    events) come back as ``{relative path: bytes}`` for the driver to write (:func:`write_outputs`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rltransfer-run-") as tmp:
        bundle_dir, out = Path(tmp) / "bundle", Path(tmp) / "out"
        bundle_dir.mkdir()
        for name, data in bundle.items():
            (bundle_dir / name).write_bytes(data)
        summary = execute(replace(job, bundle=str(bundle_dir), out_dir=str(out)))
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return summary, files


def write_outputs(job: RunJob, files: dict[str, bytes]) -> None:
    """Write a detached run's outputs where ``job`` says: its TensorBoard events (``tb/...``) in its
    ``tb_dir``, the rest in its run directory, the result last (a run directory with a result holds the
    whole run)."""
    out = Path(job.out_dir)
    for rel, data in sorted(files.items(), key=lambda kv: kv[0] == RESULT_FILE):
        base, name = out, rel
        if rel.startswith("tb/") and job.tb_dir:
            base, name = Path(job.tb_dir), rel[len("tb/") :]
        path = base / name
        if not path.resolve().is_relative_to(base.resolve()):
            raise ValueError(f"a run's output '{rel}' lies outside its run directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
