"""The experiment manifest: one typed record, read and written by one module."""

import json
import shutil
from pathlib import Path

import pytest

from rltransfer.errors import UserInputError
from rltransfer.records.experiment_manifest import ExperimentManifest

PUBLISHED = sorted(Path(__file__).parents[1].glob("docs/results/*/manifest.json"))


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.parent.name)
def test_a_manifest_read_and_written_back_is_the_same_bytes(path, tmp_path):
    assert PUBLISHED
    manifest = ExperimentManifest.read(path.parent)
    assert manifest.protocol is not None and manifest.runs and manifest.pretrainings
    assert all(p.kept == (p.slot is not None) for p in manifest.pretrainings)
    manifest.write(tmp_path)
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert json.dumps(written, sort_keys=True) == json.dumps(json.loads(path.read_text()), sort_keys=True)
    original = json.loads(path.read_text())
    assert ("layout_version" in written) == ("layout_version" in original)  # a field it never held stays absent


def test_the_experiment_records_runs_and_its_end_through_the_record(tmp_path):
    manifest = ExperimentManifest.read(tmp_path)  # none yet: an empty one
    assert manifest.runs == {} and manifest.status is None
    manifest.plan_run("t/scratch/seed-0", finished=False)
    manifest.set_run("t/finetune/seed-0", "ok", wall_seconds=1.5, finished="x")
    manifest.plan_run("t/finetune/seed-0", finished=True)  # an entry it has is kept
    manifest.end("done", grid_runs=1)
    manifest.write(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["runs"] == {
        "t/scratch/seed-0": {"status": "pending"},
        "t/finetune/seed-0": {"status": "ok", "wall_seconds": 1.5, "finished": "x"},
    }
    assert data["status"] == "done" and data["grid_runs"] == 1 and data["finished"]
    with pytest.raises(ValueError):
        manifest.set_run("t/x/seed-0", "half-done")  # a state that does not exist


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "(top level)"),
        ('{"runs": {"t/s/seed-0": {"status": "maybe"}}}', "runs.t/s/seed-0.status"),
        ('{"config_hsh": "abc"}', "config_hsh: Extra inputs are not permitted"),
    ],
)
def test_a_damaged_manifest_is_named_not_taken_for_an_empty_one(tmp_path, content, says, capsys):
    from rltransfer.cli import main

    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(UserInputError, match="is not an experiment manifest") as err:
        ExperimentManifest.read(tmp_path)
    assert says in str(err.value)
    published = PUBLISHED[0].parent
    run_dir = tmp_path / "exp"
    shutil.copytree(published, run_dir)
    (run_dir / "manifest.json").write_text(content)
    assert main(["report", str(run_dir)]) == 2
    assert "is not an experiment manifest" in capsys.readouterr().err
