"""One run of an experiment grid: (target, strategy, seed) -> result.json.

A job is plain data, so any backend (a local process pool, Ray) can run it, and the same job
gives the same result.json wherever it runs.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from rltransfer.atomic import atomic_write_bytes
from rltransfer.hardware import this_machine, train_on_one_core
from rltransfer.records.bundle_manifest import MANIFEST_FILE, WEIGHTS_FILE
from rltransfer.records.run_result import RESULT_FILE, Curve, FailedRun, FinishedRun, read_result, run_metrics
from rltransfer.revision import code_revision
from rltransfer.stats import metrics
from rltransfer.store.layout import run_key

if TYPE_CHECKING:
    from rltransfer.evaluation import Evaluator
    from rltransfer.transferring import TargetRun
    from rltransfer.validation import Setup

SB3, BATCHED = "sb3", "batched"
"""The engines a run trains with (:attr:`RunJob.engine`)."""


@dataclass(frozen=True)
class RunJob:
    """Everything one run needs, as plain data."""

    config: dict[str, Any]
    run_hash: str
    """What the run depends on (:func:`~rltransfer.store.keys.run_hash`): a finished run is re-used under it."""
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
    engine: str = "sb3"
    """``sb3``: SB3's own ``learn``, one run at a time; ``batched``: trained side by side with the other seeds of
    its target and strategy (:func:`execute_batch`), which gives other random streams (:mod:`rltransfer.execution.batching`)."""
    reuse_key: str | None = None
    """Set where the run loads nothing from its bundle: other experiments may copy it (:mod:`rltransfer.store.reuse`)."""
    tb_dir: str | None = None
    """Where its TensorBoard events go (the experiment's tree, :func:`rltransfer.store.layout.run_tb`); None:
    ``<out_dir>/tb``."""

    @property
    def key(self) -> str:
        return run_key(self.target["name"], self.strategy, self.seed)


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
        "run_hash": job.run_hash,
        "threshold": job.threshold,
        "random_return": job.random_return,
        **({"reuse_key": job.reuse_key} if job.reuse_key else {}),
        **({"engine": job.engine} if job.engine != SB3 else {}),  # a failed run's too: its key names it
        "code_revision": code_revision(),
        "machine": this_machine(),
    }


@dataclass(frozen=True)
class RunSummary:
    """What a worker hands back for one run, beside the ``result.json`` it wrote: what the experiment's manifest
    records of the run (:meth:`rltransfer.records.experiment_manifest.ExperimentManifest.set_run`)."""

    key: str
    """The run's key (``target/strategy/seed-N``)."""
    status: Literal["ok", "failed"]
    error: str | None = None
    """Why it failed (``None``: it did not)."""
    wall_seconds: float = 0.0
    """Its wall time (a batch's shared out evenly among its seeds)."""
    eval_seconds: float = 0.0
    """The part of it spent evaluating."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def record_failure(job: RunJob, error: str) -> RunSummary:
    """A run whose worker itself failed (a crashed process, a lost Ray task): its failed result written
    where the run would have written it, so the report lists it; returns the run's summary."""
    FailedRun(**_identity(job), status="failed", error=error).write(Path(job.out_dir) / RESULT_FILE)
    return RunSummary(job.key, "failed", error)


@functools.lru_cache(maxsize=4)
def _setup_of(config: str) -> Setup:
    """A job's config (its JSON) resolved, once a process: every run of one experiment a worker takes
    shares it (the experiment validated the config where it started). The JSON keeps the config's key
    order: a declared family's parameters are in it, and their order is the order of its context."""
    from rltransfer.config import load_config
    from rltransfer.validation import resolve

    return resolve(load_config(json.loads(config)))


def _prepare(job: RunJob) -> tuple[Evaluator, TargetRun]:
    """The job's evaluator and its target agent, built and ready to learn."""
    from rltransfer.bundle import load_bundle
    from rltransfer.evaluation import Evaluator
    from rltransfer.transferring import eval_env_factory, prepare_transfer

    setup = _setup_of(json.dumps(job.config))
    bundle = load_bundle(job.bundle)
    target = {"name": job.target["name"], **job.target["params"]}
    ev = setup.config.evaluation

    def normalise(r: float) -> float:
        return float(metrics.normalise(r, job.random_return, job.threshold))

    evaluator = Evaluator(
        eval_env_factory(setup, bundle, target, ev.episodes), ev.every, setup.config.transfer.timesteps,
        ev.episodes, ev.deterministic, normalise, seed=job.seed, tag=eval_tag(job.target["name"]),
    )  # fmt: skip
    run = prepare_transfer(
        setup,
        bundle,
        target,
        job.strategy,
        seed=job.seed,
        out_dir=job.out_dir,
        callbacks=[evaluator],
        tb_dir=job.tb_dir,
        in_experiment=True,
    )
    return evaluator, run


def _finished(job: RunJob, evaluator: Evaluator, run: TargetRun) -> FinishedRun:
    from rltransfer.transferring import finish_transfer

    res = finish_transfer(run)
    curve = Curve.model_validate(evaluator.curve)
    return FinishedRun(
        **_identity(job),
        status="ok",
        budget=run.budget,
        bundle_sha256=res.lineage.bundle_sha256,
        components=res.lineage.components_status(),
        curve=curve,
        metrics=run_metrics(curve.step, curve.score, run.budget),
    )


def _failed(job: RunJob, evaluator: Evaluator | None, error: BaseException, trace: str) -> FailedRun:
    made = evaluator is not None and evaluator.curve["step"]
    if evaluator is not None:
        evaluator.close()
    return FailedRun(
        **_identity(job),
        status="failed",
        error=f"{type(error).__name__}: {error}",
        traceback=trace,
        **({"curve": Curve.model_validate(evaluator.curve)} if made and evaluator is not None else {}),
    )


def _summary(job: RunJob, result: FinishedRun | FailedRun, wall: float, evaluator: Evaluator | None) -> RunSummary:
    result.write(Path(job.out_dir) / RESULT_FILE)
    return RunSummary(
        job.key,
        result.status,
        result.error if isinstance(result, FailedRun) else None,
        wall_seconds=wall,
        eval_seconds=evaluator.eval_seconds if evaluator is not None else 0.0,
    )


def _learn_alone(evaluator: Evaluator, run: TargetRun) -> None:
    """SB3's own training of one agent (what :func:`rltransfer.transferring.transfer` does)."""
    if run.lineage.trains:
        run.model.learn(run.steps, callback=[evaluator], reset_num_timesteps=not run.charged)
    else:  # zero_shot: the untouched agent, scored over the budget
        evaluator.evaluate_without_training(run.model, run.budget)


def execute(job: RunJob) -> RunSummary:
    """Run one job and write its ``result.json`` (status ``ok`` or ``failed``); return a summary.

    Exceptions of the run are caught and recorded: one failing run never stops the grid. A job of the
    batched engine runs as a batch of one (:func:`execute_batch`): the same result as in any batch.
    """
    if job.engine == BATCHED:
        return execute_batch([job])[0]
    train_on_one_core()
    start = time.perf_counter()
    evaluator = None
    result: FinishedRun | FailedRun
    try:
        evaluator, run = _prepare(job)
        _learn_alone(evaluator, run)
        result = _finished(job, evaluator, run)
    except Exception as err:  # recorded, not raised: the rest of the grid goes on
        result = _failed(job, evaluator, err, traceback.format_exc(limit=8))
    return _summary(job, result, time.perf_counter() - start, evaluator)


def execute_batch(jobs: Sequence[RunJob]) -> list[RunSummary]:
    """Run ``jobs`` (seeds of one target and strategy) side by side as one batched model
    (the batched engine of their algorithm: :class:`~rltransfer.agents.batched_ppo.BatchedPPO`,
    :class:`~rltransfer.agents.batched_sac.BatchedSAC` or :class:`~rltransfer.agents.batched_dqn.BatchedDQN`),
    each writing its own ``result.json``; return their
    summaries in order. A seed that fails is recorded and the others go on; an agent the engine cannot train
    (one that does not train, or whose update it does not restate) trains alone, as :func:`execute` would.
    Each summary's wall time is the batch's shared out evenly."""
    train_on_one_core()
    start = time.perf_counter()
    results: dict[int, FinishedRun | FailedRun] = {}
    evaluators: dict[int, Evaluator] = {}
    batch: dict[int, TargetRun] = {}
    for i, job in enumerate(jobs):
        try:
            evaluators[i], run = _prepare(job)
            if (
                job.engine == BATCHED
                and run.lineage.trains
                and _batched_engine(run.model).unbatchable(run.model) is None
            ):
                batch[i] = run
            else:
                _learn_alone(evaluators[i], run)
                results[i] = _finished(job, evaluators[i], run)
        except Exception as err:  # recorded, not raised: the rest of the grid goes on
            results[i] = _failed(job, evaluators.get(i), err, traceback.format_exc(limit=8))
    if batch:
        results |= _learn_together({i: jobs[i] for i in batch}, {i: evaluators[i] for i in batch}, batch)
    wall = (time.perf_counter() - start) / len(jobs)
    return [_summary(job, results[i], wall, evaluators.get(i)) for i, job in enumerate(jobs)]


class _Engine(NamedTuple):
    engine: Any  # BatchedPPO, BatchedSAC or BatchedDQN
    unbatchable: Callable[[Any], str | None]


def _batched_engine(model: Any) -> _Engine:
    """The batched engine of ``model``'s algorithm, and what says why a model cannot train in it."""
    from stable_baselines3 import DQN, SAC

    if isinstance(model, SAC):
        from rltransfer.agents import batched_sac

        return _Engine(batched_sac.BatchedSAC, batched_sac.unbatchable)
    if isinstance(model, DQN):
        from rltransfer.agents import batched_dqn

        return _Engine(batched_dqn.BatchedDQN, batched_dqn.unbatchable)
    from rltransfer.agents import batched_ppo

    return _Engine(batched_ppo.BatchedPPO, batched_ppo.unbatchable)


def _learn_together(
    jobs: dict[int, RunJob], evaluators: dict[int, Evaluator], batch: dict[int, TargetRun]
) -> dict[int, FinishedRun | FailedRun]:
    """The prepared runs ``batch`` trained as one batched model, each finished (saved, its result written)
    or recorded as failed."""
    from stable_baselines3.common.vec_env import VecEnv

    from rltransfer.envs.multitask import StepTogether
    from rltransfer.evaluation_together import evaluate_together

    order = list(batch)
    models = [batch[i].model for i in order]
    engine = _batched_engine(models[0]).engine(models, step_envs=StepTogether([cast(VecEnv, m.env) for m in models]))
    for i in order:  # deterministic evaluations run for all seeds at once, one forward pass a step
        evaluators[i].defer = evaluators[i].deterministic

    def evaluate_pending(last: bool = False) -> None:
        """The deferred evaluations, once every seed has one (or one has two, or one has failed, or training
        has ended): where a probe started the seeds at different steps, their checkpoints fall due at different
        steps of the batch, and each is measured later with the state it fell due with (``evaluate_together``).
        A seed that failed still has the checkpoints that fell due before, as alone; a seed whose evaluation
        raises fails, as alone, and the others go on."""
        due = [(k, evaluators[i], batch[i].model) for k, i in enumerate(order)]
        waiting = [d for d in due if d[1].pending]
        live = [d for d in due if d[0] not in engine.failed]
        if (
            last
            or all(ev.pending for _, ev, _ in live)
            or any(len(ev.pending) > 1 or k in engine.failed for k, ev, _ in waiting)
        ):
            evaluate_together(waiting, engine.predict, engine.fail)

    engine.after_step = evaluate_pending
    try:
        engine.learn([batch[i].steps for i in order], [evaluators[i] for i in order], reset_num_timesteps=[not batch[i].charged for i in order])  # fmt: skip
        evaluate_pending(last=True)
        for i in order:  # an evaluation env the last wave opened again after training ended
            evaluators[i].close()
    except Exception as err:  # the batch itself failed: every seed in it
        trace = traceback.format_exc(limit=8)
        return {i: _failed(jobs[i], evaluators[i], err, trace) for i in order}
    results: dict[int, FinishedRun | FailedRun] = {}
    for k, i in enumerate(order):
        if k in engine.failed:
            results[i] = _failed(jobs[i], evaluators[i], engine.failed[k].error, engine.failed[k].traceback)
            continue
        try:
            results[i] = _finished(jobs[i], evaluators[i], batch[i])
        except Exception as err:
            results[i] = _failed(jobs[i], evaluators[i], err, traceback.format_exc(limit=8))
    return results


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
    return {name: (Path(path) / name).read_bytes() for name in (WEIGHTS_FILE, MANIFEST_FILE)}


def execute_unit(jobs: Sequence[RunJob]) -> list[RunSummary]:
    """What a worker takes: one job (:func:`execute`), or the seeds of a cell as a batch (:func:`execute_batch`)."""
    return execute_batch(jobs) if len(jobs) > 1 else [execute(jobs[0])]


def execute_detached(
    jobs: Sequence[RunJob], which: Sequence[int], *bundles: dict[str, bytes]
) -> list[tuple[RunSummary, dict[str, bytes]]]:
    """:func:`execute_unit` on a worker that shares no filesystem with the driver: ``jobs[i]``'s bundle is
    ``bundles[which[i]]``, written into a directory of the worker's, and each run's outputs (result, model,
    lineage, TensorBoard events) come back as ``{relative path: bytes}`` for the driver to write
    (:func:`write_outputs`)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rltransfer-run-") as tmp:
        dirs = []
        for n, files in enumerate(bundles):
            bundle_dir = Path(tmp) / f"bundle-{n}"
            bundle_dir.mkdir()
            for name, data in files.items():
                (bundle_dir / name).write_bytes(data)
            dirs.append(str(bundle_dir))
        outs = [Path(tmp) / f"out-{i}" for i in range(len(jobs))]
        local = [replace(job, bundle=dirs[which[i]], out_dir=str(outs[i])) for i, job in enumerate(jobs)]
        summaries = execute_unit(local)
        return [
            (summary, {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
            for summary, out in zip(summaries, outs)
        ]


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


def is_done(job: RunJob, bundle_sha: str | None = None) -> bool:
    """Whether the job's run finished with this config (its hash) and, where it loaded a bundle, from the
    bundle whose weights' checksum is ``bundle_sha`` (where given: a run of an earlier bundle, since
    trained again, is not one of this one's)."""
    r = read_result(Path(job.out_dir) / RESULT_FILE)
    if not isinstance(r, FinishedRun):
        return False
    loads_bundle = job.reuse_key is None  # set only where the run loads nothing of it (scratch)
    if bundle_sha is not None and loads_bundle and r.bundle_sha256 not in (None, bundle_sha):
        return False
    return r.run_hash == job.run_hash
