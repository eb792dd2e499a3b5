"""A grid's runs on its backend (the local pool or Ray): the experiment's manifest kept current as each run
starts and ends, its progress shown (a bar on a terminal, a plain line every 30 s elsewhere), and Ctrl-C or
SIGTERM ending the runs in flight with the manifest saying so."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from rltransfer.config import ExperimentConfig
from rltransfer.execution.backends import run_local, run_ray
from rltransfer.execution.batching import batches
from rltransfer.execution.job import RunJob, RunSummary, is_done
from rltransfer.interruption import Interruption
from rltransfer.records.experiment_manifest import ExperimentManifest, now
from rltransfer.records.run_result import RESULT_FILE


class ProgressLines:
    """A grid's progress where no terminal redraws a bar (CI, a log file): one plain line on stderr every
    :attr:`every` seconds, and at the last run."""

    every = 30.0

    def __init__(self, total: int, done: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.done, self.clock = total, done, clock
        self.start = self.last = clock()

    def update(self, in_flight: int, failed: int) -> None:
        self.done += 1
        now = self.clock()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            print(
                f"runs: {self.done}/{self.total} done, {in_flight} in flight, {failed} failed "
                f"({now - self.start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


def _mark_in_flight(manifest: ExperimentManifest, in_flight: dict[str, RunJob]) -> None:
    """The runs in flight when the grid stopped: interrupted, or finished where a run wrote its result just
    before the stop and the grid had not yet taken it in (results are written whole: counted as one)."""
    for key, job in in_flight.items():
        if is_done(job):
            manifest.set_run(key, "ok", finished=now())
        else:
            manifest.set_run(key, "interrupted")


def _record(manifest: ExperimentManifest, job: RunJob, res: RunSummary) -> bool:
    """A finished run's summary in the manifest; whether it succeeded."""
    manifest.set_run(
        job.key, res.status, wall_seconds=round(res.wall_seconds, 2), eval_seconds=round(res.eval_seconds, 2),
        finished=now(), **({"error": res.error} if res.error else {}),
    )  # fmt: skip
    return res.ok


def run_grid(
    cfg: ExperimentConfig,
    todo: list[RunJob],
    total: int,
    workers: int,
    manifest: ExperimentManifest,
    progress: bool,
    pool: ProcessPoolExecutor | None,
    interruption: Interruption,
) -> list[str]:
    """Run ``todo`` on the configured backend; keep the manifest current; return the failed runs. Ctrl-C
    or SIGTERM ends the runs in flight (``interruption``: the experiment's)."""

    run_dir = cfg.run_dir
    failed: list[str] = []
    in_flight: dict[str, RunJob] = {}  # started, not yet recorded
    running: set[str] = set()  # started, not yet ended (a batch's runs end together, then are recorded)
    interactive = progress and sys.stderr.isatty()
    bar = tqdm(
        total=total, initial=total - len(todo), desc="runs", unit="run", disable=not interactive, dynamic_ncols=True
    )
    lines = ProgressLines(total, total - len(todo)) if progress and not interactive else None

    def on_start(job: RunJob) -> None:
        in_flight[job.key] = job
        running.add(job.key)
        manifest.set_run(job.key, "running", started=now())
        bar.set_postfix_str(f"in flight {len(running)}: {sorted(running)[0]} | failed {len(failed)}")

    def on_end(job: RunJob) -> None:
        running.discard(job.key)

    units = batches(todo, workers)
    if cfg.runner.backend == "ray":
        stream = run_ray(units, workers, cfg.runner.address, on_start, on_end=on_end)
    else:
        stream = run_local(units, workers, on_start, pool, on_end=on_end)

    def stop() -> None:
        stream.close()  # the workers (or Ray tasks) end here, before the disk is read
        _mark_in_flight(manifest, in_flight)

    try:
        with interruption.during(stop, interruption.said) as interrupt:
            for job, res in stream:
                if interrupt.seen and not res.ok:  # the interrupt broke this run: not a result
                    (Path(job.out_dir) / RESULT_FILE).unlink(missing_ok=True)
                    raise KeyboardInterrupt
                in_flight.pop(job.key, None)
                if not _record(manifest, job, res):
                    failed.append(job.key)
                manifest.write(run_dir)
                bar.update(1)
                bar.set_postfix_str(f"in flight {len(running)} | failed {len(failed)}")
                if lines is not None:
                    lines.update(len(running), len(failed))
                if interrupt.seen:  # swallowed by a run that still finished: kept and counted, the grid stops
                    raise KeyboardInterrupt
    finally:
        bar.close()
    return failed
