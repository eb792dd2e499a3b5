"""A grid with ``runner.batch_seeds``: the seeds of a cell train as one batch, each run is the one it would be
alone (a batch of one: what ``rltransfer verify`` re-runs), its key says which engine trained it, and what the
engine cannot train runs as before."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import rltransfer
from rltransfer.config import load_config
from rltransfer.execution.batching import batches, engine_of
from rltransfer.execution.job import BATCHED, SB3, RunJob, execute_unit


def _cfg(tmp_path: Path, name: str, **runner) -> dict:
    return {
        "name": name, "output_dir": str(tmp_path / "runs"), "family": "cartpole", "source_tasks": ["short", "long"],
        "target_tasks": ["very-long-heavy"], "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
        "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 3, "strategies": ["scratch", "zero_shot", "finetune", "kickstart"]},
        "evaluation": {"every": 128, "episodes": 3}, "runner": {"workers": 1, **runner},
    }  # fmt: skip


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    base = tmp_path_factory.mktemp("batched")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLTRANSFER_CACHE", str(base / "cache"))
        res = rltransfer.run_experiment(_cfg(base, "grid", batch_seeds=True), progress=False, echo=False)
    return base, res


def _result(run_dir: Path, key: str) -> dict:
    return json.loads((run_dir / "runs" / key / "result.json").read_text())


def test_the_engine_of_each_strategy(tmp_path):
    cfg = load_config(_cfg(tmp_path, "e", batch_seeds=True))
    assert {s: engine_of(cfg, s) for s in ["scratch", "zero_shot", "finetune", "kickstart"]} == {
        "scratch": BATCHED, "finetune": BATCHED, "zero_shot": SB3, "kickstart": BATCHED,
    }  # fmt: skip
    assert engine_of(load_config(_cfg(tmp_path, "e")), "scratch") == BATCHED  # on by default
    assert engine_of(load_config(_cfg(tmp_path, "e", batch_seeds=False)), "scratch") == SB3
    # left out, a cell with finished runs keeps their engine; set, it is what it says
    assert engine_of(load_config(_cfg(tmp_path, "e")), "scratch", kept=SB3) == SB3
    assert engine_of(load_config(_cfg(tmp_path, "e", batch_seeds=True)), "scratch", kept=SB3) == BATCHED
    kl = _cfg(tmp_path, "e", batch_seeds=True)
    kl["agent"]["hyperparams"]["target_kl"] = 0.02
    assert engine_of(load_config(kl), "scratch") == SB3
    for algo, engine in (("sac", BATCHED), ("dqn", BATCHED)):
        other = _cfg(tmp_path, "e", batch_seeds=True)
        other["agent"] = {"algo": algo}
        other["family"], other["source_tasks"] = ("pendulum", ["default"]) if algo == "sac" else ("cartpole", ["short"])
        other["target_tasks"] = ["heavy-long"] if algo == "sac" else ["very-long-heavy"]
        assert engine_of(load_config(other), "finetune") == engine, algo
        # what the off-policy engines do not restate is decided from the config: an SB3 run by its key too
        for hyper, engine in (
            ({"train_freq": [1, "episode"]}, SB3), ({"train_freq": [4, "step"]}, BATCHED), ({"train_freq": 4}, BATCHED),
            ({"optimize_memory_usage": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}}, SB3),
        ):  # fmt: skip
            other["agent"]["hyperparams"] = hyper
            assert engine_of(load_config(other), "finetune") == engine, (algo, hyper)


def _job(target: str, strategy: str, seed: int, engine: str) -> RunJob:
    return RunJob({}, "h", "b", {"name": target, "params": {}}, "interpolation", strategy, seed, 0, 1.0, 0.0, "o", engine=engine)  # fmt: skip


def test_batches_group_a_cells_seeds_and_keep_every_worker_busy():
    jobs = [_job(t, s, i, BATCHED if s != "zero_shot" else SB3) for t in "ab" for s in ("scratch", "zero_shot") for i in range(4)]  # fmt: skip
    units = batches(jobs, workers=2)
    assert [[(j.target["name"], j.strategy, j.seed) for j in u] for u in units][:2] == [
        [("a", "scratch", i) for i in range(4)], [("a", "zero_shot", 0)],
    ]  # fmt: skip
    assert sorted(len(u) for u in units) == [1] * 8 + [4, 4]
    # one cell, four workers: its seeds in four batches
    one = [_job("a", "scratch", i, BATCHED) for i in range(10)]
    assert [len(u) for u in batches(one, workers=4)] == [3, 3, 3, 1]
    assert sorted(j.seed for u in batches(one, workers=4) for j in u) == list(range(10))


def test_a_batched_grid_records_its_engine_and_each_run_is_the_run_alone(batched, tmp_path):
    base, res = batched
    assert not res.failed
    run_dir = res.run_dir
    engines = {k: _result(run_dir, k).get("engine") for k in ("very-long-heavy/scratch/seed-0",
               "very-long-heavy/finetune/seed-2", "very-long-heavy/zero_shot/seed-1", "very-long-heavy/kickstart/seed-0")}  # fmt: skip
    assert list(engines.values()) == ["batched", "batched", None, "batched"]
    # each batched run, alone (a batch of one, as verify re-runs it): the same result, curve for curve
    cfg = load_config(run_dir / "config.yaml")
    from rltransfer.records.run_result import read_result
    from rltransfer.reporting.verification import _job as job_of

    for key in ("very-long-heavy/finetune/seed-2", "very-long-heavy/kickstart/seed-1"):
        published = _result(run_dir, key)
        run = read_result(run_dir / "runs" / key / "result.json")
        cfg = cfg.model_copy(update={"output_dir": str(tmp_path / "alone")})
        job = job_of(cfg, published["run_hash"].split("-")[0], run, {0: (run_dir / "pretrain" / "bundle", "")})
        assert job.engine == BATCHED and job.run_hash == published["run_hash"]
        out = tmp_path / "alone-run" / key
        (summary,) = execute_unit([replace(job, out_dir=str(out))])
        assert summary.ok
        alone = json.loads((out / "result.json").read_text())
        assert alone["curve"] == published["curve"] and alone["metrics"] == published["metrics"], key


def _jobs_again(run_dir: Path, keys: list[str], out: Path) -> list[RunJob]:
    """The grid's runs ``keys`` as jobs again (as ``rltransfer verify`` makes them), writing under ``out``."""
    from rltransfer.records.run_result import read_result
    from rltransfer.reporting.verification import _job as job_of

    cfg = load_config(run_dir / "config.yaml").model_copy(update={"output_dir": str(out)})
    jobs = []
    for key in keys:
        run = read_result(run_dir / "runs" / key / "result.json")
        job = job_of(cfg, run.run_hash.split("-")[0], run, {0: (run_dir / "pretrain" / "bundle", "")})
        jobs.append(replace(job, out_dir=str(out / "runs" / key)))
    return jobs


def _break_seed_1(monkeypatch, where: str) -> None:
    """Seed 1's run fails: its evaluation env raises at its second evaluation (``where="evaluation"``), or its
    training raises just after its checkpoint at step 128 fell due (``where="training"``)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    from rltransfer.evaluation import Evaluator

    class Broken(VecEnvWrapper):
        def step_wait(self):
            raise RuntimeError("seed 1's evaluation env broke")

        def reset(self):
            return self.venv.reset()

    eval_env, evaluate_due = Evaluator._eval_env, Evaluator._evaluate_due

    def broken_env(ev, model):
        env = eval_env(ev, model)
        return Broken(env) if ev.seed == 1 and ev.curve["step"] else env

    def fails_after(ev):
        going_on = evaluate_due(ev)
        if ev.seed == 1 and ev.num_timesteps >= 128:
            raise RuntimeError("seed 1 fails after its checkpoint")
        return going_on

    if where == "evaluation":
        monkeypatch.setattr(Evaluator, "_eval_env", broken_env)
    else:
        monkeypatch.setattr(Evaluator, "_evaluate_due", fails_after)


@pytest.mark.parametrize("where", ["evaluation", "training"])
def test_a_seed_that_fails_in_a_batch_fails_as_alone_and_the_others_go_on(batched, tmp_path, monkeypatch, where):
    """A batch's evaluations are deferred and run for all seeds together; a seed whose evaluation raises
    fails alone (not the batch), and a seed that fails in training keeps the checkpoint that fell due before,
    as the run alone would: its failed record is the same in the batch as in a batch of one."""
    _, res = batched
    keys = [f"very-long-heavy/scratch/seed-{s}" for s in range(3)]
    _break_seed_1(monkeypatch, where)
    summaries = execute_unit(_jobs_again(res.run_dir, keys, tmp_path / "batch"))
    assert [s.status for s in summaries] == ["ok", "failed", "ok"]
    for key in (keys[0], keys[2]):  # the others: their runs as in the grid, curve for curve
        assert _result(tmp_path / "batch", key)["curve"] == _result(res.run_dir, key)["curve"], key
    failed = _result(tmp_path / "batch", keys[1])
    error = "seed 1's evaluation env broke" if where == "evaluation" else "seed 1 fails after its checkpoint"
    assert failed["status"] == "failed" and error in failed["error"]
    steps = [0] if where == "evaluation" else [0, 128]  # its checkpoints before it failed
    published = _result(res.run_dir, keys[1])["curve"]
    assert failed["curve"] == {name: values[: len(steps)] for name, values in published.items()}
    assert failed["curve"]["step"] == steps
    (alone,) = execute_unit(_jobs_again(res.run_dir, keys[1:2], tmp_path / "alone"))
    record = _result(tmp_path / "alone", keys[1])
    assert alone.status == "failed" and alone.error == record["error"]
    assert (record["error"], record["curve"]) == (failed["error"], failed["curve"])


def test_the_report_of_a_batched_grid_counts_its_batched_runs(batched):
    """The report takes a run under the key its engine gave it: every strategy of the grid has its row, with
    every seed (a batched run's key names its engine)."""
    _, res = batched
    rows = {(r["target"], r["strategy"]): r["seeds"] for r in res.summary["rows"]}
    assert rows == {("very-long-heavy", s): 3 for s in ("scratch", "zero_shot", "finetune", "kickstart")}


def test_a_runs_key_says_its_engine_so_the_other_engine_trains_it_again(batched):
    base, res = batched
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLTRANSFER_CACHE", str(base / "cache"))
        again = rltransfer.run_experiment(_cfg(base, "grid", batch_seeds=True), progress=False, echo=False)
        assert json.loads((again.run_dir / "manifest.json").read_text())["grid_runs"] == 0  # all re-used
        sb3 = rltransfer.run_experiment(_cfg(base, "grid-sb3", batch_seeds=False), progress=False, echo=False)
    key = "very-long-heavy/scratch/seed-0"
    a, b = _result(res.run_dir, key), _result(sb3.run_dir, key)
    assert a["run_hash"] != b["run_hash"] and "engine" not in b
    assert a["curve"]["step"] == b["curve"]["step"]  # the same protocol; other random streams
    z = "very-long-heavy/zero_shot/seed-0"
    assert _result(res.run_dir, z)["run_hash"] == _result(sb3.run_dir, z)["run_hash"]


def test_every_ppo_strategy_that_trains_runs_batched_and_frozen_parameters_stay_bit_identical(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file
    from stable_baselines3 import PPO

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(tmp_path, "all", batch_seeds=True)
    cfg["transfer"] = {**cfg["transfer"], "seeds": 2,
                       "strategies": ["freeze_encoder", "heads_only", "lr_scaled", "adapter", "progressive"]}  # fmt: skip
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert not res.failed
    for strategy in cfg["transfer"]["strategies"]:
        for seed in (0, 1):
            assert _result(res.run_dir, f"very-long-heavy/{strategy}/seed-{seed}")["engine"] == BATCHED, strategy
    bundle = load_file(str(res.run_dir / "pretrain" / "bundle" / "components.safetensors"))
    encoder = {"features_extractor." + k[len("encoder.") :]: v for k, v in bundle.items() if k.startswith("encoder.")}
    assert encoder
    for strategy in ("freeze_encoder", "heads_only"):
        model = PPO.load(res.run_dir / "runs" / "very-long-heavy" / strategy / "seed-1" / "model.zip", device="cpu")
        params = dict(model.policy.named_parameters())
        for name, value in encoder.items():
            assert torch.equal(params[name], value), (strategy, name)
    trained = PPO.load(res.run_dir / "runs" / "very-long-heavy" / "lr_scaled" / "seed-1" / "model.zip", device="cpu")
    assert not all(torch.equal(dict(trained.policy.named_parameters())[k], v) for k, v in encoder.items())


def test_a_batch_runs_detached_as_on_a_cluster_without_a_shared_filesystem(batched, tmp_path):
    """What a Ray task does with a batch: the jobs without the driver's paths, the bundle as bytes; the
    outputs come back by value, and written by the driver they hold the grid's results."""
    from rltransfer.execution.job import bundle_files, detached, execute_detached, write_outputs
    from rltransfer.records.run_result import read_result
    from rltransfer.reporting.verification import _job as job_of

    _, res = batched
    run_dir = res.run_dir
    cfg = load_config(run_dir / "config.yaml").model_copy(update={"output_dir": str(tmp_path / "driver")})
    bundle = run_dir / "pretrain" / "bundle"
    jobs = []
    for seed in range(3):
        run = read_result(run_dir / f"runs/very-long-heavy/scratch/seed-{seed}/result.json")
        chash = _result(run_dir, f"very-long-heavy/scratch/seed-{seed}")["run_hash"].split("-")[0]
        jobs.append(job_of(cfg, chash, run, {0: (bundle, "")}))
    sent = [detached(job) for job in jobs]
    assert all(str(tmp_path) not in json.dumps(j.config) and j.bundle == j.out_dir for j in sent)
    outputs = execute_detached(sent, [0, 0, 0], bundle_files(bundle))
    for job, (summary, files) in zip(jobs, outputs):
        assert summary.ok and "result.json" in files and "model.zip" in files
        write_outputs(job, files)
        mine = json.loads((Path(job.out_dir) / "result.json").read_text())
        grid = _result(run_dir, job.key)
        assert mine["curve"] == grid["curve"] and mine["engine"] == "batched"


def test_every_sac_strategy_that_trains_runs_batched_alone_as_in_its_batch_and_frozen_parameters_stay(tmp_path, monkeypatch):  # fmt: skip
    """SAC's strategies train batched (Pendulum: its vector build steps the seeds' envs together); a batched
    run re-run alone (a batch of one, as ``verify`` does) gives its curve again; a frozen encoder is the
    bundle's, bit for bit."""
    import torch
    from safetensors.torch import load_file
    from stable_baselines3 import SAC

    from rltransfer.records.run_result import read_result
    from rltransfer.reporting.verification import _job as job_of

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    strategies = ["scratch", "zero_shot", "finetune", "freeze_encoder", "lr_scaled", "adapter"]
    cfg = {
        "name": "sac", "output_dir": str(tmp_path / "runs"), "family": "pendulum", "source_tasks": ["default", "heavy"],
        "target_tasks": ["heavy-long"], "conditioning": "context",
        "agent": {"algo": "sac", "encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]},
                  "hyperparams": {"learning_starts": 100, "batch_size": 32}},
        "pretrain": {"timesteps": 300, "envs_per_task": 1, "eval_episodes": 1},
        "transfer": {"timesteps": 400, "seeds": 2, "strategies": strategies, "n_envs": 1},
        "evaluation": {"every": 200, "episodes": 2}, "runner": {"workers": 1, "batch_seeds": True},
    }  # fmt: skip
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert not res.failed
    for strategy in strategies:
        for seed in (0, 1):
            engine = _result(res.run_dir, f"heavy-long/{strategy}/seed-{seed}").get("engine")
            assert engine == (None if strategy == "zero_shot" else BATCHED), strategy
    rows = {(r["target"], r["strategy"]): r["seeds"] for r in res.summary["rows"]}
    assert rows == {("heavy-long", s): 2 for s in strategies}
    key = "heavy-long/finetune/seed-1"
    published = _result(res.run_dir, key)
    run = read_result(res.run_dir / "runs" / key / "result.json")
    rerun = load_config(res.run_dir / "config.yaml").model_copy(update={"output_dir": str(tmp_path / "alone")})
    job = job_of(rerun, published["run_hash"].split("-")[0], run, {0: (res.run_dir / "pretrain" / "bundle", "")})
    (summary,) = execute_unit([replace(job, out_dir=str(tmp_path / "alone-run"))])
    assert summary.ok
    alone = json.loads((tmp_path / "alone-run" / "result.json").read_text())
    assert alone["curve"] == published["curve"]
    bundle = load_file(str(res.run_dir / "pretrain" / "bundle" / "components.safetensors"))
    encoder = {"actor.features_extractor." + k[len("encoder.actor.") :]: v for k, v in bundle.items() if k.startswith("encoder.actor.")}  # fmt: skip
    assert encoder
    model = SAC.load(res.run_dir / "runs" / "heavy-long" / "freeze_encoder" / "seed-1" / "model.zip", device="cpu")
    params = dict(model.policy.named_parameters())
    for name, value in encoder.items():
        assert torch.equal(params[name], value), name
    trained = SAC.load(res.run_dir / "runs" / "heavy-long" / "finetune" / "seed-1" / "model.zip", device="cpu")
    assert not all(torch.equal(dict(trained.policy.named_parameters())[k], v) for k, v in encoder.items())


def test_dqn_strategies_run_batched_and_a_run_alone_is_the_run_in_its_batch(tmp_path, monkeypatch):
    from rltransfer.records.run_result import read_result
    from rltransfer.reporting.verification import _job as job_of

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    strategies = ["scratch", "zero_shot", "finetune", "freeze_encoder"]
    cfg = _cfg(tmp_path, "dqn", batch_seeds=True)
    cfg["agent"] = {"algo": "dqn", "hyperparams": {"learning_starts": 64, "batch_size": 32, "target_update_interval": 64}}  # fmt: skip
    cfg["transfer"] = {**cfg["transfer"], "seeds": 2, "strategies": strategies}
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert not res.failed
    for strategy in strategies:
        engine = _result(res.run_dir, f"very-long-heavy/{strategy}/seed-1").get("engine")
        assert engine == (None if strategy == "zero_shot" else BATCHED), strategy
    key = "very-long-heavy/finetune/seed-1"
    published = _result(res.run_dir, key)
    rerun = load_config(res.run_dir / "config.yaml").model_copy(update={"output_dir": str(tmp_path / "alone")})
    job = job_of(rerun, published["run_hash"].split("-")[0], read_result(res.run_dir / "runs" / key / "result.json"),
                 {0: (res.run_dir / "pretrain" / "bundle", "")})  # fmt: skip
    (summary,) = execute_unit([replace(job, out_dir=str(tmp_path / "alone-run"))])
    assert summary.ok
    assert json.loads((tmp_path / "alone-run" / "result.json").read_text())["curve"] == published["curve"]


def test_a_directory_made_with_one_process_per_seed_resumes_as_it_was_made(tmp_path, monkeypatch):
    """With ``batch_seeds`` left out (batched by default), a directory whose cells hold runs of SB3's own
    ``learn`` (made before the default changed, or with ``false``) keeps them: more seeds go on with their
    engine, nothing is trained again; a new strategy's cell is batched."""
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    cfg = _cfg(tmp_path, "resumed", batch_seeds=False)
    cfg["transfer"] = {**cfg["transfer"], "seeds": 2, "strategies": ["scratch", "finetune"]}
    first = rltransfer.run_experiment(cfg, progress=False, echo=False)
    before = _result(first.run_dir, "very-long-heavy/finetune/seed-1")
    del cfg["runner"]["batch_seeds"]
    cfg["transfer"] = {**cfg["transfer"], "seeds": 3, "strategies": ["scratch", "finetune", "freeze_encoder"]}
    again = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert not again.failed
    assert _result(again.run_dir, "very-long-heavy/finetune/seed-1") == before  # kept, not trained again
    manifest = json.loads((again.run_dir / "manifest.json").read_text())
    assert manifest["grid_runs"] == 5  # the third seed of scratch and of finetune, and freeze_encoder's 3 seeds
    engines = {key: _result(again.run_dir, f"very-long-heavy/{key}").get("engine")
               for key in ("scratch/seed-2", "finetune/seed-2", "freeze_encoder/seed-0")}  # fmt: skip
    assert engines == {"scratch/seed-2": None, "finetune/seed-2": None, "freeze_encoder/seed-0": BATCHED}


def test_the_progress_line_counts_the_runs_still_running_not_a_batch_whose_results_are_being_recorded(
    tmp_path, monkeypatch, capsys
):
    from rltransfer.execution.grid import ProgressLines

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ProgressLines, "every", 0.0)  # a line at every recorded run
    cfg = _cfg(tmp_path, "lines", batch_seeds=True)
    cfg["transfer"] = {**cfg["transfer"], "strategies": ["scratch"]}
    rltransfer.run_experiment(cfg, progress=True, echo=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("runs: ")]
    # one worker, one batch of three: once it has ended nothing runs while its three results are recorded
    assert [line.split(" (")[0] for line in lines] == [f"runs: {n}/3 done, 0 in flight, 0 failed" for n in (1, 2, 3)]
