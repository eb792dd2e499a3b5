"""The Ray backend hands units to the cluster as it has CPUs for them, so that the progress line's "in flight"
counts the runs running, not those waiting in Ray's queue (a stand-in for Ray: what ``run_ray`` asks of it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from rltransfer.execution import backends


@dataclass
class FakeRay:
    """Ray as ``run_ray`` uses it: a cluster of ``cpus`` CPUs; each task ends in the order it was waited on."""

    cpus: int
    running: list = field(default_factory=list)
    most: int = 0
    outputs: dict = field(default_factory=dict)
    initialized: bool = False

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs: Any) -> None:
        self.initialized = True

    def shutdown(self) -> None:
        self.initialized = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}

    def put(self, value: Any) -> Any:
        return value

    def remote(self, num_cpus: int):
        def task(fn):
            def remote(jobs, which, *bundles):
                ref = object()
                self.running.append(ref)
                self.most = max(self.most, len(self.running))
                self.outputs[ref] = [({"status": "ok", "run": job.name}, {}) for job in jobs]
                return ref

            return SimpleNamespace(remote=remote)

        return task

    def wait(self, refs: list, num_returns: int):
        self.running.remove(refs[0])
        return [refs[0]], refs[1:]

    def get(self, ref: Any) -> Any:
        return self.outputs[ref]

    def cancel(self, ref: Any, force: bool) -> None:
        self.running.remove(ref)


def _run(monkeypatch, ray: FakeRay, units: list, grow_to: int | None = None) -> tuple[list, list]:
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(backends, "bundle_files", lambda path: {"bundle": path})
    monkeypatch.setattr(backends, "detached", lambda job: job)
    monkeypatch.setattr(backends, "write_outputs", lambda job, files: None)
    events: list[tuple[str, str]] = []

    def ended(job: Any) -> None:
        events.append(("end", job.name))
        if grow_to is not None:
            ray.cpus = grow_to  # a cluster that grows: read again as units end

    out = backends.run_ray(units, 2, None, on_start=lambda j: events.append(("start", j.name)), on_end=ended)
    return [summary["run"] for _, summary in out], events


def _units(n: int, per_unit: int = 1) -> list:
    return [[SimpleNamespace(name=f"u{i}-{j}", bundle="b") for j in range(per_unit)] for i in range(n)]


def test_units_wait_in_the_driver_until_the_cluster_has_a_cpu_for_them(monkeypatch):
    ray = FakeRay(cpus=2)
    finished, events = _run(monkeypatch, ray, _units(5, per_unit=2))
    assert finished == [f"u{i}-{j}" for i in range(5) for j in range(2)]  # every run, each once, in order
    assert ray.most == 2
    in_flight = 0
    for kind, _ in events:
        in_flight += 1 if kind == "start" else -1
        assert 0 <= in_flight <= 4  # two units of two runs: what runs, never what waits
    assert in_flight == 0 and not ray.initialized  # the local cluster started here is shut down


def test_a_cluster_that_grows_takes_more_units_at_once(monkeypatch):
    ray = FakeRay(cpus=1)
    finished, _ = _run(monkeypatch, ray, _units(6), grow_to=3)
    assert len(finished) == 6 and ray.most == 3
