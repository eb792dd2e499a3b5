"""A run's result: one typed record (finished or failed), read and written by one module."""

import gzip
import json
from pathlib import Path

import pytest

from rltransfer.records.run_result import FailedRun, FinishedRun, parse_result, read_result

RUNS = sorted(Path(__file__).parents[1].glob("docs/results/*/runs.jsonl.gz"))


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.parent.name)
def test_every_published_result_reads_and_writes_back_unchanged(path):
    assert RUNS
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    for data in lines:
        r = parse_result(data)
        assert isinstance(r, FinishedRun) and r.key == f"{data['target']}/{data['strategy']}/seed-{data['seed']}"
        assert json.dumps(r.to_json(), sort_keys=True) == json.dumps(data, sort_keys=True)
        assert r.rescored(r.threshold).to_json() == r.to_json()  # scored as it was written


def test_a_rescored_run_keeps_its_returns_and_recomputes_its_scores_by_hand():
    with gzip.open(RUNS[0], "rt") as f:
        data = json.loads(f.readline())
    r = parse_result(data)
    assert isinstance(r, FinishedRun)
    tau = r.threshold * 2
    s = r.rescored(tau)
    assert s.curve.returns == r.curve.returns and s.threshold == tau
    by_hand = [(x - r.random_return) / (tau - r.random_return) for x in r.curve.returns]
    assert s.curve.score == pytest.approx(by_hand, rel=1e-12) and s.metrics.p0 == pytest.approx(by_hand[0])


def test_results_that_are_not_one_are_refused_naming_the_field(tmp_path):
    base = {
        "target": "t", "target_params": {}, "split": "extrapolation", "strategy": "s", "seed": 0,
        "pretrain_seed": 0, "run_hash": "h", "threshold": 1.0, "random_return": 0.0,
    }  # fmt: skip
    failed = parse_result({**base, "status": "failed", "error": "boom"})
    assert isinstance(failed, FailedRun) and failed.curve is None
    with pytest.raises(ValueError, match="not a run result: ok.curve: Field required"):
        parse_result({**base, "status": "ok", "budget": 10, "components": {}})  # finished without a curve
    with pytest.raises(ValueError, match="status"):
        parse_result({**base, "status": "half-done"})
    (tmp_path / "result.json").write_text('{"status": "ok"')
    assert read_result(tmp_path / "result.json") is None  # unreadable: the run counts as never finished
    assert read_result(tmp_path / "missing.json") is None


def test_a_runs_file_stopped_mid_write_is_the_one_it_was_replacing(tmp_path, monkeypatch):
    # A publication's runs file (publish, verify --record, migrate) is written through a temp file and a
    # rename: Ctrl-C or a kill while the bytes go out leaves the earlier file whole, and no temp file.
    import os

    from rltransfer.records.run_result import read_json_lines, write_json_lines

    path = tmp_path / "runs.jsonl.gz"
    write_json_lines([{"seed": 0}], path)

    def stopped(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", stopped)
    with pytest.raises(KeyboardInterrupt):
        write_json_lines([{"seed": 0}, {"seed": 1}], path)
    assert read_json_lines(path) == [{"seed": 0}]
    assert [p.name for p in tmp_path.iterdir()] == ["runs.jsonl.gz"]


RESULTS = Path(__file__).parents[1] / "docs/results"
REPRODUCTIONS = sorted(RESULTS.glob("**/reproductions/*.jsonl.gz"))  # nested publications (sb3-engine/) too


@pytest.mark.parametrize("path", REPRODUCTIONS, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_every_published_reproduction_is_a_rerun_of_a_published_run_on_its_kind_of_cpu(path):
    """A publication's recorded re-runs (``rltransfer verify --record``) are what checks on their kind of CPU
    compare with: each must be a re-run, on the kind the file is named for, of a run the publication still
    publishes (the same run hash and engine) that was made on another kind (a run made on this kind is its
    own reference, and its re-run would never be read)."""
    from rltransfer.records.experiment_manifest import ExperimentManifest
    from rltransfer.records.run_result import read_json_lines
    from rltransfer.reporting.publication import read_reproductions, read_runs

    publication = path.parents[1]
    published = {r.key: r for r in read_runs(publication)}
    default = ExperimentManifest.read(publication).machine
    reruns = [parse_result(data) for data in read_json_lines(path)]
    assert reruns and all(isinstance(r, FinishedRun) and r.machine is not None for r in reruns)
    kind = reruns[0].machine
    assert read_reproductions(publication, kind) == {(r.key, r.bundle_sha256): r for r in reruns}  # as verify reads it
    for rerun in reruns:
        assert rerun.machine.kind == path.name.removesuffix(".jsonl.gz"), rerun.key
        run = published.get(rerun.key)
        assert run is not None, f"{rerun.key}: not a published run"
        assert (rerun.run_hash, rerun.engine) == (run.run_hash, run.engine), rerun.key
        made_on = run.machine or default
        assert made_on is not None and not made_on.same_kind(rerun.machine), rerun.key
