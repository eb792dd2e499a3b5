"""Scratch runs are shared across experiments under one output_dir (rltransfer.store.reuse)."""

import json
import shutil

import pytest

import rltransfer
from rltransfer.config import load_config
from rltransfer.store.keys import reuse_key

TARGET = {"name": "very-long-heavy", "params": {}}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))


def config(root, name="a", **changes):
    cfg = {
        "name": name, "output_dir": str(root), "family": "cartpole", "source_tasks": ["short", "long"],
        "target_tasks": ["very-long-heavy"], "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
        "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "finetune"]},
        "evaluation": {"every": 128, "episodes": 3}, "runner": {"workers": 1},
    }  # fmt: skip
    for key, value in changes.items():
        section, field = key.split("__")
        cfg[section] = {**cfg[section], field: value}
    return cfg


def result(run_dir, strategy, seed):
    return json.loads((run_dir / "runs" / "very-long-heavy" / strategy / f"seed-{seed}" / "result.json").read_text())


def keyed(cfg, strategy="scratch", seed=0):
    return reuse_key(load_config(cfg).to_dict(), strategy, seed, TARGET)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse") / "runs"
    cfg = config(root)
    return cfg, rltransfer.run_experiment(cfg, progress=False, echo=False)


def test_only_runs_loading_nothing_have_a_key_and_it_names_what_a_scratch_run_depends_on(tmp_path):
    cfg = config(tmp_path)
    base = keyed(cfg)
    assert base is not None
    assert keyed(cfg, "finetune") is None and keyed(cfg, "zero_shot") is None and keyed(cfg, "kickstart") is None
    # Not the pre-training, the name, the runner, the grid's size or the heads' initialisation ...
    same = [
        config(tmp_path, name="b", pretrain__timesteps=1024, pretrain__hyperparams={"ent_coef": 0.01}),
        config(tmp_path, runner__workers=2, transfer__seeds=5, transfer__strategies=["scratch"]),
        config(tmp_path, transfer__head_init="mean", evaluation__thresholds={"very-long-heavy": 100.0}),
    ]
    assert all(keyed(c) == base for c in same)
    # ... but the seed, the target, the budget, the agent, the evaluation and the sources' conditioning.
    assert keyed(cfg, seed=1) != base
    assert reuse_key(load_config(cfg).to_dict(), "scratch", 0, {"name": "very-long-heavy", "params": {"x": 1}}) != base
    other = [
        config(tmp_path, transfer__timesteps=512),
        config(tmp_path, agent__hyperparams={"n_steps": 64, "batch_size": 32, "n_epochs": 2}),
        config(tmp_path, evaluation__episodes=4),
        {**cfg, "source_tasks": ["short", "heavy-gravity"]},
        {**cfg, "conditioning": "onehot"},
    ]
    assert len({keyed(c) for c in other} | {base}) == len(other) + 1


def test_a_scratch_run_does_not_depend_on_the_pretraining(first, tmp_path):
    """What sharing rests on: with another pre-training (and reuse off) scratch is bit-identical."""
    cfg, res = first
    other = config(
        tmp_path / "runs", pretrain__timesteps=1024, transfer__head_init="mean", runner__reuse_other_experiments=False
    )
    res2 = rltransfer.run_experiment(other, progress=False, echo=False)
    for seed in (0, 1):
        a, b = result(res.run_dir, "scratch", seed), result(res2.run_dir, "scratch", seed)
        assert a["reuse_key"] == b["reuse_key"] and "copied_from" not in b
        assert a["curve"] == b["curve"] and a["metrics"] == b["metrics"]
        assert a["bundle_sha256"] != b["bundle_sha256"]  # another pre-training indeed
        assert result(res.run_dir, "finetune", seed)["curve"] != result(res2.run_dir, "finetune", seed)["curve"]


def test_another_experiment_under_the_same_output_dir_copies_scratch_and_runs_the_rest(first, capsys):
    cfg, res = first
    before = {p: p.stat().st_mtime_ns for p in res.run_dir.rglob("result.json")}
    cfg2 = config(cfg["output_dir"], name="longer", pretrain__timesteps=1024)
    out = rltransfer.run_experiment(cfg2, progress=False, echo=True)
    assert "re-used 2 finished run(s) that load nothing from a bundle: 2 from 'a'" in capsys.readouterr().out
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    for seed in (0, 1):
        copied, original = result(out.run_dir, "scratch", seed), result(res.run_dir, "scratch", seed)
        assert copied["copied_from"] == {
            "run_dir": str(res.run_dir / "runs" / "very-long-heavy" / "scratch" / f"seed-{seed}"),
            "run_hash": original["run_hash"],
        }
        assert copied["curve"] == original["curve"] and copied["metrics"] == original["metrics"]
        # this experiment's run key (its hash, then what names the engine), not the source's
        assert copied["run_hash"].split("-")[0] == manifest["config_hash"] != original["run_hash"].split("-")[0]
        assert "bundle_sha256" not in copied
        assert manifest["runs"][f"very-long-heavy/scratch/seed-{seed}"]["copied_from"].endswith(f"seed-{seed}")
        assert "copied_from" not in manifest["runs"][f"very-long-heavy/finetune/seed-{seed}"]
        run = out.run_dir / "runs" / "very-long-heavy" / "scratch" / f"seed-{seed}"
        tb = out.run_dir / "tb" / "very-long-heavy" / "scratch" / f"seed-{seed}"  # its log, in this experiment's tree
        assert (run / "model.zip").is_file() and list(tb.glob("events.out.tfevents.*"))
    assert {p: p.stat().st_mtime_ns for p in res.run_dir.rglob("result.json")} == before  # the source untouched
    scratch = next(r for r in out.summary["rows"] if r["strategy"] == "scratch")
    assert scratch["seeds"] == 2 and scratch["failed_runs"] == 0
    assert out.summary["copied_runs"] == {str(res.run_dir): 2}
    assert f"2 run(s) from `{res.run_dir}`" in (out.run_dir / "report" / "report.md").read_text()
    # Resuming the copy re-runs nothing, a copy of a copy names the first run.
    mtimes = {p: p.stat().st_mtime_ns for p in out.run_dir.rglob("result.json")}
    rltransfer.run_experiment(cfg2, progress=False, echo=False)
    assert {p: p.stat().st_mtime_ns for p in out.run_dir.rglob("result.json")} == mtimes
    own = res.run_dir / "runs" / "very-long-heavy" / "scratch"
    shutil.move(own, res.run_dir.parent.parent / "aside")  # only the copy is left to copy from
    try:
        cfg3 = config(cfg["output_dir"], name="third", pretrain__timesteps=768)
        third = rltransfer.run_experiment(cfg3, progress=False, echo=False)
    finally:
        shutil.move(res.run_dir.parent.parent / "aside", own)
    assert result(third.run_dir, "scratch", 0)["copied_from"] == result(out.run_dir, "scratch", 0)["copied_from"]


def test_another_threshold_rescores_the_copy(first):
    cfg, res = first
    cfg2 = config(cfg["output_dir"], name="strict", evaluation__thresholds={"very-long-heavy": 60.0})
    out = rltransfer.run_experiment(cfg2, ["transfer.strategies=[scratch]"], progress=False, echo=False)
    copied, original = result(out.run_dir, "scratch", 0), result(res.run_dir, "scratch", 0)
    assert copied["threshold"] == 60.0 != original["threshold"]
    assert copied["curve"]["return"] == original["curve"]["return"]
    assert copied["curve"]["score"] != original["curve"]["score"]


def test_a_changed_budget_or_reuse_off_runs_scratch_itself(first):
    cfg, res = first
    for name, changes in (
        ("budget", {"transfer__timesteps": 384}),
        ("off", {"runner__reuse_other_experiments": False}),
    ):
        out = rltransfer.run_experiment(
            config(cfg["output_dir"], name=name, **changes),
            ["transfer.strategies=[scratch]"],
            progress=False,
            echo=False,
        )
        assert "copied_from" not in result(out.run_dir, "scratch", 0), name


def test_another_experiment_of_the_same_hash_copies_the_pretraining(first, capsys):
    """A renamed experiment, or a strategy sweep's next value: the same experiment hash, no pre-training."""
    cfg, res = first
    cfg2 = config(cfg["output_dir"], name="renamed", transfer__strategies=["scratch", "zero_shot"])
    out = rltransfer.run_experiment(cfg2, progress=False, echo=True)
    printed = capsys.readouterr().out
    assert f"pre-training seed 0: copied from '{res.run_dir / 'pretrain'}'" in printed
    assert "pre-training seed 0 on" not in printed
    for part in ("bundle/components.safetensors", "bundle/bundle.json", "bundle/model.zip"):
        assert (out.run_dir / "pretrain" / part).read_bytes() == (res.run_dir / "pretrain" / part).read_bytes()
    assert list((out.run_dir / "tb" / "pretrain" / "seed-0").glob("events.out.tfevents.*"))
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert manifest["pretrainings"][0]["copied_from"] == str(res.run_dir / "pretrain")
    assert f"pre-training seed 0 from `{res.run_dir / 'pretrain'}`" in (out.run_dir / "report/report.md").read_text()
    shot = result(out.run_dir, "zero_shot", 0)
    assert shot["bundle_sha256"] == result(res.run_dir, "finetune", 0)["bundle_sha256"]
    # With two pre-training seeds (another experiment hash: pretrain.seeds is in it) seed 0 is the first
    # experiment's and seed 1 trains; a renamed copy of that experiment copies each, and its runs are the
    # same to the last digit.
    two = config(cfg["output_dir"], name="two", pretrain__seeds=2, transfer__strategies=["zero_shot"])
    out2 = rltransfer.run_experiment(two, progress=False, echo=False)
    assert [p["copied_from"] for p in json.loads((out2.run_dir / "manifest.json").read_text())["pretrainings"]] == [
        str(res.run_dir / "pretrain"), None
    ]  # fmt: skip
    out3 = rltransfer.run_experiment({**two, "name": "two-again"}, progress=False, echo=False)
    assert [p["copied_from"] for p in json.loads((out3.run_dir / "manifest.json").read_text())["pretrainings"]] == [
        str(res.run_dir / "pretrain"), str(out2.run_dir / "pretrain" / "seed-1")
    ]  # fmt: skip
    assert results_of(out3.run_dir) == results_of(out2.run_dir)


def test_the_pretraining_hash_names_what_a_pretraining_depends_on(tmp_path):
    """The transfer side, the grid, the transfer evaluation's schedule and a hyperparameter pre-training
    overrides do not change a pre-training; the sources, its budget, the hyperparameters it trains with
    and how the sources are evaluated do."""
    from rltransfer.store.keys import experiment_hash, pretraining_hash

    base = config(tmp_path, pretrain__hyperparams={"ent_coef": 0.01})
    same = {
        "transfer": config(tmp_path, transfer__timesteps=999, transfer__head_init="mean", transfer__n_envs=4),
        "evaluation": config(tmp_path, evaluation__every=99, evaluation__episodes=7),
        "seeds": config(tmp_path, pretrain__seeds=3),
        "overridden": config(tmp_path, agent__hyperparams={**base["agent"]["hyperparams"], "ent_coef": 0.5}),
    }
    other = {
        "sources": {**config(tmp_path), "source_tasks": ["short"]},
        "budget": config(tmp_path, pretrain__timesteps=1024),
        "trained with": config(tmp_path, pretrain__hyperparams={"ent_coef": 0.02}),
        "agent": config(tmp_path, agent__hyperparams={**base["agent"]["hyperparams"], "n_epochs": 3}),
        "source evaluation": config(tmp_path, pretrain__eval_episodes=5),
        "evaluated by sampling": config(tmp_path, evaluation__deterministic=False),
    }
    for cfg in (base, *same.values(), *other.values()):
        cfg["pretrain"] = {"hyperparams": {"ent_coef": 0.01}, **cfg["pretrain"]}
    h = pretraining_hash(load_config(base))
    for name, cfg in same.items():
        assert pretraining_hash(load_config(cfg)) == h, name
        assert experiment_hash(load_config(cfg)) != experiment_hash(load_config(base)), name
    for name, cfg in other.items():
        assert pretraining_hash(load_config(cfg)) != h, name


def test_a_transfer_side_sweep_copies_the_pretraining(first, capsys):
    """Another transfer budget and head initialisation: another experiment hash, the same pre-training."""
    cfg, res = first
    cfg2 = config(
        cfg["output_dir"], name="transfer-side", transfer__timesteps=384, transfer__head_init="mean",
        transfer__strategies=["zero_shot"],
    )  # fmt: skip
    out = rltransfer.run_experiment(cfg2, progress=False, echo=True)
    printed = capsys.readouterr().out
    assert f"pre-training seed 0: copied from '{res.run_dir / 'pretrain'}' (the same pre-training" in printed
    assert "pre-training seed 0 on" not in printed
    bundle = json.loads((out.run_dir / "pretrain" / "bundle" / "bundle.json").read_text())
    assert bundle["experiment_hash"] != json.loads((out.run_dir / "manifest.json").read_text())["config_hash"]
    # Resumed, the copy is this experiment's: nothing is copied or trained again.
    rltransfer.run_experiment(cfg2, progress=False, echo=True)
    printed = capsys.readouterr().out
    assert "pre-training seed 0" not in printed, printed


def test_a_bundle_written_before_the_pretraining_hash_is_copied_once_its_directory_is_migrated(first, tmp_path):
    """A bundle whose manifest has no pre-training hash (written before it was recorded, layout 2) is not
    matched; ``rltransfer migrate`` gives it the hash of its directory's config, and then it is copied. One
    in a directory whose config is another's never is."""
    from rltransfer.bundle import manifest_checksum
    from rltransfer.store.migration import migrate

    cfg, res = first
    root = tmp_path / "runs"
    old = root / "old"
    shutil.copytree(res.run_dir, old)
    path = old / "pretrain" / "bundle" / "bundle.json"
    manifest = json.loads(path.read_text())
    del manifest["pretrain_hash"]
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))
    exp = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**exp, "layout_version": 2}))
    (root / "other").mkdir()
    shutil.copytree(old / "pretrain", root / "other" / "pretrain")
    (root / "other" / "config.yaml").write_text(
        (old / "config.yaml").read_text().replace("timesteps: 512", "timesteps: 640")
    )
    (root / "other" / "manifest.json").write_text(json.dumps({"layout_version": 2}))
    sweep = dict(transfer__timesteps=384, transfer__strategies=["zero_shot"])
    out = rltransfer.run_experiment(config(root, name="sweep", **sweep), progress=False, echo=False)
    assert json.loads((out.run_dir / "manifest.json").read_text())["pretrainings"][0]["copied_from"] is None
    assert "pretrain/bundle: the current experiment and pre-training hashes" in migrate(old)
    assert not any("pretrain/bundle" in line for line in migrate(root / "other"))  # trained for another config
    out = rltransfer.run_experiment(config(root, name="sweep2", **sweep), progress=False, echo=False)
    assert json.loads((out.run_dir / "manifest.json").read_text())["pretrainings"][0]["copied_from"] == str(
        old / "pretrain"
    )


def test_a_copied_pretraining_takes_its_bundle_and_log_only(tmp_path):
    from rltransfer.store.reuse import copied_from, copy_pretraining

    src = tmp_path / "a" / "pretrain"
    for part in ("bundle/bundle.json", "tb/events", "seed-1/bundle/bundle.json"):
        (src / part).parent.mkdir(parents=True, exist_ok=True)
        (src / part).write_text(part)
    dest = tmp_path / "b" / "pretrain"
    (dest / "bundle").mkdir(parents=True)
    (dest / "bundle" / "stale").write_text("x")
    copy_pretraining(src, dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "bundle/bundle.json", "copied_from.json", "tb/events"
    ]  # fmt: skip
    assert copied_from(dest) == str(src)
    again = tmp_path / "c" / "pretrain"
    copy_pretraining(dest, again)
    assert copied_from(again) == str(src)  # a copy of a copy names where it was trained


def results_of(run_dir):
    return {
        str(p.relative_to(run_dir)): {k: v for k, v in json.loads(p.read_text()).items() if k != "run_hash"}
        for p in sorted((run_dir / "runs").glob("*/*/seed-*/result.json"))
    }


def test_another_pretraining_trains_its_own(first):
    cfg, res = first
    out = rltransfer.run_experiment(
        config(cfg["output_dir"], name="own", pretrain__timesteps=640), ["transfer.strategies=[scratch]"],
        progress=False, echo=False,
    )  # fmt: skip
    assert json.loads((out.run_dir / "manifest.json").read_text())["pretrainings"][0]["copied_from"] is None
    off = config(cfg["output_dir"], name="off-pre", runner__reuse_other_experiments=False)
    out = rltransfer.run_experiment(off, ["transfer.strategies=[scratch]"], progress=False, echo=False)
    assert json.loads((out.run_dir / "manifest.json").read_text())["pretrainings"][0]["copied_from"] is None
