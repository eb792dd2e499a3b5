import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import rltransfer
from rltransfer.errors import UserInputError
from rltransfer.experiment import RunLock
from rltransfer.strategies import STRATEGIES, register_strategy

REPORT_FILES = ["report.md", "summary.json", "summary.csv", "curves_very-long-heavy.png", "ttt_very-long-heavy.png"]
ROW_KEYS = {
    "target", "split", "strategy", "seeds", "pretrain_steps", "p0_iqm", "final_iqm", "final_iqm_ci", "auc_iqm",
    "auc_iqm_ci", "reached", "ttt_median", "ttt_median_ci", "speedup_to_threshold", "speedup_note", "auc_ratio",
    "auc_ratio_ci", "p_improve", "p_improve_ci", "logrank_p", "negative_transfer", "failed_runs", "n_eff",
    "p_value", "p_adjusted", "significant",
}  # fmt: skip


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))


def results(run_dir):
    out = {}
    for path in sorted((run_dir / "runs").glob("*/*/seed-*/result.json")):
        out[str(path.relative_to(run_dir))] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny experiment, run once for several tests."""
    base = tmp_path_factory.mktemp("exp")
    cfg = {
        "name": "tiny", "output_dir": str(base / "runs"), "family": "cartpole", "source_tasks": ["short", "long"],
        "target_tasks": ["very-long-heavy"], "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
        "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "zero_shot", "finetune"]},
        "evaluation": {"every": 128, "episodes": 3}, "runner": {"workers": 1},
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:  # the module's own cache, undone after the experiment
        mp.setenv("RLTRANSFER_CACHE", str(base / "cache"))
        res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    return cfg, res


def test_tiny_experiment_writes_every_output(finished):
    cfg, res = finished
    run_dir = res.run_dir
    for name in (
        "config.yaml",
        "manifest.json",
        "pretrain/bundle/bundle.json",
        "pretrain/bundle/components.safetensors",
    ):
        assert (run_dir / name).is_file(), name
    for name in REPORT_FILES:
        assert (run_dir / "report" / name).is_file(), name
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert {"experiment", "family", "protocol", "config_hash", "versions"} <= set(summary)
    assert [r["strategy"] for r in summary["rows"]] == ["scratch", "zero_shot", "finetune"]
    for row in summary["rows"]:
        assert set(row) >= ROW_KEYS and "by_pretrain" not in row  # one pre-training: nothing to split
        assert row["split"] == "extrapolation" and row["seeds"] == 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done" and all(r["status"] == "ok" for r in manifest["runs"].values())
    assert len(manifest["runs"]) == 6
    tasks = summary["protocol"]["tasks"]["very-long-heavy"]
    assert tasks["threshold"] == 475.0 and 5 < tasks["random_return"] < 200
    md = (run_dir / "report" / "report.md").read_text()
    assert "| very-long-heavy | finetune | 2 |" in md and "## Protocol" in md and "By pre-training" not in md


def test_runs_are_evaluated_at_zero_every_k_steps_and_at_the_budget(finished):
    _, res = finished
    r = json.loads((res.run_dir / "runs/very-long-heavy/finetune/seed-0/result.json").read_text())
    assert r["curve"]["step"] == [0, 128, 256]
    assert r["metrics"]["p0"] == r["curve"]["score"][0]
    zs = json.loads((res.run_dir / "runs/very-long-heavy/zero_shot/seed-1/result.json").read_text())
    assert zs["curve"]["step"] == [0, 128, 256] and len(set(zs["curve"]["return"])) == 1
    # The same fixed evaluation seeds for every strategy: zero_shot and finetune start from the
    # same pre-trained policy, so their step-0 returns are identical.
    assert r["curve"]["return"][0] == zs["curve"]["return"][0]


def test_resume_skips_finished_runs_and_reruns_a_missing_one(finished):
    cfg, res = finished
    before = results(res.run_dir)
    victim = res.run_dir / "runs/very-long-heavy/finetune/seed-1/result.json"
    victim.unlink()
    mtimes = {p: p.stat().st_mtime_ns for p in (res.run_dir / "runs").glob("*/*/seed-*/result.json")}
    rltransfer.run_experiment(cfg, progress=False, echo=False)
    for p, t in mtimes.items():
        assert p.stat().st_mtime_ns == t, f"{p} was re-run"
    after = results(res.run_dir)
    assert after == before  # the re-run reproduces the deleted result bit for bit


def test_a_changed_config_is_refused_not_mixed_naming_what_changed(finished):
    cfg, res = finished
    budget = cfg["transfer"]["timesteps"]
    with pytest.raises(UserInputError, match="holds results of a different config") as err:
        rltransfer.run_experiment(cfg, ["transfer.timesteps=512"], progress=False, echo=False)
    assert f": transfer.timesteps: 512 here, {budget} there; results are never mixed" in str(err.value)
    # More seeds or strategies change no hash; settings that do are each named
    with pytest.raises(UserInputError) as err:
        rltransfer.run_experiment(
            cfg,
            ["transfer.seeds=9", "agent.encoder.hidden=[8, 8]", "evaluation.deterministic=false"],
            progress=False,
            echo=False,
        )
    assert "agent.encoder.hidden: [8, 8] here" in str(
        err.value
    ) and "evaluation.deterministic: false here, true there" in str(err.value)
    assert "transfer.seeds" not in str(err.value)
    # A config file the experiment did not write (or cannot be read): the hashes alone
    saved = (res.run_dir / "config.yaml").read_bytes()
    try:
        (res.run_dir / "config.yaml").write_text("not: [a config")
        with pytest.raises(UserInputError, match=r"this one [0-9a-f]+\); results are never mixed"):
            rltransfer.run_experiment(cfg, ["transfer.timesteps=512"], progress=False, echo=False)
    finally:
        (res.run_dir / "config.yaml").write_bytes(saved)


def test_a_standalone_pretraining_or_transfer_never_replaces_an_experiments_files(finished, capsys):
    """`rltransfer pretrain CONFIG` writes by default where the experiment's pre-training seed 0 lives: it
    replaced the bundle the experiment's runs had loaded (their results then described another bundle)."""
    from rltransfer.cli import main

    cfg, res = finished
    run_dir = res.run_dir
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and "tb" not in p.parts}
    with pytest.raises(UserInputError, match="is a pre-training of the experiment in .* whose runs load it"):
        rltransfer.pretrain(cfg, ["pretrain.timesteps=128"])
    (run_dir.parent / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", str(run_dir.parent / "c.yaml"), "--no-progress"]) == 2
    assert "pre-train under another name (--set name=...)" in capsys.readouterr().err
    for call in (
        lambda: rltransfer.pretrain(cfg, ["pretrain.timesteps=128"], out_dir=run_dir),
        lambda: rltransfer.transfer(
            cfg, run_dir / "pretrain/bundle", "very-long-heavy", "finetune", timesteps=64, out_dir=run_dir
        ),
    ):
        with pytest.raises(UserInputError, match="is an experiment directory .* a directory of its own"):
            call()
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and "tb" not in p.parts} == files
    assert not list((run_dir / "tb").glob("events.*"))  # nothing in its TensorBoard tree's top either
    # elsewhere, or under another name, it trains
    other = rltransfer.pretrain(cfg, ["pretrain.timesteps=128", "name=tiny-alone"])
    assert other.bundle_path.parent.parent.name == "tiny-alone"


def test_more_seeds_reuse_every_finished_run(finished, tmp_path):
    cfg, res = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs")}
    shutil.copytree(res.run_dir, tmp_path / "runs" / "tiny")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny" / "runs").glob("*/*/seed-*/result.json")}
    out = rltransfer.run_experiment(cfg2, ["transfer.seeds=3"], progress=False, echo=False)
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, p
    assert [r["seeds"] for r in out.summary["rows"]] == [3, 3, 3]


def test_a_second_process_on_the_same_directory_is_refused(finished, tmp_path):
    cfg, res = finished
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with RunLock(res.run_dir):  # this process plays the first experiment
        proc = subprocess.run(
            [sys.executable, "-m", "rltransfer.cli", "experiment", str(path), "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"in use by another experiment process (pid {os.getpid()})" in proc.stderr


def test_tensorboard_server_shows_pretraining_runs_aggregates_and_hparams(finished):
    _, res = finished
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tb = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(res.run_dir / "tb"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def get(path, body=None):
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode())
        if body is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    try:
        for _ in range(120):
            try:
                runs = get("/data/runs")
                if any("/iqm/" in r for r in runs) and "layout" in runs:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        tags = get("/data/plugin/scalars/tags")
        pretrain = {"pretrain/short/rollout_return_mean100", "pretrain/long/final_eval_return", "train/value_loss"}
        assert pretrain <= set(tags["pretrain/seed-0"])  # run names: the paths under <run_dir>/tb
        tag = "eval/very-long-heavy"  # the target's own charts: its runs and its strategies' IQMs
        for strategy in ("scratch", "zero_shot", "finetune"):
            run = f"very-long-heavy/{strategy}/seed-0"
            assert {f"{tag}/score", f"{tag}/return"} <= set(tags[run]), run
            band = {
                f"{tag}/score",
                "iqm/very-long-heavy/score",
                "iqm/very-long-heavy/ci_low",
                "iqm/very-long-heavy/ci_high",
            }
            assert band <= set(tags[f"very-long-heavy/iqm/{strategy}"])
        curve = get(f"/data/plugin/scalars/scalars?run=very-long-heavy/finetune/seed-0&tag={tag}/score")
        assert [step for _, step, _ in curve] == [0, 128, 256]
        agg = get(f"/data/plugin/scalars/scalars?run=very-long-heavy/iqm/finetune&tag={tag}/score")
        low = get("/data/plugin/scalars/scalars?run=very-long-heavy/iqm/finetune&tag=iqm/very-long-heavy/ci_low")
        assert [step for _, step, _ in agg] == [0, 128, 256] and all(lo[2] <= a[2] for lo, a in zip(low, agg))
        # The custom-scalars layout: one margin chart per target (IQM and its band, every strategy).
        layout = get("/data/plugin/custom_scalars/layout")
        charts = {c["title"]: c for cat in layout["category"] for c in cat["chart"]}
        series = charts["very-long-heavy"]["margin"]["series"][0]
        iqm = "iqm/very-long-heavy"
        assert (series["value"], series["lower"], series["upper"]) == (
            f"{iqm}/score",
            f"{iqm}/ci_low",
            f"{iqm}/ci_high",
        )
        exp = get("/data/plugin/hparams/experiment", {"experimentName": ""})
        names = {h["name"] for h in exp["hparamInfos"]}
        assert {"strategy", "target", "seed", "family", "conditioning"} <= names
        assert "transfer/lineage/text_summary" in get("/data/plugin/text/tags")["very-long-heavy/finetune/seed-0"]
    finally:
        tb.terminate()
        tb.wait(timeout=30)


def test_runs_bundles_and_the_report_name_the_code_revision(finished):
    from rltransfer.hardware import this_machine
    from rltransfer.reporting.report import render
    from rltransfer.revision import code_revision

    _, res = finished
    rev = code_revision()  # this checkout's commit (None for an installed copy)
    runs = results(res.run_dir)
    assert len(runs) == 6 and all(json.loads(r)["code_revision"] == rev for r in runs.values())
    bundle = json.loads((res.run_dir / "pretrain/bundle/bundle.json").read_text())
    assert bundle["code_revision"] == rev
    assert json.loads((res.run_dir / "manifest.json").read_text())["code_revision"] == rev
    # ... and the machine: every run, the bundle and the invocation.
    here = this_machine().model_dump()
    assert all(json.loads(r)["machine"] == here for r in runs.values()) and bundle["machine"] == here
    assert json.loads((res.run_dir / "manifest.json").read_text())["machine"] == here
    # A run of another revision (a grid resumed after a commit) and one written before revisions were recorded.
    first, second = sorted((res.run_dir / "runs").glob("*/*/seed-*/result.json"))[:2]
    backup = {p: p.read_text() for p in (first, second)}
    try:
        for path, value in ((first, "0123456789ab"), (second, None)):
            data = json.loads(backup[path])
            data.pop("code_revision") if value is None else data.update(code_revision=value)
            path.write_text(json.dumps(data))
        summary = render(res.run_dir, tensorboard=False)
        md = (res.run_dir / "report" / "report.md").read_text()
    finally:
        for path, text in backup.items():
            path.write_text(text)
        render(res.run_dir, tensorboard=False)  # the module's later tests read the report of the real runs
    runs = {rev: 4, "0123456789ab": 1, "not recorded": 1} if rev else {"not recorded": 5, "0123456789ab": 1}
    assert summary["code_revisions"] == {"runs": runs, "pretrainings": {rev or "not recorded": 1}}
    if rev:
        assert f"runs `{rev}` 4, `0123456789ab` 1, not recorded 1; kept pre-trainings `{rev}` 1; Python " in md


def test_report_rerenders_from_disk(finished):
    from rltransfer.reporting.report import render

    _, res = finished
    report = res.run_dir / "report"
    before = {name: (report / name).read_bytes() for name in ("summary.json", "summary.csv", "report.md")}
    (report / "summary.json").unlink()
    summary = render(res.run_dir, tensorboard=False)
    assert (report / "summary.json").is_file() and len(summary["rows"]) == 3
    # Seeded statistics: a re-render of the same results is byte-identical.
    assert {name: (report / name).read_bytes() for name in before} == before


def test_a_publication_rerenders_byte_for_byte_from_its_runs_file_alone(finished, tmp_path):
    from rltransfer.cli import main
    from rltransfer.reporting.publication import RUNS_FILE, read_runs

    _, res = finished
    dest = tmp_path / "published"
    dest.mkdir()
    (dest / "README.md").write_text("kept")
    (dest / "curves_gone.png").write_bytes(b"an earlier publication's target")
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    assert (dest / "README.md").read_text() == "kept" and not (dest / "curves_gone.png").exists()
    runs = read_runs(dest)
    assert len(runs) == 6 and [r.to_json() for r in runs] == [json.loads(v) for v in results(res.run_dir).values()]
    published = {n: (dest / n).read_bytes() for n in ("summary.json", "summary.csv", "report.md")}
    assert published == {n: (res.run_dir / "report" / n).read_bytes() for n in published}
    for name in published:
        (dest / name).unlink()
    assert main(["report", str(dest)]) == 0  # from runs.jsonl.gz, config.yaml and manifest.json alone
    assert {n: (dest / n).read_bytes() for n in published} == published
    assert not (dest / "report").exists() and not (dest / "aggregate").exists()
    # The same results give the same bytes: publishing again changes nothing.
    before = (dest / RUNS_FILE).read_bytes()
    assert main(["publish", str(res.run_dir), str(dest)]) == 0 and (dest / RUNS_FILE).read_bytes() == before
    # An experiment whose output_dir and name point at the publication is refused, the publication untouched
    # (it wrote pretrain/ and tb/ there and replaced its config and manifest).
    files = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    overrides = [f"output_dir={dest.parent}", f"name={dest.name}"]
    with pytest.raises(UserInputError, match=r"is a publication \(runs.jsonl.gz\), not an experiment directory"):
        rltransfer.run_experiment(cfg, overrides, progress=False, echo=False)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == files


def test_a_publication_of_the_earlier_layout_is_refused_until_migrated(finished, tmp_path, capsys):
    # Layout 3 named a run's hash config_hash, as manifest.json names the config's: migrating renames it in
    # the runs file, and the publication re-renders as it was.
    import gzip

    from rltransfer.cli import main
    from rltransfer.records.run_result import write_json_lines
    from rltransfer.reporting.publication import RUNS_FILE

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    current = (dest / RUNS_FILE).read_bytes()
    lines = [json.loads(line) for line in gzip.decompress(current).decode().splitlines()]
    assert all("run_hash" in r and "config_hash" not in r for r in lines)
    write_json_lines(
        [{("config_hash" if k == "run_hash" else k): v for k, v in r.items()} for r in lines], dest / RUNS_FILE
    )
    manifest = json.loads((dest / "manifest.json").read_text())
    (dest / "manifest.json").write_text(json.dumps({**manifest, "layout_version": 3}))
    summary = (dest / "summary.json").read_bytes()
    assert main(["report", str(dest)]) == 2
    assert "layout version 3 (this rltransfer writes 4); migrate it first" in capsys.readouterr().err
    assert main(["migrate", str(dest)]) == 0
    assert f"{RUNS_FILE}: 6 result(s), config_hash -> run_hash" in capsys.readouterr().out
    assert (dest / RUNS_FILE).read_bytes() == current  # the bytes publish writes
    assert main(["report", str(dest)]) == 0 and (dest / "summary.json").read_bytes() == summary


def test_a_run_made_here_from_a_pre_training_made_elsewhere_is_told_apart_when_pre_trained_again(
    finished, tmp_path, capsys
):
    """An extended publication's new runs load the bundle it ships, made on the publication's machine; with
    --pretrain that pre-training is trained again here, and where its weights come out other (another kind of
    CPU), so do the runs that load it: explained by the pre-training's machine (exit 3), not the code's."""
    from rltransfer.cli import main
    from rltransfer.hardware import this_machine
    from rltransfer.records.bundle_manifest import read_manifest
    from rltransfer.records.machine import Machine
    from rltransfer.reporting.publication import RUNS_FILE, read_runs, shipped_bundle, write_runs

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    runs = read_runs(dest)
    i = next(i for i, r in enumerate(runs) if r.strategy == "finetune")
    runs[i].curve.returns[1] += 1.0  # as if its pre-training had computed other weights
    runs[i] = runs[i].model_copy(update={"bundle_sha256": "f" * 64})
    write_runs(runs, dest / RUNS_FILE)
    here = this_machine()
    bundle = shipped_bundle(dest, 0)
    for trained_on, code in ((Machine(cpu="Some CPU", vendor="OtherVendor", isa=here.isa), 3), (here, 1)):
        manifest = read_manifest(bundle)
        manifest.machine = trained_on
        manifest.sealed().write(bundle)
        argv = ["verify", str(dest), "--targets", runs[i].target, "--workers", "1", "--pretrain"]
        assert main(argv) == code
        out = capsys.readouterr().out
        assert f"DIFFERS {runs[i].key}: evaluation 1 (step 128)" in out and "its pre-training differs too" in out
        assert ("(its pre-training made on Some CPU (OtherVendor" in out) == (code == 3)
        assert "5 of 6 run(s) reproduced exactly" in out


def test_a_restored_publication_is_extended_by_the_new_runs_alone(finished, tmp_path, capsys):
    from rltransfer.cli import main
    from rltransfer.records.bundle_manifest import read_manifest
    from rltransfer.records.experiment_manifest import ExperimentManifest
    from rltransfer.records.machine import Machine
    from rltransfer.records.run_result import FinishedRun
    from rltransfer.reporting.publication import read_runs, record_reproductions, shipped_bundle
    from rltransfer.store.layout import bundle_dir

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    out_dir = tmp_path / "again"
    assert main(["restore", str(dest), "--output-dir", str(out_dir)]) == 0
    run_dir = out_dir / "tiny"
    said = capsys.readouterr().out
    assert (
        f"restored {dest} to {run_dir}: config, manifest, 6 run result(s), the bundles of pre-training seed(s) 0"
        in said
    )
    assert main(["restore", str(dest), "--output-dir", str(out_dir)]) == 2
    assert f"'{run_dir}' exists and is not empty" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main(["restore", str(dest), "--output-dir", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert f"cannot restore into '{tmp_path / 'a-file' / 'tiny'}'" in err and "Traceback" not in err
    restored = results(run_dir)
    assert restored == results(res.run_dir)  # each result as the experiment wrote it (its machine recorded)
    weights = "pretrain/bundle/components.safetensors"
    assert (run_dir / weights).read_bytes() == (res.run_dir / weights).read_bytes()
    # One more strategy on the restored directory: only its runs train; the published ones and the
    # pre-training are re-used as they are.
    assert main([
        "experiment", str(dest / "config.yaml"), "--set", f"output_dir={out_dir}",
        "--set", "transfer.strategies=[scratch,zero_shot,finetune,freeze_encoder]",
    ]) == 0  # fmt: skip
    assert "6 of 8 runs re-used, 2 to run" in capsys.readouterr().out
    assert {k: v for k, v in results(run_dir).items() if k in restored} == restored
    assert (run_dir / weights).read_bytes() == (res.run_dir / weights).read_bytes()
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert [r["strategy"] for r in summary["rows"]] == ["scratch", "zero_shot", "finetune", "freeze_encoder"]
    # Published again over the publication, whose runs were re-run on another kind of CPU (verify --record): the
    # re-runs of the six re-used runs stay with it, and the checks there still compare with them.
    elsewhere = Machine(cpu="Some CPU", vendor="OtherVendor", isa="AVX2")
    kept = record_reproductions(dest, elsewhere, [r for r in read_runs(dest) if isinstance(r, FinishedRun)])
    recorded = kept.read_bytes()
    assert main(["publish", str(run_dir), str(dest)]) == 0 and len(read_runs(dest)) == 8
    assert kept.read_bytes() == recorded
    # A shipped bundle that records no machine (made before bundles did) was trained where the publication was
    # made: restored, it records that machine, which an extended publication's manifest no longer names.
    shipped = shipped_bundle(dest, 0)
    read_manifest(shipped).model_copy(update={"machine": None}).sealed().write(shipped)
    experiment = ExperimentManifest.read(dest)
    experiment.machine = elsewhere
    experiment.write(dest)
    assert main(["restore", str(dest), "--output-dir", str(tmp_path / "third")]) == 0
    assert read_manifest(bundle_dir(tmp_path / "third" / "tiny", 0)).machine == elsewhere


def test_a_publication_restored_without_runs_is_made_again_run_for_run(finished, tmp_path, capsys):
    """``restore --without-runs``: the pre-trainings, config and manifest only; the experiment on the config then
    makes the whole grid again from the publication's own pre-trainings, here (the same code, the same kind
    of CPU) every run to the last byte of its result."""
    from rltransfer.cli import main
    from rltransfer.records.experiment_manifest import ExperimentManifest

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    out_dir = tmp_path / "again"
    assert main(["restore", str(dest), "--output-dir", str(out_dir), "--without-runs"]) == 0
    run_dir = out_dir / "tiny"
    said = capsys.readouterr().out
    assert f"restored {dest} to {run_dir}: config, manifest, no run, the bundles of pre-training seed(s) 0" in said
    assert (
        f"Make every run again at this code: rltransfer experiment {dest}/config.yaml --set output_dir={out_dir}"
        in said
    )
    assert results(run_dir) == {} and ExperimentManifest.read(run_dir).runs == {}
    weights = "pretrain/bundle/components.safetensors"
    assert (run_dir / weights).read_bytes() == (res.run_dir / weights).read_bytes()
    assert main(["experiment", str(dest / "config.yaml"), "--set", f"output_dir={out_dir}"]) == 0
    assert "0 of 6 runs re-used, 6 to run" in capsys.readouterr().out
    assert results(run_dir) == results(res.run_dir)
    assert (run_dir / weights).read_bytes() == (res.run_dir / weights).read_bytes()  # not trained again


def test_publishing_runs_made_with_uncommitted_changes_warns(finished, tmp_path, capsys):
    """A run or pre-training whose code revision says ``+dirty`` was made by code no commit holds: publishing it
    says so (it still publishes: the figures are what was measured)."""
    import shutil
    from dataclasses import replace

    from rltransfer.cli import main
    from rltransfer.records.experiment_manifest import ExperimentManifest
    from rltransfer.records.run_result import RESULT_FILE, read_result

    _, res = finished
    run_dir = tmp_path / "tiny"
    shutil.copytree(res.run_dir, run_dir)
    manifest = ExperimentManifest.read(run_dir)
    manifest.pretrainings = [replace(p, code_revision="0123456789ab") for p in manifest.pretrainings]
    manifest.write(run_dir)
    paths = sorted((run_dir / "runs").glob(f"*/*/seed-*/{RESULT_FILE}"))
    for i, path in enumerate(paths):
        read_result(path).model_copy(update={"code_revision": "0123456789ab" + ("+dirty" if i == 0 else "")}).write(
            path
        )
    assert main(["publish", str(run_dir), str(tmp_path / "dirty")]) == 0
    assert (
        "warning: 1 run(s) were made with uncommitted changes (their code revision says +dirty)"
        in capsys.readouterr().err
    )
    read_result(paths[0]).model_copy(update={"code_revision": "0123456789ab"}).write(paths[0])
    assert main(["publish", str(run_dir), str(tmp_path / "clean")]) == 0
    assert "uncommitted" not in capsys.readouterr().err


def test_an_experiment_never_writes_into_a_directory_of_ones_own(finished, tmp_path):
    """`output_dir: .` and `name: myproject` made the experiment write its config.yaml over the project's own."""
    cfg, _ = finished
    mine = tmp_path / "tiny"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own settings\n")
    (mine / "train.py").write_text("print('mine')\n")
    c = {**cfg, "output_dir": str(tmp_path), "transfer": {**cfg["transfer"], "strategies": ["scratch"], "seeds": 1}}
    with pytest.raises(UserInputError, match=r"is not an experiment directory \(no manifest.json\) and holds files an "
                       r"experiment does not write \(train.py\)"):  # fmt: skip
        rltransfer.run_experiment(c, progress=False, echo=False)
    assert sorted(p.name for p in mine.iterdir()) == ["config.yaml", "train.py"]
    assert (mine / "config.yaml").read_text() == "my own settings\n"
    # A config of one's own alone there (the file the command runs, say) would be replaced by the resolved config.
    (mine / "train.py").unlink()
    (mine / "config.yaml").write_text("# my settings\n" + yaml.safe_dump(c, sort_keys=False))
    with pytest.raises(UserInputError, match=r"config.yaml' is not a config an experiment wrote .* comments and all"):
        rltransfer.run_experiment(mine / "config.yaml", progress=False, echo=False)
    assert (mine / "config.yaml").read_text().startswith("# my settings\n")
    # One holding only what an experiment writes (a standalone pre-training's, an interrupted first start's: its
    # config as an experiment writes it) is taken
    (mine / "config.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    rltransfer.pretrain(c, ["pretrain.timesteps=128"])
    assert rltransfer.run_experiment(c, progress=False, echo=False).run_dir == mine


def test_verify_never_writes_its_reruns_over_an_experiment(finished, tmp_path, capsys):
    """`verify --out runs` put its re-runs in runs/<name>: the experiment of the same name, whose results (and
    bundles) it replaced."""
    from rltransfer.cli import main

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    files = {p: p.read_bytes() for p in res.run_dir.rglob("*") if p.is_file() and "tb" not in p.parts}
    assert main(["verify", str(dest), "--runs", "1", "--workers", "1", "--out", str(res.run_dir.parent)]) == 2
    assert f"'{res.run_dir}' holds files already (an experiment of the same name?)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in res.run_dir.rglob("*") if p.is_file() and "tb" not in p.parts} == files
    assert main(["verify", str(dest), "--runs", "1", "--workers", "1", "--out", str(tmp_path / "kept")]) == 0
    assert (tmp_path / "kept" / res.run_dir.name / "runs").is_dir()


def test_verify_reproduces_published_runs_and_names_the_first_difference(finished, tmp_path, capsys):
    from rltransfer.cli import main
    from rltransfer.hardware import this_machine
    from rltransfer.records.experiment_manifest import ExperimentManifest
    from rltransfer.records.machine import Machine
    from rltransfer.records.run_result import read_json_lines, write_json_lines
    from rltransfer.reporting.publication import RUNS_FILE, read_runs, write_runs

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    # The config says where whoever runs it writes (the default, relative), not where the experiment ran.
    ran = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    published = yaml.safe_load((dest / "config.yaml").read_text())
    assert Path(ran["output_dir"]).is_absolute() and published == {**ran, "output_dir": "runs"}
    # The bundle ships (weights and manifest, no pickle), byte for byte the one the runs loaded.
    shipped = dest / "bundles" / "pretrain-seed-0"
    assert sorted(p.name for p in shipped.iterdir()) == ["bundle.json", "components.safetensors"]
    assert (shipped / "components.safetensors").read_bytes() == (
        res.run_dir / "pretrain" / "bundle" / "components.safetensors"
    ).read_bytes()
    # Two runs drawn, from the shipped bundle: the same curves, to the last digit, nothing pre-trained.
    assert main(["verify", str(dest), "--runs", "2", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "from the shipped bundles of pre-training seed(s) 0" in out and "seed 0 again" not in out
    assert "2 of 2 run(s) reproduced exactly" in out
    # --pretrain trains the pre-training again and says its weights are the ones the runs loaded.
    assert main(["verify", str(dest), "--runs", "2", "--workers", "1", "--pretrain"]) == 0
    out = capsys.readouterr().out
    assert "pre-training seed 0 again" in out and "pre-training seed 0: the same weights" in out
    assert "2 of 2 run(s) reproduced exactly" in out
    # Without shipped bundles, the pre-training is trained again, and said so.
    shutil.rmtree(dest / "bundles")
    assert main(["verify", str(dest), "--runs", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "no bundles ship with this publication" in out and "pre-training seed 0 again" in out
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    # A published figure the code does not give: exit 1, the run and its first differing evaluation named.
    runs = read_runs(dest)
    runs[0].curve.returns[1] += 1.0
    write_runs(runs, dest / RUNS_FILE)
    key = runs[0].key
    assert main(["verify", str(dest), "--targets", runs[0].target, "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERS {key}: evaluation 1 (step 128): return" in out and "5 of 6 run(s) reproduced exactly" in out
    assert "another kind of CPU" not in out
    # Made on another kind of CPU (the run's own record, or the publication's for runs that have none), a
    # difference is not the code's: exit 3, the machine named; on this kind, exit 1 as above.
    here = this_machine()
    other = Machine(cpu="Some CPU", vendor="OtherVendor", isa=here.isa)
    for mine, publication, code in ((other, None, 3), (None, other, 3), (here, other, 1), (None, None, 1)):
        runs[0] = runs[0].model_copy(update={"machine": mine})
        write_runs(runs, dest / RUNS_FILE)
        manifest = ExperimentManifest.read(dest)
        manifest.machine = publication
        manifest.write(dest)
        assert main(["verify", str(dest), "--targets", runs[0].target, "--workers", "1"]) == code
        out = capsys.readouterr().out
        assert (f"(made on Some CPU (OtherVendor, torch {here.isa}))" in out) == (code == 3)
        assert (f"made on another kind of CPU (Some CPU (OtherVendor, torch {here.isa}); this one: {here})" in out) == (
            code == 3
        )
    # --record keeps this machine's re-runs of runs made elsewhere; later checks here compare with them exactly,
    # and a difference from them is the code's again (exit 1). Publishing again keeps those of unchanged runs.
    write_runs([r.model_copy(update={"machine": None}) for r in runs], dest / RUNS_FILE)  # as runs before 2026-12-04
    manifest.machine = other
    manifest.write(dest)
    target = runs[0].target
    assert main(["verify", str(dest), "--targets", target, "--workers", "1", "--record"]) == 3
    out = capsys.readouterr().out
    kept = dest / "reproductions" / f"{here.kind}.jsonl.gz"
    assert f"recorded 6 re-run(s) made on this kind of CPU ({here}) in {kept}" in out
    reruns = read_json_lines(kept)
    assert len(reruns) == 6 and all(r["machine"] == here.model_dump() for r in reruns)
    assert main(["verify", str(dest), "--targets", target, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"same    {key} (re-run on this kind of CPU at " in out and "6 of 6 run(s) reproduced exactly" in out
    # A re-run recorded already stays as recorded (the revision that first made it too): --record adds none.
    assert main(["verify", str(dest), "--targets", target, "--workers", "1", "--record"]) == 0
    assert "nothing to record: " in capsys.readouterr().out and read_json_lines(kept) == reruns
    # Recorded beside other weights (a check after --pretrain on this CPU): a run that loads nothing (scratch) is
    # still found by its key; one that loads the bundle is not (from other weights it is another run), and is
    # compared with the published run again, where the first one's difference is the other CPU's (exit 3).
    write_json_lines([dict(r, bundle_sha256="0" * 64) for r in reruns], kept)
    assert main(["verify", str(dest), "--targets", target, "--workers", "1"]) == (
        0 if runs[0].strategy == "scratch" else 3
    )
    out = capsys.readouterr().out
    for r in runs:
        assert (f"same    {r.key} (re-run on this kind of CPU at " in out) == (r.strategy == "scratch"), r.key
    assert "its pre-training differs too" not in out
    reruns[0]["curve"]["return"][1] += 1.0
    write_json_lines(reruns, kept)
    assert main(["verify", str(dest), "--targets", target, "--workers", "1"]) == 1
    assert f"DIFFERS {reruns[0]['target']}/{reruns[0]['strategy']}/seed-{reruns[0]['seed']}: evaluation 1" in (
        capsys.readouterr().out
    )
    # --record does not replace a recorded re-run that differs (the code's change, which the next check would
    # otherwise no longer see): the check still fails after it, and the file holds the re-runs as they were.
    assert main(["verify", str(dest), "--targets", target, "--workers", "1", "--record"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS " in out and "nothing to record: " in out and read_json_lines(kept) == reruns
    assert main(["verify", str(dest), "--targets", target, "--workers", "1"]) == 1
    assert "DIFFERS " in capsys.readouterr().out
    # The experiment's runs published again: the run whose published curve was altered above is another run, and
    # its re-run goes; the re-runs of the five others (the same run hash, weights and curve) stay.
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    carried = {f"{r['target']}/{r['strategy']}/seed-{r['seed']}" for r in read_json_lines(kept)}
    assert carried == {r.key for r in runs if r.target == target} - {key} and len(carried) == 5
    # Restored and published to another directory, the same re-runs go along.
    assert main(["restore", str(dest), "--output-dir", str(tmp_path / "restored")]) == 0
    assert f"its re-runs on other kinds of CPU ({here.kind}; " in capsys.readouterr().out
    assert main(["publish", str(tmp_path / "restored" / res.run_dir.name), str(tmp_path / "elsewhere")]) == 0
    moved = tmp_path / "elsewhere" / "reproductions" / kept.name
    assert {f"{r['target']}/{r['strategy']}/seed-{r['seed']}" for r in read_json_lines(moved)} == carried
    assert main(["verify", str(dest), "--targets", "nowhere"]) == 2
    assert "--targets: nowhere not in the publication" in capsys.readouterr().err


def test_a_bundle_ships_only_when_it_is_the_one_the_runs_loaded_and_small(finished, tmp_path, monkeypatch):
    from rltransfer.errors import UserInputError
    from rltransfer.records.run_result import parse_result
    from rltransfer.reporting import publication

    _, res = finished
    runs = [parse_result(json.loads(v)) for v in results(res.run_dir).values()]
    bundle = res.run_dir / "pretrain" / "bundle"
    size = publication.ship_bundles(tmp_path, {0: bundle}, runs)
    assert size == sum((bundle / f).stat().st_size for f in publication.BUNDLE_FILES)
    assert publication.shipped_bundles(tmp_path) == {0: tmp_path / "bundles" / "pretrain-seed-0"}
    changed = [r.model_copy(update={"bundle_sha256": "0" * 64}) if r.bundle_sha256 else r for r in runs]
    with pytest.raises(UserInputError, match="not the one its runs loaded"):
        publication.ship_bundles(tmp_path, {0: bundle}, changed)
    monkeypatch.setattr(publication, "MAX_BUNDLE_BYTES", size - 1)
    assert publication.ship_bundles(tmp_path, {0: bundle}, runs) == 0 and not publication.shipped_bundles(tmp_path)


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_publishing_where_it_would_damage_the_experiment_or_another_is_refused(finished, tmp_path, capsys):
    # Publishing into the experiment directory itself replaced (deleted, then failed to copy) its config and
    # manifest; into its report/, the report; onto another experiment, that one's config and manifest.
    from rltransfer.cli import main

    _, res = finished
    other = tmp_path / "other"
    (other / "runs").mkdir(parents=True)
    (other / "config.yaml").write_text("another experiment's")
    (tmp_path / "a-file").write_text("x")
    before = _files(res.run_dir)
    refusals = {
        res.run_dir: "is the experiment directory itself",
        res.run_dir / "report": "is inside the experiment directory",
        res.run_dir.parent: "holds the experiment directory",
        other: "is an experiment directory (it holds runs/)",
        tmp_path / "a-file": "is a file",
    }
    for dest, said in refusals.items():
        assert main(["publish", str(res.run_dir), str(dest)]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
    assert _files(res.run_dir) == before and (other / "config.yaml").read_text() == "another experiment's"


def test_a_refused_or_stopped_publish_leaves_the_earlier_publication_as_it_was(finished, tmp_path, monkeypatch, capsys):
    # publish removed the earlier publication's files before it read the results and checked the bundles: an
    # unreadable result, or a stop while the new files were written, left DEST without its runs file.
    from rltransfer.cli import main
    from rltransfer.reporting import publication, publishing

    _, res = finished
    dest = tmp_path / "published"
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    (dest / "README.md").write_text("kept")
    earlier = _files(dest)
    broken = tmp_path / "broken"
    shutil.copytree(res.run_dir, broken)
    next(iter(publication.result_paths(broken))).write_text("{")
    assert main(["publish", str(broken), str(dest)]) == 2
    assert "run the experiment again to redo the run" in capsys.readouterr().err
    assert _files(dest) == earlier

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(publishing, "render", stop)  # after the runs file and the bundles are written
    with pytest.raises(KeyboardInterrupt):
        publishing.publish(res.run_dir, dest)
    assert _files(dest) == earlier and sorted(p.name for p in dest.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()
    # A stop between the renames leaves the staged files; publishing again mends it.
    (dest / publishing.STAGING_DIR).mkdir()
    (dest / publishing.STAGING_DIR / "report.md").write_text("half")
    (dest / "report.md").unlink()
    assert main(["publish", str(res.run_dir), str(dest)]) == 0
    assert _files(dest) == earlier


def test_a_report_of_an_incomplete_grid_says_so_first_and_names_the_runs_missing(finished, tmp_path, capsys):
    # A grid stopped before its end was reported (and published) like a whole one, with fewer seeds in a row.
    from rltransfer.cli import main
    from rltransfer.reporting.report import render

    _, res = finished
    assert json.loads((res.run_dir / "report" / "summary.json").read_text())["missing_runs"] == []
    assert "Incomplete" not in (res.run_dir / "report" / "report.md").read_text()
    partial = tmp_path / "tiny"  # where the experiment writes with output_dir tmp_path
    shutil.copytree(res.run_dir, partial)
    (partial / "runs" / "very-long-heavy" / "finetune" / "seed-1" / "result.json").unlink()
    assert main(["report", str(partial)]) == 0
    said = capsys.readouterr().out
    assert (
        "Incomplete: 1 run(s) of the grid have no result yet" in said
        and "only these: very-long-heavy/finetune/seed-1." in said
    )
    summary = render(partial)
    assert summary["missing_runs"] == ["very-long-heavy/finetune/seed-1"]
    report = (partial / "report" / "report.md").read_text()
    assert report.split("\n")[2].startswith("**Incomplete: 1 run(s)")
    assert "## Runs not run yet\n\n- `very-long-heavy/finetune/seed-1`\n" in report
    assert main(["publish", str(partial), str(tmp_path / "published")]) == 0
    assert "warning: the grid is incomplete: 1 of its runs have no result" in capsys.readouterr().err
    # Running the experiment again runs that run alone, and the report is whole again.
    config = yaml.safe_load((partial / "config.yaml").read_text())
    again = rltransfer.run_experiment({**config, "output_dir": str(tmp_path)}, progress=False, echo=False)
    assert again.run_dir == partial and again.summary["missing_runs"] == []


def test_publishing_a_directory_that_is_not_an_experiment_is_refused(tmp_path, capsys):
    from rltransfer.cli import main

    assert main(["publish", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not an experiment directory (missing config.yaml, manifest.json)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_published_report_is_rendered_from_the_published_runs(finished, tmp_path):
    # publish copied the experiment directory's report as it was last rendered: after runs that finished
    # later (an experiment stopped before its report, a result deleted to redo it) it described other runs
    # than the runs file beside it, and 'rltransfer report DEST' gave another report.
    from rltransfer.cli import main

    _, res = finished
    changed = tmp_path / "changed"
    shutil.copytree(res.run_dir, changed)
    shutil.rmtree(changed / "runs" / "very-long-heavy" / "finetune")  # the report still counts its 2 runs
    dest = tmp_path / "published"
    assert main(["publish", str(changed), str(dest)]) == 0
    summary = json.loads((dest / "summary.json").read_text())
    assert [r["strategy"] for r in summary["rows"]] == ["scratch", "zero_shot"]
    assert summary["missing_runs"] == ["very-long-heavy/finetune/seed-0", "very-long-heavy/finetune/seed-1"]
    published = _files(dest)
    assert main(["report", str(dest)]) == 0
    assert _files(dest) == published


def test_the_protocol_says_how_heads_start_and_each_strategys_parameters():
    from rltransfer.reporting.report import transfer_settings
    from rltransfer.reporting.report_text import protocol_text

    config = {
        "transfer": {
            "strategies": ["scratch", "zero_shot", "heads_only", "adapter", "my_own"], "head_init": "probe",
            "probe_episodes": 3, "strategy_params": {"heads_only": {"freeze": ["encoder", "trunk.pi"]},
                                                     "adapter": {"rank": 2}, "my_own": {"alpha": 1}},
        }
    }  # fmt: skip
    settings = transfer_settings(config)
    # Defaults filled in; load and freeze only where set; a strategy not registered here keeps what was given.
    assert settings == {
        "head_init": "probe", "probe_episodes": 3,
        "strategy_params": {"heads_only": {"freeze": ["encoder", "trunk.pi"]}, "adapter": {"rank": 2, "alpha": 8.0},
                            "my_own": {"alpha": 1}},
    }  # fmt: skip
    text = protocol_text({"protocol": {"every": 10, "episodes": 2, "budget": 100, "transfer": settings},
                          "pretrain_steps": 5, "targets": ["t"]})  # fmt: skip
    assert "unchanged for 3 episode(s) before training (its steps charged to the run)" in text
    assert "heads_only freeze=[encoder, trunk.pi]; adapter rank=2, alpha=8.0; my_own alpha=1" in text


def test_a_strategy_the_running_script_defines_is_named_before_a_ray_grid(tiny_config):
    """What a script defines (module ``__main__``) never reaches Ray's workers: a strategy so defined is
    refused by name, as the script's family is (tests/test_declared_families.py)."""
    from rltransfer.errors import ConfigError
    from rltransfer.execution.known_names import check_workers_know, user_defined
    from rltransfer.validation import validate

    def mine(params):
        return STRATEGIES["finetune"].plan(params)

    mine.__module__ = "__main__"  # as a function of the script run with python script.py
    register_strategy("mine_test", overwrite=True)(mine)
    try:
        cfg = {**tiny_config, "transfer": {**tiny_config["transfer"], "strategies": ["scratch", "mine_test"]}}
        setup = validate(rltransfer.load_config(cfg))
        assert user_defined(setup) == [("strategy 'mine_test'", "__main__")]
        check_workers_know(setup, None)  # the local backend with one worker: the runs train in this process
        ray = validate(rltransfer.load_config({**cfg, "runner": {"backend": "ray"}}))
        with pytest.raises(
            ConfigError, match="Ray's workers do not import the script that defines strategy 'mine_test'"
        ):
            check_workers_know(ray, None)
    finally:
        STRATEGIES.pop("mine_test")
    assert user_defined(validate(rltransfer.load_config(tiny_config))) == []  # the shipped names: rltransfer's


def test_a_failing_run_is_isolated_and_reported(tmp_path):
    @register_strategy("explodes_test", overwrite=True)
    def explodes(params):
        raise RuntimeError("boom on purpose")

    cfg = {
        "name": "fail", "output_dir": str(tmp_path / "runs"), "family": "cartpole", "source_tasks": ["short"],
        "target_tasks": ["long"], "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
        "transfer": {"timesteps": 128, "seeds": 2, "strategies": ["explodes_test"]},
        "evaluation": {"every": 128, "episodes": 2}, "runner": {"workers": 1},
    }  # fmt: skip
    try:
        res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    finally:
        STRATEGIES.pop("explodes_test")
    assert sorted(res.failed) == ["long/explodes_test/seed-0", "long/explodes_test/seed-1"]
    summary = res.summary
    assert [f["error"] for f in summary["failures"]] == ["RuntimeError: boom on purpose"] * 2
    assert summary["rows"][0]["strategy"] == "scratch" and summary["rows"][0]["seeds"] == 2
    assert "## Failed runs" in (res.run_dir / "report" / "report.md").read_text()


def test_pretraining_seeds_spread_the_transfer_seeds_and_the_report_splits_them(finished, tmp_path):
    cfg, _ = finished
    cfg2 = {
        **cfg, "output_dir": str(tmp_path / "runs"), "pretrain": {**cfg["pretrain"], "seeds": 2},
        "transfer": {**cfg["transfer"], "seeds": 3, "strategies": ["scratch", "zero_shot"]},
    }  # fmt: skip
    res = rltransfer.run_experiment(cfg2, progress=False, echo=False)
    bundles = [res.run_dir / "pretrain" / sub / "bundle" / "components.safetensors" for sub in ("", "seed-1")]
    assert bundles[0].read_bytes() != bundles[1].read_bytes()  # two pre-trainings, not one twice
    run = {
        seed: json.loads((res.run_dir / f"runs/very-long-heavy/zero_shot/seed-{seed}/result.json").read_text())
        for seed in range(3)
    }
    assert [run[s]["pretrain_seed"] for s in range(3)] == [0, 1, 0]
    assert run[0]["curve"] == run[2]["curve"]  # zero_shot: the same pre-training, the same agent
    rows = {r["strategy"]: r for r in res.summary["rows"]}
    assert "by_pretrain" not in rows["scratch"]  # scratch loads nothing of a pre-training
    groups = rows["zero_shot"]["by_pretrain"]
    assert [(g["pretrain_seed"], g["seeds"]) for g in groups] == [(0, [0, 2]), (1, [1])]
    assert groups[0]["p0_mean"] == run[0]["metrics"]["p0"] and groups[1]["auc_mean"] == run[1]["metrics"]["auc"]
    md = (res.run_dir / "report" / "report.md").read_text()
    assert "By pre-training" in md and "| zero_shot | 1 | 1 |" in md
    assert "transfer seed i starts from pre-training i mod 2" in md
    # zero_shot's seeds 0 and 2 are one agent (same pre-training, deterministic evaluation): 2 units of 3.
    assert rows["zero_shot"]["n_eff"] == 2 and rows["zero_shot"]["pretrainings"] == 2
    assert rows["zero_shot"]["claim"] == "too few independent runs" and not rows["zero_shot"]["significant"]
    assert "a smoke test, not a claim: zero_shot (2)." in md and "Holm-corrected over 1" in md


def test_pretraining_seeds_train_side_by_side_into_the_same_bundles(finished, tmp_path, capsys):
    cfg, _ = finished
    grid = {**cfg["transfer"], "seeds": 2, "strategies": ["zero_shot"]}
    runs = {}
    for workers in (1, 2):
        c = {
            **cfg, "output_dir": str(tmp_path / f"w{workers}"), "pretrain": {**cfg["pretrain"], "seeds": 2},
            "transfer": grid, "runner": {"workers": workers},
        }  # fmt: skip
        runs[workers] = rltransfer.run_experiment(c, progress=False, echo=workers == 2).run_dir
    captured = capsys.readouterr()
    out = captured.out
    assert "pre-training seeds 0, 1 side by side" in out and "pre-training seed 1:" in out
    # Two seeds: the report can give no verdict, and the command says so before it runs.
    assert "warning: transfer.seeds is 2: below 4 independent runs per strategy" in captured.err
    # 512 steps learn no source: each pre-training says which it left below the threshold, with its score.
    assert "warning: pre-training seed 1 left 2 source task(s) below the threshold" in captured.err
    for sub in ("", "seed-1"):
        files = [runs[w] / "pretrain" / sub / "bundle" / "components.safetensors" for w in (1, 2)]
        assert files[0].read_bytes() == files[1].read_bytes()
    assert results(runs[2]) == results(runs[1])


def test_a_budget_below_the_first_update_is_warned_of_and_trains_nothing(finished, tmp_path, capsys):
    from stable_baselines3 import PPO

    from rltransfer.config import load_config
    from rltransfer.hyperparameters import untrained_warning

    cfg, res = finished
    short = {**cfg["transfer"], "timesteps": 48, "strategies": ["scratch"]}  # a rollout: 64 steps x 1 env
    c = {**cfg, "output_dir": str(tmp_path / "runs"), "transfer": short, "evaluation": {"every": 16, "episodes": 2}}
    run_dir = rltransfer.run_experiment(c, progress=False, echo=True).run_dir
    err = capsys.readouterr().err
    assert (
        "warning: transfer.timesteps (48) is below one PPO rollout (n_steps 64 x transfer.n_envs 1: 64 steps): "
        "no run is updated" in err
    )
    assert PPO.load(run_dir / "runs/very-long-heavy/scratch/seed-0/model.zip")._n_updates == 0
    assert PPO.load(res.run_dir / "runs/very-long-heavy/scratch/seed-0/model.zip")._n_updates > 0  # 256 steps
    assert untrained_warning(load_config(cfg)) == ""  # the finished experiment's 256 steps: four rollouts


def test_an_evaluation_interval_not_below_the_budget_is_warned_of(finished, tmp_path, capsys):
    """``evaluation.every`` counts target steps: at the budget or above it, a run is evaluated at step 0 and
    at its end only, and the experiment says so before it starts."""
    from rltransfer.config import load_config
    from rltransfer.validation import evaluation_schedule_warning

    cfg, _ = finished
    one = {**cfg["transfer"], "strategies": ["scratch"], "seeds": 1}
    c = {**cfg, "output_dir": str(tmp_path / "runs"), "transfer": one, "evaluation": {"every": 1000, "episodes": 2}}
    run_dir = rltransfer.run_experiment(c, progress=False, echo=True).run_dir
    budget = one["timesteps"]
    assert (
        f"warning: evaluation.every (1,000 target steps) is not below transfer.timesteps ({budget:,}): each run is "
        "evaluated at step 0 and at its end only" in capsys.readouterr().err
    )
    result = json.loads((run_dir / "runs/very-long-heavy/scratch/seed-0/result.json").read_text())
    assert result["curve"]["step"] == [0, budget]
    assert evaluation_schedule_warning(load_config(cfg)) == ""  # every 128 of 256 steps


def test_an_evaluation_interval_of_a_few_steps_is_warned_of():
    """``every`` read as episodes (every 10 episodes, say): thousands of evaluations a run."""
    from rltransfer.config import load_config
    from rltransfer.validation import MAX_EVALUATIONS, evaluation_schedule_warning

    cfg = {"family": "pendulum", "agent": {"algo": "sac"}, "transfer": {"timesteps": 15_000}}
    dense = load_config({**cfg, "evaluation": {"every": 10, "episodes": 20}})
    assert evaluation_schedule_warning(dense) == (
        "warning: evaluation.every (10 target steps) evaluates each run 1,501 times, 20 episode(s) each, over "
        "transfer.timesteps 15,000: the evaluations may take far longer than the training (every is counted in "
        "target steps, not episodes; a curve needs a few dozen points)"
    )
    assert MAX_EVALUATIONS == 200
    assert evaluation_schedule_warning(load_config({**cfg, "evaluation": {"every": 76}})) == ""  # 0..14,972: 198, +1
    assert "evaluates each run 201 times" in evaluation_schedule_warning(
        load_config({**cfg, "evaluation": {"every": 75}})
    )
    for shipped in sorted(Path(__file__).parents[1].glob("configs/*.yaml")):
        assert evaluation_schedule_warning(load_config(shipped)) == "", shipped.name


def test_a_batch_size_above_a_rollout_is_warned_of(finished, tmp_path, capsys):
    """SB3 warns of it when it builds the model (and takes the whole rollout as one minibatch); a grid's workers
    build theirs out of sight, so the experiment says it before anything runs."""
    from rltransfer.config import load_config
    from rltransfer.hyperparameters import minibatch_warning
    from rltransfer.validation import resolve

    cfg, _ = finished  # n_steps 64, batch_size 64, one env a target run, one env a source task (2 tasks)
    one = {**cfg["transfer"], "strategies": ["scratch"], "seeds": 1}
    big = {**cfg["agent"], "hyperparams": {**cfg["agent"]["hyperparams"], "batch_size": 100}}
    c = {**cfg, "output_dir": str(tmp_path / "runs"), "transfer": one, "agent": big}
    rltransfer.run_experiment(c, progress=False, echo=True)
    err = capsys.readouterr().err
    assert (
        "warning: agent.hyperparams.batch_size 100 is above a target run's PPO rollout (n_steps 64 x transfer.n_envs "
        "1: 64 samples): every minibatch is the whole rollout, so batch_size changes nothing there" in err
    )
    assert "above the pre-training's PPO rollout" not in err  # 64 x 1 env x 2 source tasks: 128
    pretrain = load_config({**c, "pretrain": {**cfg["pretrain"], "hyperparams": {"batch_size": 200}}})
    assert (
        minibatch_warning(pretrain, 2)
        .splitlines()[1]
        .startswith(
            "warning: pretrain.hyperparams.batch_size 200 is above the pre-training's PPO rollout (n_steps 64 x "
            "pretrain.envs_per_task 1 x 2 source tasks: 128 samples)"
        )
    )
    assert minibatch_warning(load_config(cfg), 2) == ""
    assert minibatch_warning(load_config({**c, "agent": {**big, "algo": "dqn", "trunk": {"vf": [64]}}}), 2) == ""
    for shipped in sorted(Path(__file__).parents[1].glob("configs/*.yaml")):
        config = load_config(shipped)
        assert minibatch_warning(config, len(resolve(config).sources)) == "", shipped.name


def test_the_first_update_of_sac_waits_for_learning_starts():
    from rltransfer.config import load_config
    from rltransfer.hyperparameters import untrained_warning

    sac = {"family": "pendulum", "agent": {"algo": "sac"}, "transfer": {"timesteps": 99}}
    assert "below SAC's learning_starts (100 steps)" in untrained_warning(load_config(sac))
    sac["agent"]["hyperparams"] = {"learning_starts": 50}
    assert untrained_warning(load_config(sac)) == ""


def test_a_probe_that_may_leave_a_run_no_update_is_warned_of(tmp_path, capsys):
    """With ``head_init: probe`` a run that takes the heads first runs each source head on its target, charged
    to its budget: the plane's 2 sources x 1 episode x its 30-step time limit take 60 of 100 steps, and the 40
    left are below one rollout (32 x 2 envs)."""
    from plane import plane_family
    from stable_baselines3 import PPO

    plane_family("plane-md")
    cfg = {
        "name": "probe-budget", "family": "plane-md", "output_dir": str(tmp_path / "runs"),
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32}}, "pretrain": {"timesteps": 128},
        "transfer": {"timesteps": 100, "seeds": 1, "n_envs": 2, "strategies": ["scratch", "finetune"],
                     "head_init": "probe"},
        "evaluation": {"every": 50, "episodes": 1}, "runner": {"workers": 1},
    }  # fmt: skip
    run_dir = rltransfer.run_experiment(cfg, progress=False, echo=True).run_dir
    assert (
        "warning: with transfer.head_init: probe, each run of finetune first runs each of the 2 source heads on its "
        "target for 1 episode(s) (transfer.probe_episodes), charged to its budget: up to 60 of its 100 steps on "
        "target 'fast' (time limit 30 steps), which would leave less than one PPO rollout (n_steps 32 x "
        "transfer.n_envs 2: 64 steps), and such a run is never updated" in capsys.readouterr().err
    )
    assert PPO.load(run_dir / "runs/fast/finetune/seed-0/model.zip")._n_updates == 0
    assert PPO.load(run_dir / "runs/fast/scratch/seed-0/model.zip")._n_updates > 0  # no probe: 100 steps


def test_a_probe_warning_needs_a_probe_a_strategy_that_probes_and_a_short_budget():
    from rltransfer.config import load_config
    from rltransfer.hyperparameters import probe_budget_warning

    base = {"family": "cartpole", "agent": {"hyperparams": {"n_steps": 16}},
            "transfer": {"timesteps": 3_000, "head_init": "probe", "probe_episodes": 2,
                         "strategies": ["scratch", "kickstart"], "n_envs": 8}}  # fmt: skip
    # 2 episodes x 3 source heads x 500 steps = 3,000: no step of the budget left for a rollout of 16 x 8 steps
    said = probe_budget_warning(load_config(base), 3, {"very-long-heavy": 500})
    assert "each run of kickstart first runs each of the 3 source heads" in said and "up to 3,000 of its 3,000" in said
    assert probe_budget_warning(load_config(base), 3, {"very-long-heavy": 450}) == ""  # 2,700: 300 steps left
    assert probe_budget_warning(load_config(base), 3, {"very-long-heavy": None}) == ""  # no time limit to judge by
    long = {**base, "agent": {"hyperparams": {"n_steps": 2048}}}  # below one rollout with no probe: said already
    assert probe_budget_warning(load_config(long), 3, {"very-long-heavy": 500}) == ""
    for change in ({"head_init": "nearest"}, {"strategies": ["scratch", "zero_shot"]}):
        cfg = load_config({**base, "transfer": {**base["transfer"], **change}})
        assert probe_budget_warning(cfg, 3, {"very-long-heavy": 500}) == ""  # no probe; no run that probes and trains


def test_two_workers_give_bit_identical_results_to_one(finished, tmp_path):
    cfg, res = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs"), "runner": {"workers": 2}}
    res2 = rltransfer.run_experiment(cfg2, progress=False, echo=False)
    assert results(res2.run_dir) == results(res.run_dir)


def test_ray_backend_gives_bit_identical_results(finished, tmp_path):
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    cfg, res = finished
    cfg3 = {**cfg, "output_dir": str(tmp_path / "runs"), "runner": {"backend": "ray", "workers": 2}}
    res3 = rltransfer.run_experiment(cfg3, progress=False, echo=False)
    assert results(res3.run_dir) == results(res.run_dir)


def test_the_ray_backend_without_ray_is_refused_before_pre_training(tiny_config, tmp_path, monkeypatch, capsys):
    """``runner.backend: ray`` where Ray is not installed: exit 2 before anything trains (the refusal came
    when the grid started, after the pre-training)."""
    from rltransfer.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**tiny_config, "runner": {"backend": "ray"}}))
    assert main(["experiment", str(tmp_path / "exp.yaml"), "--no-progress"]) == 2
    assert "config key 'runner.backend': 'ray' needs Ray: pip install 'rltransfer[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "tiny").exists()


def test_a_ray_address_where_nothing_answers_is_refused_before_pre_training(tiny_config, tmp_path, capsys):
    """``ray.init`` retries an address where nothing listens for many minutes: the experiment says so at
    once, before it pre-trains, for a GCS address and a Ray client address alike."""
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    from rltransfer.cli import main
    from rltransfer.execution.backends import check_backend

    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        cfg = {**tiny_config, "runner": {"backend": "ray", "address": address}}
        (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
        start = time.monotonic()
        assert main(["experiment", str(tmp_path / "exp.yaml"), "--no-progress"]) == 2
        assert time.monotonic() - start < 60
        assert f"config key 'runner.address': nothing answers at '{address}'" in capsys.readouterr().err
        assert not (tmp_path / "runs" / "tiny").exists()
    check_backend("ray", "auto")  # Ray's own lookup: not tried here
    check_backend("local", f"127.0.0.1:{port}")  # the local backend has no use for the address


def test_the_report_covers_the_configured_grid_only(finished, tmp_path):
    from rltransfer.reporting.report import render

    cfg, res = finished
    shutil.copytree(res.run_dir, tmp_path / "tiny")
    text = (tmp_path / "tiny" / "config.yaml").read_text().replace("seeds: 2", "seeds: 1")
    (tmp_path / "tiny" / "config.yaml").write_text(text)
    summary = render(tmp_path / "tiny", tensorboard=False)
    assert [r["seeds"] for r in summary["rows"]] == [1, 1, 1]


def test_a_changed_threshold_rescores_every_finished_run_without_rerunning_it(finished, tmp_path):
    from rltransfer.reporting.report import collect
    from rltransfer.stats import metrics

    cfg, res = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs")}
    shutil.copytree(res.run_dir, tmp_path / "runs" / "tiny")
    run_dir = tmp_path / "runs" / "tiny"
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "runs").glob("*/*/seed-*/result.json")}
    written = {p: json.loads(p.read_text()) for p in before}
    assert {r["threshold"] for r in written.values()} == {475.0}
    out = rltransfer.run_experiment(cfg2, ["evaluation.thresholds={very-long-heavy: 950}"], progress=False, echo=False)
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, f"{p} was re-run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["protocol"]["tasks"]["very-long-heavy"]["threshold"] == 950.0 and manifest["grid_runs"] == 0
    _, rescored = collect(run_dir)
    assert len(rescored) == len(written)
    for r in rescored:
        w = next(w for w in written.values() if (w["strategy"], w["seed"]) == (r.strategy, r.seed))
        assert r.threshold == 950.0 and r.curve.returns == w["curve"]["return"]
        expect = [(x - w["random_return"]) / (950.0 - w["random_return"]) for x in w["curve"]["return"]]
        assert r.curve.score == pytest.approx(expect, rel=1e-12)
        assert r.metrics.p0 == pytest.approx(expect[0], rel=1e-12)
        assert r.metrics.auc == pytest.approx(metrics.auc(w["curve"]["step"], expect, w["budget"]), rel=1e-12)
        assert not r.metrics.reached  # CartPole's returns stop at 500
    assert all(row["reached"] == 0 for row in out.summary["rows"])
    # Back to the family's threshold: the report scores exactly as the runs were written.
    rltransfer.run_experiment(cfg2, progress=False, echo=False)
    _, back = collect(run_dir)
    assert sorted(json.dumps(r.to_json(), sort_keys=True) for r in back) == sorted(
        json.dumps(w, sort_keys=True) for w in written.values()
    )


def test_a_strategy_parameter_reruns_that_strategy_only(finished, tmp_path):
    from rltransfer.reporting.report import render

    cfg, res = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs")}
    shutil.copytree(res.run_dir, tmp_path / "runs" / "tiny")
    run_dir = tmp_path / "runs" / "tiny"
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "runs").glob("*/*/seed-*/result.json")}
    grid = "transfer.strategies=[scratch,zero_shot,finetune,lr_scaled]"
    rltransfer.run_experiment(cfg2, [grid], progress=False, echo=False)
    assert json.loads((run_dir / "manifest.json").read_text())["grid_runs"] == 2  # lr_scaled's two seeds
    default = {p: p.stat().st_mtime_ns for p in (run_dir / "runs").glob("*/lr_scaled/seed-*/result.json")}

    out = rltransfer.run_experiment(
        cfg2, [grid, "transfer.strategy_params={lr_scaled: {lr_scale: 0.5}}"], progress=False, echo=False
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["grid_runs"] == 2  # lr_scaled again, nothing else
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, f"{p} was re-run"
    for p, t in default.items():
        assert p.stat().st_mtime_ns != t, f"{p} was not re-run"
        run_hash = json.loads(p.read_text())["run_hash"]
        assert run_hash.startswith(manifest["config_hash"] + "-") and len(run_hash) == 16 + 1 + 8
    assert [r["seeds"] for r in out.summary["rows"]] == [2, 2, 2, 2]
    assert out.summary["protocol"]["transfer"]["strategy_params"] == {"lr_scaled": {"lr_scale": 0.5}}
    md = (run_dir / "report" / "report.md").read_text()
    assert "transfer.head_init: nearest): the head of the source task nearest by context" in md
    assert "strategy parameters: lr_scaled lr_scale=0.5" in md

    # The report counts only runs made with the config's parameters (here: changed after the runs).
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["transfer"]["strategy_params"] = {"lr_scaled": {"lr_scale": 0.25}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    summary = render(run_dir, tensorboard=False)
    assert [r["strategy"] for r in summary["rows"]] == ["scratch", "zero_shot", "finetune"]


def test_a_pretraining_that_left_a_source_unlearnt_is_named_with_its_score():
    from rltransfer.source_gate import unlearnt_warning

    assert unlearnt_warning(0, {"short": 1.06, "long": 1.0}) is None
    text = unlearnt_warning(2, {"short": 1.06, "long": 0.9981, "heavy": -0.02})
    assert "seed 2 left 2 source task(s) below the threshold" in text and "heavy -0.020, long 0.998" in text


def test_the_source_gate_replaces_a_failed_pretraining_and_reruns_only_its_runs(finished, tmp_path):
    from rltransfer.baselines import random_return, threshold
    from rltransfer.validation import resolve

    cfg, _ = finished
    cfg2 = {
        **cfg, "output_dir": str(tmp_path / "runs"), "pretrain": {**cfg["pretrain"], "seeds": 2},
        "transfer": {**cfg["transfer"], "seeds": 2, "strategies": ["scratch", "zero_shot"]},
    }  # fmt: skip
    res = rltransfer.run_experiment(cfg2, progress=False, echo=False)
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    pre = manifest["pretrainings"]
    assert [(p["seed"], p["slot"], p["kept"]) for p in pre] == [(0, 0, True), (1, 1, True)]  # no gate: both
    setup = resolve(rltransfer.load_config(cfg2))
    for p in pre:  # the score, by hand, from the bundle's final evaluation
        bundle = res.run_dir / "pretrain" / ("seed-1" if p["seed"] else "") / "bundle" / "bundle.json"
        evaluation = json.loads(bundle.read_text())["evaluation"]
        for task in setup.sources:
            tau, rand = threshold(setup.family, task, {}), random_return(setup.family, task)
            assert p["scores"][task.name] == pytest.approx((evaluation[task.name]["mean_return"] - rand) / (tau - rand))
    md = (res.run_dir / "report" / "report.md").read_text()
    assert "no gate (`pretrain.min_source_score`)" in md
    assert "| seed | short | long | transferred from |" in md  # the config's order, not the JSON's sorted one

    # A gate between the two: the weaker one's place goes to the next seed that passes.
    weakest = [min(p["scores"].values()) for p in pre]
    assert weakest[0] != weakest[1]
    gate, worse = max(weakest), weakest.index(min(weakest))
    run = lambda s, strategy: res.run_dir / f"runs/very-long-heavy/{strategy}/seed-{s}/result.json"  # noqa: E731
    before = {(s, st): run(s, st).stat().st_mtime_ns for s in (0, 1) for st in ("scratch", "zero_shot")}
    gated = [f"pretrain.min_source_score={gate!r}", "pretrain.max_seeds=8"]
    out = rltransfer.run_experiment(cfg2, gated, progress=False, echo=False)
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    pre = manifest["pretrainings"]
    assert [p["seed"] for p in pre] == list(range(len(pre))) and len(pre) > 2
    assert [p["kept"] for p in pre] == [min(p["scores"].values()) >= gate for p in pre]
    assert pre[worse]["slot"] is None and pre[1 - worse]["slot"] == 1 - worse
    replacement = pre[-1]  # the first seed after 0 and 1 to pass takes the rejected one's place
    assert replacement["slot"] == worse and not any(p["kept"] for p in pre[2:-1])
    assert manifest["protocol"]["pretrain_kept"][worse] == replacement["seed"]
    after = {k: run(*k).stat().st_mtime_ns for k in before}
    assert [k for k in before if after[k] != before[k]] == [(worse, "zero_shot")]  # scratch loads no bundle
    assert json.loads(run(worse, "zero_shot").read_text())["pretrain_seed"] == replacement["seed"]
    assert out.summary["pretrain_steps"] == round(sum(p["timesteps"] for p in pre) / 2)
    md = (res.run_dir / "report" / "report.md").read_text()
    assert f"Rejected: {', '.join(str(p['seed']) for p in pre if not p['kept'])}; N_pre counts their steps" in md
    assert f"| {pre[worse]['seed']} |" in md and "no (rejected)" in md


def test_a_gate_no_pretraining_passes_stops_with_every_bundle_kept(finished, tmp_path):
    from rltransfer.errors import GateError

    cfg, _ = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs"), "transfer": {**cfg["transfer"], "strategies": ["scratch"]}}
    with pytest.raises(
        GateError, match=r"0 of the 1 pre-training\(s\) wanted passed in the 2 seed\(s\) pretrain.max_seeds allows"
    ) as err:
        rltransfer.run_experiment(cfg2, ["pretrain.min_source_score=100"], progress=False, echo=False)
    assert "seed 1: " in str(err.value) and "raise pretrain.max_seeds" in str(err.value)
    run_dir = tmp_path / "runs" / "tiny"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (
        manifest["status"] == "pre-trainings rejected" and [p["kept"] for p in manifest["pretrainings"]] == [False] * 2
    )
    assert (run_dir / "pretrain" / "seed-1" / "bundle" / "bundle.json").is_file()
    assert not (run_dir / "runs").exists()


def test_another_target_reuses_every_bundle_and_run_also_in_a_directory_an_earlier_version_wrote(
    finished, tmp_path, capsys
):
    from rltransfer.bundle import manifest_checksum
    from rltransfer.cli import main
    from rltransfer.reporting.report import render
    from rltransfer.store.keys import comparable_config, digest, experiment_hash

    cfg, res = finished
    cfg2 = {**cfg, "output_dir": str(tmp_path / "runs")}
    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(res.run_dir, run_dir)
    # As versions before 2026-11-28 wrote it: the targets in the experiment hash, every file carrying it,
    # the bundle without its pre-training hash.
    chash = experiment_hash(rltransfer.load_config(cfg2))
    old = digest(comparable_config(rltransfer.load_config(cfg2)), 16)
    assert old != chash
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "config_hash": old, "layout_version": 2}))
    for path in (run_dir / "runs").glob("*/*/seed-*/result.json"):
        r = json.loads(path.read_text())
        h = r.pop("run_hash")  # layout 4 named it so
        path.write_text(json.dumps({**r, "config_hash": h.replace(chash, old)}))
    bundle_file = run_dir / "pretrain" / "bundle" / "bundle.json"
    b = {**json.loads(bundle_file.read_text()), "experiment_hash": old}
    del b["pretrain_hash"]
    bundle_file.write_text(json.dumps({**b, "manifest_sha256": manifest_checksum(b)}))
    with pytest.raises(UserInputError, match=f"layout version 2 .*rltransfer migrate {run_dir}"):
        render(run_dir, tensorboard=False)
    with pytest.raises(UserInputError, match=f"layout version 2 .*rltransfer migrate {run_dir}"):
        rltransfer.run_experiment(cfg2, progress=False, echo=False)

    assert main(["migrate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 result(s): the current run hash" in out and "pretrain/bundle: the current experiment" in out
    b = json.loads(bundle_file.read_text())
    assert b["experiment_hash"] == chash and b["pretrain_hash"] and b["manifest_sha256"] == manifest_checksum(b)
    files = [bundle_file, *(run_dir / "runs").glob("*/*/seed-*/result.json")]
    before = {p: p.stat().st_mtime_ns for p in files}
    assert [r["seeds"] for r in render(run_dir, tensorboard=False)["rows"]] == [2, 2, 2]  # its report, as it was

    out = rltransfer.run_experiment(cfg2, progress=False, echo=False)  # the same config: nothing re-runs
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["grid_runs"] == 0 and manifest["config_hash"] == chash and "previous_hashes" not in manifest
    assert [r["seeds"] for r in out.summary["rows"]] == [2, 2, 2]

    # One more target: the bundle and every finished run are re-used, only the new target's runs run.
    out = rltransfer.run_experiment(cfg2, ["target_tasks=[very-long-heavy, weak-push]"], progress=False, echo=False)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["grid_runs"] == 6 and {p: p.stat().st_mtime_ns for p in files} == before
    assert [(r["target"], r["seeds"]) for r in out.summary["rows"]] == [("very-long-heavy", 2)] * 3 + [
        ("weak-push", 2)
    ] * 3
    new = json.loads((run_dir / "runs/weak-push/finetune/seed-0/result.json").read_text())
    assert new["run_hash"].split("-")[0] == chash  # the experiment's hash (then the engine's mark)

    # A target left out is left out of the report, its runs kept on disk.
    out = rltransfer.run_experiment(cfg2, ["target_tasks=[weak-push]"], progress=False, echo=False)
    assert json.loads((run_dir / "manifest.json").read_text())["grid_runs"] == 0
    assert out.summary["targets"] == ["weak-push"] and (run_dir / "runs/very-long-heavy").is_dir()

    # Another config altogether is still refused.
    with pytest.raises(UserInputError, match="holds results of a different config"):
        rltransfer.run_experiment(cfg2, ["transfer.timesteps=512"], progress=False, echo=False)


def test_a_rerun_says_that_it_reuses_every_run(finished, tmp_path, capsys):
    cfg, res = finished
    shutil.copytree(res.run_dir, tmp_path / "runs" / res.run_dir.name)  # the shared fixture stays as it is
    rltransfer.run_experiment({**cfg, "output_dir": str(tmp_path / "runs")}, progress=False, echo=True)
    out = capsys.readouterr().out
    assert "6 of 6 runs re-used, 0 to run" in out
    assert out.index("6 of 6 runs re-used") < out.index("very-long-heavy: ")  # before the table


def test_a_rerun_with_another_engine_says_which_finished_runs_it_replaces(finished, tmp_path, capsys):
    cfg, res = finished
    run_dir = tmp_path / "runs" / res.run_dir.name
    shutil.copytree(res.run_dir, run_dir)  # the shared fixture stays as it is
    path = run_dir / "runs" / "very-long-heavy" / "scratch" / "seed-0" / "result.json"
    assert json.loads(path.read_text())["engine"] == "batched"
    rltransfer.run_experiment(
        {**cfg, "output_dir": str(tmp_path / "runs")}, ["runner.batch_seeds=false"], progress=False, echo=True
    )
    captured = capsys.readouterr()
    # scratch's and finetune's seeds trained batched; zero_shot trains nothing and ran with SB3's engine
    assert "2 of 6 runs re-used, 4 to run" in captured.out
    assert (
        "4 finished run(s) were made with other settings than this config gives them (2 of very-long-heavy/finetune "
        "(engine batched, now sb3), 2 of very-long-heavy/scratch (engine batched, now sb3)): their results are "
        "replaced" in captured.err
    )
    assert "engine" not in json.loads(path.read_text())  # replaced by SB3's own run


def test_progress_without_a_terminal_is_plain_periodic_lines(capsys):
    from rltransfer.execution.grid import ProgressLines

    now = [0.0]
    lines = ProgressLines(total=5, done=1, clock=lambda: now[0])
    for t in (10.0, 31.0, 40.0, 45.0):  # a line at 31 s (30 s since the start), and at the last run
        now[0] = t
        lines.update(in_flight=1, failed=0)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "runs: 3/5 done, 1 in flight, 0 failed (31 s)",
        "runs: 5/5 done, 1 in flight, 0 failed (45 s)",
    ]
    assert "\r" not in err


def test_a_damaged_bundle_is_said_and_runs_of_another_bundle_are_not_kept(finished, tmp_path, capsys):
    cfg, res = finished
    run_dir = tmp_path / "runs" / res.run_dir.name
    shutil.copytree(res.run_dir, run_dir)  # the shared fixture stays as it is
    cfg = {**cfg, "output_dir": str(tmp_path / "runs")}
    (run_dir / "pretrain" / "bundle" / "bundle.json").write_text("{not json")
    # One finished run says it loaded other weights than the bundle's (as if an earlier bundle's run).
    path = run_dir / "runs" / "very-long-heavy" / "finetune" / "seed-0" / "result.json"
    result = json.loads(path.read_text())
    path.write_text(json.dumps({**result, "bundle_sha256": "0" * 64}))
    rltransfer.run_experiment(cfg, progress=False, echo=True)
    captured = capsys.readouterr()
    assert "pre-training seed 0: its bundle is damaged" in captured.err and "trained again" in captured.err
    assert "1 finished run(s) loaded a bundle that was since trained again" in captured.err
    assert "5 of 6 runs re-used, 1 to run" in captured.out
    # Pre-training is deterministic: the bundle trained again is the one the other runs loaded.
    rerun = json.loads(path.read_text())
    assert rerun["bundle_sha256"] == result["bundle_sha256"] and rerun["curve"] == result["curve"]


@pytest.fixture
def ray_cluster(tmp_path_factory, monkeypatch):
    """A real two-node Ray cluster on this machine (a head and a second node, one CPU each, each in its
    own temporary directory), started and stopped here; yields its address. Each ``ray start`` runs in a
    session of its own, so the node's processes are that command's process group, and stopping kills those
    groups alone: ``ray stop`` kills every Ray process on the machine, so a Ray test running on another
    xdist worker would lose its raylet."""
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    ray_bin = Path(sys.executable).parent / "ray"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a test cluster on one machine, nothing to authenticate
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    common = ["--num-cpus=1", "--disable-usage-stats"]
    head = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # Ray's socket paths must stay short
    node = tempfile.mkdtemp(prefix="rn", dir="/tmp")
    start = [
        [str(ray_bin), "start", "--head", f"--port={port}", f"--temp-dir={head}", "--include-dashboard=false", *common],
        [str(ray_bin), "start", f"--address={address}", f"--temp-dir={node}", *common],
    ]
    groups = []  # each node's process group: its `ray start`'s pid
    try:
        for cmd in start:
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
            groups.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out
        yield address
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(head, ignore_errors=True)
        shutil.rmtree(node, ignore_errors=True)


def test_a_ray_cluster_without_a_shared_filesystem_gives_the_local_results(finished, tmp_path, ray_cluster):
    """The driver in a process of its own (as a user's: one Ray session), recording every job it sends."""
    cfg, res = finished
    out = tmp_path / "driver-only"  # the workers are given no path of the driver's
    cfg3 = {**cfg, "output_dir": str(out), "runner": {"backend": "ray", "address": ray_cluster, "workers": 2}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg3))
    driver = (
        "import json, sys\n"
        "from dataclasses import asdict\n"
        "import rltransfer\n"
        "from rltransfer.execution import backends as runner\n"
        "from rltransfer.execution.job import detached\n"
        "sent = []\n"
        "runner.detached = lambda job: sent.append(detached(job)) or sent[-1]\n"
        "res = rltransfer.run_experiment(json.load(open(sys.argv[1])), progress=False, echo=False)\n"
        "json.dump([asdict(j) for j in sent], open(sys.argv[2], 'w'))\n"
        "sys.exit(1 if res.failed else 0)\n"
    )
    env = {**os.environ, "RLTRANSFER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", driver, str(tmp_path / "cfg.json"), str(tmp_path / "sent.json")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = out / res.run_dir.name
    assert results(run_dir) == results(res.run_dir)  # bit for bit, curves included
    run = run_dir / "runs" / "very-long-heavy" / "finetune" / "seed-0"
    tb = run_dir / "tb" / "very-long-heavy" / "finetune" / "seed-0"
    assert (run / "model.zip").is_file() and list(tb.glob("events.out.tfevents.*"))  # the driver wrote them
    # What the workers received: no path of the driver's; the bundle went as bytes through the object store.
    from rltransfer.execution.job import SHIPPED

    sent = json.loads((tmp_path / "sent.json").read_text())
    assert len(sent) == 6
    for job in sent:
        assert str(tmp_path) not in json.dumps(job) and job["bundle"] == job["out_dir"] == SHIPPED


def test_a_directory_of_the_earlier_layout_is_refused_until_migrated(finished, tmp_path, capsys):
    from rltransfer.cli import main

    cfg, res = finished
    run_dir = tmp_path / "runs" / res.run_dir.name
    shutil.copytree(res.run_dir, run_dir)
    # The layout before layout_version: TensorBoard logs beside each run and pre-training, aggregates apart.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest.pop("layout_version") == 4
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    for tb in sorted((run_dir / "tb").glob("*/*/seed-*")):
        if tb.parent.parent.name != "pretrain":
            shutil.move(tb, run_dir / "runs" / tb.parent.parent.name / tb.parent.name / tb.name / "tb")
    shutil.move(run_dir / "tb" / "pretrain" / "seed-0", run_dir / "pretrain" / "tb")
    shutil.rmtree(run_dir / "tb")
    (run_dir / "aggregate").mkdir()
    written = results(run_dir)
    for path in (run_dir / "runs").glob("*/*/seed-*/result.json"):  # a run's hash named config_hash
        r = json.loads(path.read_text())
        path.write_text(json.dumps({("config_hash" if k == "run_hash" else k): v for k, v in r.items()}))
    broken = run_dir / "runs" / "very-long-heavy" / "broken" / "seed-0" / "result.json"  # a torn write
    broken.parent.mkdir(parents=True)
    broken.write_text('{"status": "o')
    cfg = {**cfg, "output_dir": str(tmp_path / "runs")}
    with pytest.raises(UserInputError, match=f"layout version 1 .*rltransfer migrate {run_dir}"):
        rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert main(["migrate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "runs/very-long-heavy/finetune/seed-0/tb -> tb/very-long-heavy/finetune/seed-0" in out
    assert "pretrain/tb -> tb/pretrain/seed-0" in out and "layout_version 2" in out and "layout_version 3" in out
    assert "the current run hash" not in out  # its hashes were the current ones already
    assert "6 result(s): config_hash -> run_hash" in out and "layout_version 4" in out
    assert "runs/very-long-heavy/broken/seed-0/result.json: unreadable, left as it is" in out
    shutil.rmtree(broken.parent.parent)
    assert not (run_dir / "aggregate").exists() and not (run_dir / "pretrain" / "tb").exists()
    assert main(["migrate", str(run_dir)]) == 0 and "nothing to do" in capsys.readouterr().out
    before = results(run_dir)
    assert before == written  # byte for byte the results this version writes
    rltransfer.run_experiment(cfg, progress=False, echo=True)  # resumes: every run re-used
    assert "6 of 6 runs re-used, 0 to run" in capsys.readouterr().out and results(run_dir) == before
    assert main(["migrate", str(tmp_path)]) == 2 and "not an experiment directory" in capsys.readouterr().err
