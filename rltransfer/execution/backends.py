"""Backends that run independent jobs: a local process pool, or a Ray cluster.

Both call :func:`rltransfer.execution.job.execute_unit` on the same plain-data jobs (one, or a batch of
seeds), so the same seeds give the same results whichever backend ran them.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import socket
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any
from urllib.parse import urlsplit

from rltransfer.errors import ConfigError, WorkerDied
from rltransfer.execution.job import (
    RunJob,
    RunSummary,
    bundle_files,
    detached,
    execute_detached,
    execute_unit,
    record_failure,
    write_outputs,
)
from rltransfer.hardware import train_on_one_core

Unit = Sequence[RunJob]
"""What a worker takes at a time: one job, or the seeds of a cell that train as a batch
(:func:`rltransfer.execution.batching.batches`)."""


def resolve_workers(workers: int | str) -> int:
    """``auto`` -> the number of cores this process may use; a count (at least 1: the config and the CLI
    check it) as it is."""
    if workers == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:
            return max(1, os.cpu_count() or 1)
    return int(workers)


RAY_MISSING = "config key 'runner.backend': 'ray' needs Ray: pip install 'rltransfer[ray]'"


def check_backend(backend: str, address: str | None = None, timeout: float = 5.0) -> None:
    """Refuse, before an experiment pre-trains rather than when its grid starts hours later,
    ``runner.backend: ray`` where Ray is not installed (looked up, not imported: importing Ray takes
    seconds), and a ``runner.address`` where nothing answers (``ray.init`` retries such an address for many
    minutes, saying only that it cannot connect). The address is tried with one TCP connection within
    ``timeout`` seconds; ``auto``, ``local`` and an address without a port are left to Ray."""
    if backend != "ray":
        return
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)
    if not address or address in ("auto", "local"):
        return
    where = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = where.port
    except ValueError:
        port = None
    if where.hostname is None or port is None:
        return
    try:
        socket.create_connection((where.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(
            f"config key 'runner.address': nothing answers at '{address}' ({err.strerror or err}); start the "
            "cluster's head first ('ray start --head' prints its address), or leave the key out for a local cluster"
        ) from None


def _init_worker() -> None:
    train_on_one_core()
    import rltransfer.transferring  # noqa: F401  (the heavy imports, once per worker)


def _ready() -> int:
    return os.getpid()


def start_pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` spawned processes, warming up (imports) in the background.

    Started before pre-training, the workers' start-up overlaps it instead of delaying the grid.
    Processes are spawned, not forked: torch and forking do not mix, and a user's script that
    registers families or strategies at import is re-imported in every worker.
    """
    if workers < 2:
        return None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    for _ in range(workers):
        pool.submit(_ready)
    return pool


def run_local(
    units: Sequence[Unit],
    workers: int,
    on_start: Callable[[RunJob], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
    on_end: Callable[[RunJob], None] | None = None,
) -> Generator[tuple[RunJob, RunSummary], None, None]:
    """Yield ``(job, summary)`` as units finish, ``workers`` units at a time in worker processes.
    ``on_start`` and ``on_end`` hear of each job as its unit starts and as it ends (before its results
    are yielded, and before the units that take its worker start).

    With one worker the units run in this process (same results: every run seeds itself). A worker process
    that dies (killed for memory, a crash in an env's native code, ``os._exit``) breaks the whole pool, and
    which of the units in flight killed it cannot be told: each of them runs again, alone, on a fresh pool;
    one that kills its worker alone is failed with :data:`CRASHED`, and the others go on.
    """
    if workers == 1:
        for unit in units:
            _announced(unit, on_start)
            summaries = execute_unit(unit)
            yield from zip(_announced(unit, on_end), summaries)
        return
    pending = list(units)
    suspects: list[Unit] = []  # in flight when a worker died: each runs again, alone
    executor = pool or start_pool(workers)
    assert executor is not None  # start_pool gives no pool for one worker only
    running: dict[Future, tuple[Unit, bool]] = {}  # each unit, and whether it runs alone
    stalls = 0  # pools broken in a row with no unit ended
    try:
        while pending or suspects or running:
            units_now = _next_units(pending, suspects, running, workers)
            broken = not _submit(executor, units_now, running, pending, suspects, on_start)
            done, _ = wait(running, return_when=FIRST_COMPLETED) if running else (set(), set())
            if broken or any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                done, _ = wait(running)  # the pool is broken: every unit in flight has ended with it
                executor.shutdown(wait=True)
                stalls += 1
                if stalls > MAX_STALLS:  # workers that die at random as they start: no fresh pool gets on
                    raise _died_starting()
                executor = _fresh_pool(workers)
            ended = []
            for future in done:
                unit, alone = running.pop(future)
                if isinstance(future.exception(), BrokenProcessPool) and not alone:
                    suspects.append(unit)
                else:
                    stalls = 0
                    ended.append((future, _announced(unit, on_end)))
            # the freed workers take their next units before the ended units' results are handed over (and
            # recorded, which takes a while for a batch of many runs): no worker waits on the bookkeeping.
            # A pool found broken here is replaced next round.
            _submit(executor, _next_units(pending, suspects, running, workers), running, pending, suspects, on_start)
            for future, unit in ended:
                yield from zip(unit, _summaries(future, unit))
    except BaseException:
        stop_workers(executor)
        raise
    executor.shutdown(wait=True)


def _submit(
    executor: ProcessPoolExecutor,
    units: list[tuple[Unit, bool]],
    running: dict[Future, tuple[Unit, bool]],
    pending: list[Unit],
    suspects: list[Unit],
    on_start: Callable[[RunJob], None] | None,
) -> bool:
    """Hand ``units`` (each with whether it runs alone) to the pool, into ``running``; False where the pool is
    broken already (a worker died since the last units ended, or as it started): the units not handed over go
    back to the front of ``suspects`` or ``pending``, where they came from."""
    for i, (unit, alone) in enumerate(units):
        try:
            future = executor.submit(execute_unit, unit)
        except BrokenProcessPool:
            rest = units[i:]
            suspects[:0] = [u for u, by_itself in rest if by_itself]
            pending[:0] = [u for u, by_itself in rest if not by_itself]
            return False
        running[future] = (unit, alone)
        _announced(unit, on_start)
    return True


def _fresh_pool(workers: int) -> ProcessPoolExecutor:
    """A new pool once one broke, its workers started (:func:`check_started`)."""
    pool = start_pool(workers)
    assert pool is not None
    check_started(pool)
    return pool


def check_started(pool: ProcessPoolExecutor) -> None:
    """Wait until a worker of ``pool`` has started (imported the running script and rltransfer):
    :class:`WorkerDied` where they die doing so, before any run (every run would fail on it)."""
    try:
        pool.submit(_ready).result()
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        raise _died_starting() from None


MAX_STALLS = 3
"""Pools :func:`run_local` replaces in a row, no unit ending on any, before it gives up on the workers."""


def _died_starting() -> WorkerDied:
    return WorkerDied(
        "the grid's worker processes die as they start, before they take a run: each imports the running "
        "script again and rltransfer, and something there ends it (its error, if any, is above; a script "
        "that runs things at its top level, outside 'if __name__ == \"__main__\":', runs them there too); "
        "the finished runs are kept: mend it and re-run the same command, or set runner.workers: 1 to run "
        "the grid in this process"
    )


def _next_units(
    pending: list[Unit], suspects: list[Unit], running: dict[Future, tuple[Unit, bool]], workers: int
) -> list[tuple[Unit, bool]]:
    """The units to start now, each with whether it runs alone (taken from ``pending`` or ``suspects``): a
    suspect alone, once nothing runs; none beside a unit running alone; else pending ones up to ``workers``."""
    if any(alone for _, alone in running.values()):
        return []
    if suspects:
        return [] if running else [(suspects.pop(0), True)]
    taken = pending[: workers - len(running)]
    del pending[: len(taken)]
    return [(unit, False) for unit in taken]


def _summaries(future: Future, unit: Unit) -> list[RunSummary]:
    """A finished unit's run summaries: its own, or failed ones where its worker could not run it."""
    err = future.exception()
    if err is None:
        return future.result()
    if isinstance(err, BrokenProcessPool):
        return [record_failure(job, CRASHED) for job in unit]
    return [record_failure(job, f"worker failed: {type(err).__name__}: {err}") for job in unit]  # in transit


CRASHED = (
    "worker crashed: its process died while it ran this run (alone, after it had died beside others): killed "
    "for memory, a crash in native code (an env's engine, a library), or an exit called inside the run; the "
    "process's own error, if any, is on the experiment's stderr"
)
"""The error of a run whose worker process died under it (:func:`run_local`)."""


def _announced(unit: Unit, announce: Callable[[RunJob], None] | None) -> Unit:
    """``unit``, each of its jobs announced to ``announce`` (``on_start``, or ``on_end``)."""
    for job in unit:
        if announce:
            announce(job)
    return unit


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's processes now, the runs they are on with them, and wait until they have ended.

    ``shutdown(wait=False)`` alone lets each worker finish its run and write the result after the grid
    has stopped and the manifest has said so. A run cut short leaves no result file (results are
    written whole, by a rename), so resuming trains it again.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
    else:
        for process in processes:
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=10)


def run_ray(
    units: Sequence[Unit],
    workers: int,
    address: str | None,
    on_start: Callable[[RunJob], None] | None = None,
    on_end: Callable[[RunJob], None] | None = None,
) -> Generator[tuple[RunJob, RunSummary], None, None]:
    """Yield ``(job, summary)`` as units finish on a Ray cluster (a local one when ``address`` is None).
    Units are handed to the cluster as it has CPUs for them (one a unit; its CPUs read again as each unit
    ends, for a cluster that grows), so that ``on_start`` hears of each job as its unit starts rather than
    when it would wait in Ray's queue, and ``on_end`` as it ends: the progress line's "in flight" counts the
    runs running.

    The cluster needs no filesystem shared with the driver: each job goes out without the driver's paths
    (:func:`~rltransfer.execution.job.detached`), its bundle's files through Ray's object store (put once a
    bundle), and its outputs come back by value; only the driver writes the run directory."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    started_here = _start_ray(ray, address, workers)
    remote = ray.remote(num_cpus=1)(execute_detached)
    refs: dict[Any, Unit] = {}
    bundles: dict[str, Any] = {}  # bundle path -> its files in the object store
    waiting = list(reversed(units))

    def hand_over() -> None:
        cpus = max(1, int(ray.cluster_resources().get("CPU", workers)))  # a call to the cluster: once a hand-over
        while waiting and len(refs) < cpus:
            unit = waiting.pop()
            paths = list(dict.fromkeys(job.bundle for job in _announced(unit, on_start)))
            for path in paths:
                if path not in bundles:
                    bundles[path] = ray.put(bundle_files(path))
            which = [paths.index(job.bundle) for job in unit]
            refs[remote.remote([detached(job) for job in unit], which, *(bundles[p] for p in paths))] = unit

    try:
        hand_over()
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            unit = _announced(refs.pop(done[0]), on_end)
            hand_over()
            yield from _ray_outputs(ray, done[0], unit)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _start_ray(ray: Any, address: str | None, workers: int) -> bool:
    """Connect to the cluster at ``address``, or start a local one of ``workers`` CPUs, unless Ray is
    connected already: whether it was started here (and is shut down at the end)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    return True


def _ray_outputs(ray: Any, ref: Any, unit: Unit) -> Iterator[tuple[RunJob, RunSummary]]:
    """``(job, summary)`` of a finished Ray task's unit, each run's outputs written where its job says."""
    try:
        outputs = ray.get(ref)
    except Exception as err:
        for job in unit:
            yield job, record_failure(job, f"ray task failed: {err}")
        return
    for job, (summary, files) in zip(unit, outputs):
        try:
            write_outputs(job, files)
        except Exception as err:
            summary = record_failure(job, f"writing the run's outputs failed: {err}")
        yield job, summary
