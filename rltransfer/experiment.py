"""The main job: pre-train, run the transfer grid over seeds, compare against scratch, report."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltransfer.atomic import atomic_write_bytes, check_writable, remove_stale_temps
from rltransfer.baselines import thresholds_and_baselines
from rltransfer.bundle import read_manifest
from rltransfer.config import ExperimentConfig, load_config
from rltransfer.errors import ConfigError, UserInputError, WorkerDied
from rltransfer.evaluation import protocol as eval_protocol
from rltransfer.execution.backends import (
    check_backend,
    resolve_workers,
    start_pool,
)
from rltransfer.execution.batching import engine_of
from rltransfer.execution.grid import run_grid
from rltransfer.execution.job import SB3, RunJob, is_done
from rltransfer.execution.known_names import check_workers_know
from rltransfer.execution.main_script import unguarded_call
from rltransfer.hardware import this_machine
from rltransfer.hyperparameters import minibatch_warning, probe_budget_warning, untrained_warning
from rltransfer.interruption import interruptible
from rltransfer.pretraining_stage import kept_bundles
from rltransfer.records.bundle_manifest import MANIFEST_FILE as BUNDLE_MANIFEST
from rltransfer.records.env_behaviour import ENVS_FILE, EnvBehaviour
from rltransfer.records.experiment_manifest import MANIFEST_FILE as EXPERIMENT_MANIFEST
from rltransfer.records.experiment_manifest import ExperimentManifest, Protocol, now
from rltransfer.records.run_result import RESULT_FILE, RUNS_FILE, FinishedRun, read_result
from rltransfer.reporting import report
from rltransfer.revision import code_revision, package_versions
from rltransfer.stats.significance import MIN_UNITS, SMOKE_UNITS
from rltransfer.stats.summary import BASELINE
from rltransfer.store import layout
from rltransfer.store.keys import experiment_keys, hashed_differences, reuse_key, run_hash
from rltransfer.store.migration import LAYOUT_VERSION, check_layout
from rltransfer.store.reuse import (
    copy_run,
    find_reusable,
    passed_over,
)
from rltransfer.strategies import plan_of
from rltransfer.validation import (
    Setup,
    check_own_vector_build,
    evaluation_schedule_warning,
    measure_envs,
    unseeded_warning,
    validate,
)


@dataclass
class ExperimentResult:
    run_dir: Path
    summary: dict[str, Any]
    failed: list[str] = field(default_factory=list)


class RunLock:
    """An exclusive lock on a run directory: a second experiment process refuses to start."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / layout.LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 64).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UserInputError(
                f"run directory '{self.path.parent}' is in use by another experiment process (pid {holder}); "
                "wait for it to finish or use another name (--set name=...)"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def holds_results(run_dir: Path, manifest: ExperimentManifest) -> bool:
    """Whether an experiment directory holds anything finished: a pre-training (its bundle) or a run (its result)."""
    return bool(
        manifest.finished_runs()
        or manifest.pretrainings
        or next((run_dir / "pretrain").rglob(BUNDLE_MANIFEST), None)
        or next((run_dir / "runs").rglob(RESULT_FILE), None)
    )


def check_same_config(run_dir: Path, cfg: ExperimentConfig, chash: str) -> None:
    """Refuse a directory of another config's results, naming the settings that differ. One where that config
    finished nothing (it stopped on an error or an interruption before a pre-training or a run finished) is this
    config's: its manifest goes, and what it left half-written is written again (a pre-training's TensorBoard
    log replaces its old one)."""
    manifest = ExperimentManifest.read(run_dir)
    old = manifest.config_hash
    if old and old != chash:
        if not holds_results(run_dir, manifest):
            (run_dir / EXPERIMENT_MANIFEST).unlink(missing_ok=True)
            return
        try:  # the config its results were made with, as the experiment wrote it
            changed = hashed_differences(load_config(run_dir / "config.yaml"), cfg)
        except Exception:  # none, or one this version cannot read: the hashes alone
            changed = []
        shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise UserInputError(
            f"'{run_dir}' holds results of a different config (hash {old}, this one {chash})"
            + (f": {shown}" if shown else "")
            + "; results are never mixed: use another name (--set name=...) or remove the directory"
        )


def check_same_envs(run_dir: Path, envs: EnvBehaviour) -> None:
    """Refuse a directory of results made with the family's env as it was before an edit (``envs``: as it is
    now; :mod:`rltransfer.records.env_behaviour`), naming what changed. A directory without the record (an older
    one, a restored publication) takes the env as it is now, as one that holds no results does."""
    then = EnvBehaviour.read(run_dir)
    if then is None or not holds_results(run_dir, ExperimentManifest.read(run_dir)):
        return
    changed = envs.differences(then)
    if changed:
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise UserInputError(
            f"'{run_dir}' holds results made with another env than family '{envs.family}' makes now ({shown}); "
            "results are never mixed: use another name (--set name=...) or remove the directory (if the env did not "
            f"change, and another kind of CPU rounded it apart, remove '{run_dir / ENVS_FILE}' to take it as it is now)"
        )


def keep_envs(cfg: ExperimentConfig, envs: EnvBehaviour, echo: bool) -> None:
    """Record ``envs`` in the experiment's directory (with the tasks only its record met), which copies from
    other experiments compare with theirs; with ``echo``, name the other experiments whose envs did otherwise."""
    run_dir = cfg.run_dir
    envs.merged(EnvBehaviour.read(run_dir)).write(run_dir)
    if echo and cfg.runner.reuse_other_experiments:
        for name, changed in passed_over(run_dir.parent, run_dir).items():
            print(f"not copying from '{name}': its envs did otherwise ({changed[0]})", file=sys.stderr)


def check_not_a_publication(run_dir: Path) -> None:
    """Refuse to run an experiment in a publication (a config's ``output_dir`` and ``name`` can point at one)."""
    if (run_dir / RUNS_FILE).is_file():
        raise UserInputError(
            f"'{run_dir}' is a publication ({RUNS_FILE}), not an experiment directory: an experiment would write "
            f"among its files and replace its manifest; make its experiment directory with 'rltransfer restore "
            f"{run_dir}' and run the experiment there, or set another output_dir or name"
        )


def check_main_guard() -> None:
    """Refuse, before anything is written, an experiment that the running script starts outside
    ``if __name__ == "__main__":`` where the grid's runs go to local worker processes: each worker imports the
    script again (:mod:`rltransfer.execution.main_script`) and would start the experiment again, and die on it."""
    where = unguarded_call()
    if where is None:
        return
    path, line = where
    raise ConfigError(
        f"'{path.name}' line {line} starts this experiment at the script's top level: the grid's worker processes "
        "import the script again (to find what it registers) and would start it again there; put the calls that "
        "run things under 'if __name__ == \"__main__\":' (registering families, strategies and encoders stays at "
        "the top level), or set runner.workers: 1"
    )


def plan_jobs(
    cfg: ExperimentConfig, setup: Setup, chash: str, bundles: list[tuple[int, Path]], protocol: Protocol
) -> list[RunJob]:
    strategies = [BASELINE] + [s for s in cfg.transfer.strategies if s != BASELINE]
    config = cfg.to_dict()
    jobs = []
    for target in setup.targets:
        scale = protocol.tasks[target.name]
        for strategy in strategies:
            engine = engine_of(cfg, strategy, kept_engine(cfg.run_dir / "runs" / target.name / strategy))
            for seed in range(cfg.transfer.seeds):
                p, bundle = bundles[seed % len(bundles)]
                jobs.append(
                    RunJob(
                        config=config,
                        run_hash=run_hash(chash, config, strategy, seed, p, target.name, engine),
                        engine=engine,
                        bundle=str(bundle),
                        target={"name": target.name, "params": dict(target.params)},
                        split=setup.split(target),
                        strategy=strategy,
                        seed=seed,
                        pretrain_seed=p,
                        threshold=scale.threshold,
                        random_return=scale.random_return,
                        out_dir=str(layout.run_out(cfg.run_dir, target.name, strategy, seed)),
                        tb_dir=str(layout.run_tb(cfg.run_dir, target.name, strategy, seed)),
                        reuse_key=reuse_key(
                            config, strategy, seed, {"name": target.name, "params": dict(target.params)}, engine
                        ),
                    )  # fmt: skip
                )
    return jobs


def kept_engine(cell_dir: Path) -> str | None:
    """The engine of the first finished run in a (target, strategy) cell's directory (None: it holds none)."""
    for path in sorted(cell_dir.glob(f"seed-*/{RESULT_FILE}")):
        run = read_result(path)
        if isinstance(run, FinishedRun):
            return run.engine or SB3
    return None


def _trains(strategy: str, cfg: ExperimentConfig) -> bool:

    plan = plan_of(strategy, cfg.transfer.strategy_params.get(strategy))
    return plan is None or plan.train


def run_experiment(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    progress: bool = True,
    echo: bool = True,
) -> ExperimentResult:
    """Pre-train, run every (target, strategy, seed), and write the report.

    Re-running the same command resumes: finished runs (same run hash) are skipped.

    :param config: a YAML path, a dict, or an :class:`ExperimentConfig`.
    :param overrides: ``--set``-style overrides.
    :param progress: show progress bars.
    :param echo: print the pre-training table, the comparison and where the report is.
    """

    cfg = load_config(config, overrides)
    setup = validate(cfg)  # once: the pre-trainings and runs are handed the Setup, or resolve only
    if not setup.targets:
        raise UserInputError("config key 'target_tasks': no target tasks to transfer to")
    workers = resolve_workers(cfg.runner.workers)
    if cfg.runner.backend == "local" and workers > 1:
        check_main_guard()
    if echo and cfg.transfer.seeds < MIN_UNITS:
        print(
            f"warning: transfer.seeds is {cfg.transfer.seeds}: below {MIN_UNITS} independent runs per strategy the "
            "report gives no verdict (too few to test against scratch); below "
            f"{SMOKE_UNITS} it is a smoke test, not a claim",
            file=sys.stderr,
        )
    check_own_vector_build(setup.family)
    envs = measure_envs(setup)
    # Every task's random return, measured (and cached) before anything is written: a threshold not above it is
    # refused now, not once the pre-training is done (the pre-training's gate and the grid read the cache).
    thresholds_and_baselines(setup.family, setup.sources + setup.targets, cfg.evaluation.thresholds)
    for warning in (
        (untrained_warning(cfg), minibatch_warning(cfg, len(setup.sources)), evaluation_schedule_warning(cfg),
         unseeded_warning(envs),
         probe_budget_warning(cfg, len(setup.sources), {t.name: envs.tasks[t.name].time_limit for t in setup.targets}))
        if echo else ()
    ):  # fmt: skip
        if warning:
            print(warning, file=sys.stderr)
    check_backend(cfg.runner.backend, cfg.runner.address)
    run_dir = cfg.run_dir
    check_not_a_publication(run_dir)
    layout.check_experiment_top(run_dir)
    check_writable(run_dir)
    check_layout(run_dir)
    keys = experiment_keys(cfg)
    with RunLock(run_dir):
        remove_stale_temps(run_dir)  # a process killed mid-write (the lock says none is writing now)
        check_same_config(run_dir, cfg, keys.experiment)
        check_same_envs(run_dir, envs)
        pool = start_pool(workers) if cfg.runner.backend == "local" else None
        try:
            check_workers_know(setup, pool)
            atomic_write_bytes(run_dir / "config.yaml", cfg.to_yaml().encode())
            keep_envs(cfg, envs, echo)
            manifest = ExperimentManifest.read(run_dir)

            def said(how: str) -> str:
                return (
                    f"interrupted{how}: {manifest.finished_runs()} finished runs are kept in '{run_dir}'; re-run "
                    "the same command to resume (runs in flight are started again)"
                )

            with interruptible(manifest, run_dir, said) as interruption:  # from here on, Ctrl-C stops cleanly
                manifest.start(
                    experiment=cfg.name, config_hash=keys.experiment, versions=package_versions(),
                    code_revision=code_revision(), machine=this_machine(), layout_version=LAYOUT_VERSION,
                )  # fmt: skip
                manifest.write(run_dir)
                bars = progress and sys.stderr.isatty()  # SB3's pre-training bar redraws: a terminal's only
                bundles = kept_bundles(setup, keys, echo, bars, pool, manifest, interruption)
                manifest.protocol = _protocol(setup, bundles)
                jobs = plan_jobs(cfg, setup, keys.experiment, bundles, manifest.protocol)
                todo = _still_to_run(jobs, bundles, cfg, manifest, echo)
                if echo:
                    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs re-used, {len(todo)} to run")
                grid_start = time.perf_counter()
                try:
                    failed = run_grid(cfg, todo, len(jobs), workers, manifest, progress, pool, interruption)
                except WorkerDied:
                    manifest.end("the grid's workers died as they started")
                    manifest.write(run_dir)
                    raise
                manifest.end(
                    "failed runs" if failed else "done", workers=workers,
                    grid_seconds=round(time.perf_counter() - grid_start, 2), grid_runs=len(todo),
                )  # fmt: skip
                manifest.write(run_dir)
                summary = report.render(run_dir, echo=echo)
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
    return ExperimentResult(run_dir, summary, failed)


def _protocol(setup: Setup, bundles: Sequence[tuple[int, Path]]) -> Protocol:
    """The evaluation protocol of the grid: schedule, episodes, and each target's threshold and random
    return (measured once a task)."""

    cfg, ev = setup.config, setup.config.evaluation
    return Protocol(
        **eval_protocol(ev.every, ev.episodes, ev.deterministic, cfg.transfer.timesteps),
        seeds=cfg.transfer.seeds, pretrain_seeds=cfg.pretrain.seeds,
        tasks=thresholds_and_baselines(setup.family, setup.targets, ev.thresholds),
        pretrain_kept=[seed for seed, _ in bundles], min_source_score=cfg.pretrain.min_source_score,
        source_tasks=[t.name for t in setup.sources],
    )  # fmt: skip


def _still_to_run(
    jobs: list[RunJob],
    bundles: Sequence[tuple[int, Path]],
    cfg: ExperimentConfig,
    manifest: ExperimentManifest,
    echo: bool,
) -> list[RunJob]:
    """The jobs without a finished run of this config from their bundle (another experiment's copied
    where it may be), long ones first; the manifest says which runs are finished and which pending."""

    shas = {seed: read_manifest(path).weights.sha256 for seed, path in bundles}
    todo = [j for j in jobs if not is_done(j, shas.get(j.pretrain_seed))]
    stale = [j for j in todo if is_done(j)]  # finished, from a bundle since trained again
    if echo and stale:
        print(
            f"{len(stale)} finished run(s) loaded a bundle that was since trained again with other "
            f"weights (pre-training seed(s) {', '.join(sorted({str(j.pretrain_seed) for j in stale}))}): "
            "they are run again, not mixed with the new bundle's",
            file=sys.stderr,
        )
    replaced = _made_otherwise([j for j in todo if j not in stale]) if echo else Counter()
    if replaced:
        cells = ", ".join(f"{n} of {cell}" for cell, n in sorted(replaced.items()))
        print(
            f"{sum(replaced.values())} finished run(s) were made with other settings than this config gives them "
            f"({cells}): their results are replaced by this config's runs (a directory holds one config's results; "
            "--set name=... keeps them)",
            file=sys.stderr,
        )
    for j in jobs:
        manifest.plan_run(j.key, finished=j not in todo)
    if cfg.runner.reuse_other_experiments:
        todo = _copy_reusable(todo, cfg, manifest, echo)
    manifest.write(cfg.run_dir)
    # Runs that never train (zero_shot) last: long jobs first keeps every worker busy.
    return sorted(todo, key=lambda j: not _trains(j.strategy, cfg))


def _made_otherwise(todo: Sequence[RunJob]) -> Counter[str]:
    """The jobs of ``todo`` whose directory holds a finished run of other settings (another engine, other
    parameters of its strategy or target), by cell and what differs."""
    out: Counter[str] = Counter()
    for j in todo:
        r = read_result(Path(j.out_dir) / RESULT_FILE)
        if isinstance(r, FinishedRun):
            was = r.engine or SB3
            what = f"engine {was}, now {j.engine}" if was != j.engine else "other parameters"
            out[f"{j.target['name']}/{j.strategy} ({what})"] += 1
    return out


def _copy_reusable(todo: list[RunJob], cfg: ExperimentConfig, manifest: ExperimentManifest, echo: bool) -> list[RunJob]:
    """Copy the runs of ``todo`` another experiment under ``output_dir`` already finished (scratch,
    :mod:`rltransfer.store.reuse`); return the rest."""
    rest: list[RunJob] = []
    copied: Counter[str] = Counter()
    for job in todo:
        source = find_reusable(job, cfg.run_dir.parent, cfg.run_dir)
        if source is None:
            rest.append(job)
            continue
        copy_run(source, job)
        manifest.set_run(job.key, "ok", copied_from=str(source), finished=now())
        copied[source.relative_to(cfg.run_dir.parent).parts[0]] += 1
    if copied and echo:
        where = ", ".join(f"{n} from '{e}'" for e, n in sorted(copied.items()))
        print(f"re-used {sum(copied.values())} finished run(s) that load nothing from a bundle: {where} "
              "(runner.reuse_other_experiments: false runs them again)")  # fmt: skip
    return rest
