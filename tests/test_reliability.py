"""Faults injected for real: fuzzed configs, a SIGKILL mid-grid, Ctrl-C, non-finite training."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rltransfer
from rltransfer.config import load_config
from rltransfer.errors import UserInputError
from rltransfer.validation import validate

ROOT = Path(__file__).parent.parent

# -- fuzzed configs ---------------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["ppo", "sac", "dqn", "a2c", "cartpole", "short", "auto", "lin_0.001", "lin_x"]),
)  # fmt: skip
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=12
)
KEYS = {
    "name": scalars, "output_dir": scalars, "family": st.sampled_from(["cartpole", "acrobot", "nope", 3]),
    "source_tasks": values, "target_tasks": values, "conditioning": scalars,
    "agent": st.fixed_dictionaries({}, optional={
        "algo": scalars, "heads": scalars, "normalize": scalars, "hyperparams": values, "encoder": values, "trunk": values,
        "extra": values,
    }),
    "pretrain": st.fixed_dictionaries({}, optional={"timesteps": scalars, "seeds": scalars, "envs_per_task": scalars}),
    "transfer": st.fixed_dictionaries({}, optional={
        "timesteps": scalars, "strategies": values, "seeds": scalars, "head_init": scalars, "strategy_params": values,
    }),
    "evaluation": values, "runner": values, "unknown_key": values,
}  # fmt: skip
configs = st.fixed_dictionaries({}, optional=KEYS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=configs)
def test_fuzzed_configs_end_in_one_clear_message_or_a_valid_config(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz")
    if isinstance(data.get("output_dir"), str) or "output_dir" not in data:  # a fuzzed non-string stays, to be refused
        data = {**data, "output_dir": str(out / "runs")}
    try:
        validate(load_config(data, ["transfer.timesteps=64"] if isinstance(data.get("transfer"), dict) else []))
    except UserInputError as err:  # anything else fails the test with its traceback
        assert re.search(r"config keys? '[^']+'", str(err)), f"the message names no config key: {err}"
    assert not (out / "runs").exists()  # validation never writes, here where it would


def test_fuzzed_yaml_files_through_the_cli_exit_2_without_traceback(tmp_path):
    cases = [
        "family: [", "- 1\n- 2", "family: cartpole\nagent: 3", "family: cartpole\ntransfer: {seeds: -1}",
        "family: cartpole\nsource_tasks: [{length: .inf}]", "family: cartpole\nagent: {hyperparams: {n_steps: x}}",
        "family: cartpole\ntransfer: {strategies: [kickstart], strategy_params: {kickstart: {anneal: 3}}}",
        "family: cartpole\ntarget_tasks: [swing-up]", "\x00\x01", "family: cartpole\nrunner: {workers: 0}",
    ]  # fmt: skip
    for i, text in enumerate(cases):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text + f"\noutput_dir: {tmp_path / 'out'}\n" if text.startswith("family") else text)
        res = subprocess.run(
            [sys.executable, "-m", "rltransfer.cli", "experiment", str(path), "--no-progress"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert res.returncode == 2, (text, res.stderr)
        assert "Traceback" not in res.stderr and res.stderr.count("\n") <= 4, (text, res.stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_unwritable_output_directory_is_reported_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserInputError, match="is not writable"):
        rltransfer.run_experiment(
            {"family": "cartpole", "output_dir": str(blocker / "runs")}, progress=False, echo=False
        )


def test_pretrain_and_transfer_commands_refuse_an_unwritable_output_before_training(tmp_path, tiny_config, capsys):
    # Both trained first, then stopped with a traceback (NotADirectoryError) where the output was under a file.
    import yaml

    from rltransfer.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**tiny_config, "output_dir": str(blocker)}))
    assert main(["pretrain", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"output directory '{blocker}/tiny/pretrain' is not writable" in err and "Traceback" not in err
    bundle = rltransfer.pretrain({**tiny_config, "output_dir": str(tmp_path / "ok")}, seed=0).bundle_path
    for out, said in ((blocker, "is a file"), (blocker / "run", "is not writable")):
        args = ["transfer", str(config), "--bundle", str(bundle), "--target", "very-long-heavy", "--out", str(out)]
        assert main([*args, "--strategy", "scratch", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"output directory '{out}' {said}" in err and "Traceback" not in err


# -- crashes ------------------------------------------------------------------------------------------
def _config(tmp_path, name, seeds=3):
    cfg = {
        "name": name, "output_dir": str(tmp_path / "runs"), "family": "cartpole", "source_tasks": ["short", "long"],
        "target_tasks": ["very-long-heavy"], "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 4}},
        "pretrain": {"timesteps": 256, "envs_per_task": 1, "eval_episodes": 1},
        "transfer": {"timesteps": 1536, "seeds": seeds, "strategies": ["scratch", "finetune"]},
        # One SB3 learn per run: these tests stop the grid between units of one run (a batch is one unit).
        "evaluation": {"every": 512, "episodes": 3}, "runner": {"workers": 1, "batch_seeds": False},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


def _default_sigint() -> None:
    # A test suite started in the background by a shell without job control inherits SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: give the child the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(path, tmp_path):
    env = {**os.environ, "RLTRANSFER_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen(
        [sys.executable, "-m", "rltransfer.cli", "experiment", str(path), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip


def _wait_for_results(run_dir, count, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(run_dir.glob("runs/*/*/seed-*/result.json"))) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no results appeared")


def _assert_no_process_outlives(proc, timeout=20):
    """Every process of ``proc``'s session (its workers) ends within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.time() < deadline, "a worker process outlived the interrupted experiment"
        time.sleep(0.1)


def _rows(run_dir):
    return json.loads((run_dir / "report" / "summary.json").read_text())["rows"]


def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(tmp_path):
    _, path = _config(tmp_path, "killed")
    run_dir = tmp_path / "runs" / "killed"
    proc = _start(path, tmp_path)
    _wait_for_results(run_dir, 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    found = list(run_dir.glob("runs/*/*/seed-*/result.json"))
    assert 2 <= len(found) < 6
    for f in found:  # never a partial or corrupt result file
        assert json.loads(f.read_text())["status"] == "ok"
    from rltransfer.reporting.report import render

    partial = render(run_dir, tensorboard=False)  # the report of a partial experiment renders
    assert sum(r["seeds"] for r in partial["rows"]) == len(found)
    proc = _start(path, tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert not list(run_dir.rglob("*.tmp"))
    _, ref_path = _config(tmp_path, "uninterrupted")
    proc = _start(ref_path, tmp_path)
    assert proc.wait(timeout=300) == 0
    assert _rows(run_dir) == _rows(tmp_path / "runs" / "uninterrupted")


def test_ctrl_c_stops_cleanly_keeps_results_and_says_how_to_resume(tmp_path):
    _, path = _config(tmp_path, "interrupted")
    run_dir = tmp_path / "runs" / "interrupted"
    proc = _start(path, tmp_path)
    _wait_for_results(run_dir, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err and "Traceback" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    kept = list(run_dir.glob("runs/*/*/seed-*/result.json"))
    assert kept and all(json.loads(f.read_text())["status"] == "ok" for f in kept)


def test_sigterm_stops_like_ctrl_c_and_the_manifest_says_so(tmp_path):
    _, path = _config(tmp_path, "terminated")
    run_dir = tmp_path / "runs" / "terminated"
    proc = _start(path, tmp_path)
    _wait_for_results(run_dir, 1, proc)
    os.killpg(proc.pid, signal.SIGTERM)  # as a cluster's scheduler ends a job
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "re-run the same command to resume" in err and "Traceback" not in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert "running" not in {r["status"] for r in manifest["runs"].values()}
    kept = list(run_dir.glob("runs/*/*/seed-*/result.json"))
    assert kept and all(json.loads(f.read_text())["status"] == "ok" for f in kept)


def test_sigterm_to_the_main_process_alone_stops_its_workers_too(tmp_path):
    # `kill <pid>` reaches the main process only; its worker processes must not go on with their runs
    # (and write results) after the manifest said the grid was interrupted.
    cfg, path = _config(tmp_path, "orphans", seeds=4)
    cfg["runner"]["workers"] = 2
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "runs" / "orphans"
    proc = _start(path, tmp_path)
    _wait_for_results(run_dir, 1, proc)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    _assert_no_process_outlives(proc)  # no worker outlives the grid
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    ok = {k for k, r in manifest["runs"].items() if r["status"] == "ok"}
    kept = {str(f.parent.relative_to(run_dir / "runs")) for f in run_dir.glob("runs/*/*/seed-*/result.json")}
    assert kept == ok  # every result on disk is one the manifest counts, and no other


def test_sigterm_while_pretraining_side_by_side_stops_the_workers_and_the_manifest_says_so(tmp_path):
    # Two pre-training seeds on two workers, and `kill <pid>` to the main process: no pre-training goes on
    # unseen, and the manifest says "interrupted" (not a stale "running").
    cfg, path = _config(tmp_path, "pretraining")
    cfg["pretrain"].update(timesteps=500_000, seeds=2)
    cfg["runner"]["workers"] = 2
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "runs" / "pretraining"
    proc = _start(path, tmp_path)
    deadline = time.time() + 120
    while not all(list((run_dir / "tb" / "pretrain" / d).glob("events.out.tfevents.*")) for d in ("seed-0", "seed-1")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the pre-trainings did not start"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM while pre-training" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err
    _assert_no_process_outlives(proc)  # no pre-training outlives the interrupt
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert not list(run_dir.glob("pretrain/**/bundle.json"))


def _interrupted_in_process(tmp_path, monkeypatch, name):
    """Run the small experiment ``name`` in this process, where the test's patches interrupt it: the
    message of its :class:`Interrupted`, its run directory and its manifest."""
    from rltransfer.errors import Interrupted

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    cfg, _ = _config(tmp_path, name)
    try:
        rltransfer.run_experiment(cfg, progress=False, echo=False)
    except KeyboardInterrupt:  # caught here: it would end pytest's session, not fail this test
        pytest.fail("the interrupt escaped the experiment as a bare KeyboardInterrupt")
    except Interrupted as err:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back
        run_dir = tmp_path / "runs" / name
        return str(err), run_dir, json.loads((run_dir / "manifest.json").read_text())
    pytest.fail("the experiment was not interrupted")


def test_a_run_that_wrote_its_result_as_the_grid_stopped_counts_as_finished(tmp_path, monkeypatch, python_sigint):
    # A worker writes its result, and the stop comes before the grid has taken the result in: the
    # result on disk is whole (a rename), so the manifest counts the run instead of calling it interrupted.
    from rltransfer.execution import backends as runner

    real = runner.execute_unit

    def stopped_after_writing(unit):
        summaries = real(unit)
        if unit[0].key == "very-long-heavy/scratch/seed-1":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return summaries

    monkeypatch.setattr(runner, "execute_unit", stopped_after_writing)
    _, run_dir, manifest = _interrupted_in_process(tmp_path, monkeypatch, "late")
    assert manifest["status"] == "interrupted"
    assert manifest["runs"]["very-long-heavy/scratch/seed-1"]["status"] == "ok"
    ok = {k for k, r in manifest["runs"].items() if r["status"] == "ok"}
    kept = {str(f.parent.relative_to(run_dir / "runs")) for f in run_dir.glob("runs/*/*/seed-*/result.json")}
    assert kept == ok == {"very-long-heavy/scratch/seed-0", "very-long-heavy/scratch/seed-1"}


def test_a_resumed_experiment_removes_the_temp_files_a_killed_writer_left(tmp_path, monkeypatch):
    # kill -9 between an atomic write's temp file and its rename leaves the temp file behind.
    import rltransfer

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    cfg, _ = _config(tmp_path, "stale", seeds=1)
    run_dir = tmp_path / "runs" / "stale"
    (run_dir / "runs" / "very-long-heavy" / "scratch" / "seed-0").mkdir(parents=True)
    stale = [run_dir / ".manifest.json.k1ll3d.tmp", run_dir / "runs/very-long-heavy/scratch/seed-0/.result.json.x.tmp"]
    for path in stale:
        path.write_text("{")
    rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert not any(path.exists() for path in stale)
    assert not list(run_dir.rglob("*.tmp"))
    assert json.loads((run_dir / "runs/very-long-heavy/scratch/seed-0/result.json").read_text())["status"] == "ok"


# -- non-finite training --------------------------------------------------------------------------------
class HugeReward(gym.Wrapper):
    """Finite but absurd rewards: returns overflow float32, and the parameters become NaN."""

    def step(self, action):
        obs, _, term, trunc, info = self.env.step(action)
        return obs, 3e38, term, trunc, info


def test_a_run_whose_training_turns_non_finite_is_recorded_failed_with_its_step(tmp_path, monkeypatch):
    from rltransfer.envs import Family, Parameter, register_family

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))

    def build(p):
        env = gym.make("CartPole-v1")
        env.unwrapped.length = p["length"]
        env.unwrapped.polemass_length = env.unwrapped.masspole * p["length"]
        return HugeReward(env) if p["length"] > 1.0 else env

    register_family(
        Family(
            name="overflow-test", parameters=[Parameter("length", 0.5, 0.1, 2.0)], build=build,
            tasks={"ok": {}, "ok2": {"length": 0.6}, "explodes": {"length": 1.5}}, source=["ok", "ok2"],
            targets=["explodes"], reward_threshold=475.0,
        ),
        overwrite=True,
    )  # fmt: skip
    # the target's threshold above its random return (about 1e40: 3e38 a step)
    cfg = {
        "name": "nan", "output_dir": str(tmp_path / "runs"), "family": "overflow-test",
        "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
        "pretrain": {"timesteps": 128, "envs_per_task": 1, "eval_episodes": 1},
        "transfer": {"timesteps": 512, "seeds": 1, "strategies": ["scratch", "zero_shot"]},
        "evaluation": {"every": 128, "episodes": 2, "thresholds": {"explodes": 1e42}}, "runner": {"workers": 1},
    }  # fmt: skip
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert res.failed == ["explodes/scratch/seed-0"]
    err = res.summary["failures"][0]["error"]
    assert err.startswith("NonFiniteError: non-finite parameters (") and "after the update at step " in err, err
    result = json.loads((res.run_dir / "runs/explodes/scratch/seed-0/result.json").read_text())
    assert result["status"] == "failed" and result["curve"]["step"][0] == 0  # what was measured is kept
    assert json.loads((res.run_dir / "runs/explodes/zero_shot/seed-0/result.json").read_text())["status"] == "ok"


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as in a terminal, for one test: a suite started in the background by a
    shell without job control inherits SIGINT ignored, and the experiment leaves an ignored SIGINT alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupt_that_library_code_turns_into_another_error_still_stops_the_grid(
    tmp_path, monkeypatch, python_sigint
):
    # torch, building a tensor from Python objects, reports a KeyboardInterrupt raised inside it as a
    # ValueError ("could not determine the shape..."): the run recorded it as its failure and the grid went
    # on. Here a run swallows the interrupt the same way.
    from rltransfer.execution import backends as runner
    from rltransfer.execution.job import RunSummary

    real = runner.execute_unit

    def swallowing(unit):
        (job,) = unit
        if job.key == "very-long-heavy/scratch/seed-1":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except BaseException as err:  # what the C code does
                Path(job.out_dir).mkdir(parents=True, exist_ok=True)
                (Path(job.out_dir) / "result.json").write_text(json.dumps({"status": "failed"}))
                return [RunSummary(job.key, "failed", f"ValueError: {err!r}")]
        return real(unit)

    monkeypatch.setattr(runner, "execute_unit", swallowing)
    message, run_dir, manifest = _interrupted_in_process(tmp_path, monkeypatch, "swallowed")
    assert "re-run the same command to resume" in message
    assert manifest["status"] == "interrupted"
    assert manifest["runs"]["very-long-heavy/scratch/seed-1"]["status"] == "interrupted"
    assert not (run_dir / "runs/very-long-heavy/scratch/seed-1/result.json").exists()  # no false failure kept
    assert (run_dir / "runs/very-long-heavy/scratch/seed-0/result.json").exists()


def test_an_interrupt_while_the_manifest_is_written_still_stops_the_grid(tmp_path, monkeypatch, python_sigint):
    # Ctrl-C while the grid writes its manifest: pydantic serialises the pre-trainings through a Python
    # function (the manifest's field serializer), and reports a KeyboardInterrupt raised inside it as a
    # PydanticSerializationError. The command ended with that traceback and exit 1 (seen in CI) instead of
    # stopping as an interrupt does.
    from rltransfer.execution import backends as runner
    from rltransfer.source_gate import Pretraining

    real_unit, real_to_dict = runner.execute_unit, Pretraining.to_dict
    armed = {"now": False}

    def finished(unit):
        summaries = real_unit(unit)
        armed["now"] = unit[0].key == "very-long-heavy/scratch/seed-0"  # the grid writes the manifest next
        return summaries

    def to_dict(self):
        if armed["now"]:
            armed["now"] = False
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises here, inside pydantic's serializer
        return real_to_dict(self)

    monkeypatch.setattr(runner, "execute_unit", finished)
    monkeypatch.setattr(Pretraining, "to_dict", to_dict)
    message, run_dir, manifest = _interrupted_in_process(tmp_path, monkeypatch, "mid-write")
    assert "re-run the same command to resume" in message
    assert manifest["status"] == "interrupted"
    assert manifest["runs"]["very-long-heavy/scratch/seed-0"]["status"] == "ok"  # finished: kept and counted
    assert (run_dir / "runs/very-long-heavy/scratch/seed-0/result.json").exists()


def test_an_interrupt_between_the_pre_trainings_and_the_grid_stops_cleanly(tmp_path, monkeypatch, python_sigint):
    # Between the phases (the targets' thresholds and random returns measured, the grid planned, finished
    # runs copied) nothing is in flight, and Ctrl-C still ends in the message and the manifest's status.
    from rltransfer import experiment

    real = experiment._protocol

    def interrupted(*args):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        return real(*args)

    monkeypatch.setattr(experiment, "_protocol", interrupted)
    message, run_dir, manifest = _interrupted_in_process(tmp_path, monkeypatch, "between")
    assert re.match(r"interrupted: 0 finished runs are kept .* re-run the same command", message), message
    assert manifest["status"] == "interrupted"
    assert list(run_dir.glob("pretrain/**/bundle.json"))  # the finished pre-training is kept


def test_an_interrupt_while_the_report_is_rendered_keeps_every_run(tmp_path, monkeypatch, python_sigint):
    # The grid has finished; Ctrl-C while the report is written stops like any other interrupt (re-running
    # the command trains nothing and writes the report).
    from rltransfer.reporting import report

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    monkeypatch.setattr(report, "render", interrupted)
    message, run_dir, manifest = _interrupted_in_process(tmp_path, monkeypatch, "reporting")
    assert message.startswith("interrupted: 6 finished runs are kept"), message
    assert manifest["status"] == "interrupted"
    assert {r["status"] for r in manifest["runs"].values()} == {"ok"} and len(manifest["runs"]) == 6


CRASHING_STUDY = '''
import multiprocessing as mp
import os

import gymnasium as gym

import rltransfer
from rltransfer.envs import Family, Parameter, register_family


class DiesInWorkers(gym.Wrapper):
    """A long pole's env ends its worker process at reset, as the kernel's out-of-memory killer would."""

    def reset(self, **kwargs):
        if mp.current_process().name != "MainProcess" and self.env.unwrapped.length > 1.5:
            os._exit(9)
        return self.env.reset(**kwargs)


def build(p):
    env = gym.make("CartPole-v1")
    env.unwrapped.length = p["length"]
    env.unwrapped.polemass_length = env.unwrapped.masspole * p["length"]
    return DiesInWorkers(env)


register_family(Family(
    name="crashing", parameters=[Parameter("length", default=0.5, low=0.3, high=2.0)], build=build,
    tasks={"a": {"length": 0.4}, "b": {"length": 0.6}, "fine": {"length": 0.5}, "deadly": {"length": 1.8}},
    source=["a", "b"], targets=["fine", "deadly"], reward_threshold=475.0,
))

if __name__ == "__main__":
    result = rltransfer.run_experiment({
        "name": "crashing", "family": "crashing", "agent": {"algo": "ppo", "hyperparams": {"n_steps": 64}},
        "pretrain": {"timesteps": 256}, "evaluation": {"every": 256, "episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch"]}, "runner": {"workers": 2},
    }, progress=False, echo=False)
    print("failed:", sorted(result.failed))
'''


def test_a_worker_that_dies_fails_its_own_runs_only_and_the_grid_goes_on(tmp_path):
    """A worker process that dies breaks the whole pool, and the runs in flight with it: each is run again,
    alone on a fresh pool; the one whose worker dies alone fails, the other finishes, the report is written.
    (The grid stopped with a BrokenProcessPool traceback, its manifest still saying "running".)"""
    (tmp_path / "study.py").write_text(CRASHING_STUDY)
    done = subprocess.run([sys.executable, "study.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "failed: ['deadly/scratch/seed-0', 'deadly/scratch/seed-1']" in done.stdout
    run_dir = tmp_path / "runs" / "crashing"
    results = {
        str(f.parent.relative_to(run_dir / "runs")): json.loads(f.read_text())
        for f in run_dir.glob("runs/*/*/seed-*/result.json")
    }
    assert {k: r["status"] for k, r in results.items()} == {
        "fine/scratch/seed-0": "ok", "fine/scratch/seed-1": "ok",
        "deadly/scratch/seed-0": "failed", "deadly/scratch/seed-1": "failed",
    }  # fmt: skip
    assert results["deadly/scratch/seed-0"]["error"].startswith("worker crashed: its process died while it ran")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] != "running"
    assert (run_dir / "report" / "report.md").is_file()


def test_a_worker_that_dies_pre_training_stops_the_experiment_with_one_message(tmp_path):
    """Pre-trainings side by side: the grid needs them all, so a dead worker stops the experiment, exit 1, one
    message saying what is kept and how to resume, the manifest saying why (it was a traceback, "running")."""
    module = CRASHING_STUDY.split('if __name__ == "__main__":')[0].replace("length > 1.5", "length < 0.45")
    (tmp_path / "crashing_family.py").write_text(module)  # the source task 'a' (0.4) dies in a worker
    config = {
        "name": "crashing", "family": "crashing", "imports": ["crashing_family"],
        "agent": {"algo": "ppo", "hyperparams": {"n_steps": 64}}, "pretrain": {"timesteps": 256, "seeds": 2},
        "evaluation": {"every": 128, "episodes": 2}, "transfer": {"timesteps": 256, "strategies": ["scratch"]},
        "runner": {"workers": 2},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "rltransfer", "experiment", "config.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "rltransfer: error: a worker process died while pre-training seeds 0, 1 side by side" in done.stderr
    assert "re-run the same command to resume" in done.stderr
    manifest = json.loads((tmp_path / "runs" / "crashing" / "manifest.json").read_text())
    assert manifest["status"] == "a pre-training's worker died"


DIES_AS_IT_STARTS = """
import multiprocessing as mp
import os

import rltransfer

if mp.current_process().name != "MainProcess":
    os._exit(3)  # a script whose top level cannot run in a worker process

if __name__ == "__main__":
    rltransfer.run_experiment({
        "name": "crashing", "family": "cartpole", "source_tasks": ["short", "long"], "target_tasks": ["medium"],
        "agent": {"algo": "ppo", "hyperparams": {"n_steps": 64}}, "pretrain": {"timesteps": 256},
        "evaluation": {"every": 256, "episodes": 2}, "runner": {"workers": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "finetune"]},
    }, progress=False, echo=False)
"""


@pytest.mark.parametrize("family", ["shipped", "the script's own"])
def test_workers_that_die_as_they_start_stop_the_experiment_with_one_message(tmp_path, family):
    """A script whose top level ends a worker process as it imports it: no run can be done in a worker, so the
    experiment stops, saying so (it was a BrokenProcessPool traceback; failing each run alone would have taken a
    fresh pool a run). With the script's own family the workers are checked before anything is written; with a
    shipped one, when the grid starts (the manifest says why)."""
    if family == "shipped":
        study = DIES_AS_IT_STARTS
    else:
        study = CRASHING_STUDY.replace(
            "\n\nclass DiesInWorkers",
            '\n\nif mp.current_process().name != "MainProcess":\n    os._exit(3)\n\n\nclass DiesInWorkers',
        )
    (tmp_path / "study.py").write_text(study)
    done = subprocess.run([sys.executable, "study.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "WorkerDied: the grid's worker processes die as they start, before they take a run" in done.stderr
    run_dir = tmp_path / "runs" / "crashing"
    assert not list(run_dir.glob("runs/*/*/seed-*/result.json"))
    if family == "shipped":
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["status"] == "the grid's workers died as they started"
    else:
        assert not (run_dir / "manifest.json").exists()


def test_workers_that_keep_dying_as_they_start_stop_the_grid_after_a_few_fresh_pools(monkeypatch):
    """Pools whose workers start (a worker answers) but break before a run ends, again and again (workers that
    die at random as they start): after MAX_STALLS fresh pools the grid stops with the start-up message, instead
    of replacing pools for ever."""
    from concurrent.futures.process import BrokenProcessPool

    from rltransfer.errors import WorkerDied
    from rltransfer.execution import backends

    made = []

    class BreaksAtOnce:
        def __init__(self):
            made.append(self)

        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("a child process terminated abruptly")

        def shutdown(self, *args, **kwargs):
            pass

    monkeypatch.setattr(backends, "start_pool", lambda workers: BreaksAtOnce())
    monkeypatch.setattr(backends, "check_started", lambda pool: None)
    monkeypatch.setattr(backends, "stop_workers", lambda pool: None)
    with pytest.raises(WorkerDied, match="die as they start, before they take a run"):
        list(backends.run_local([["run a"], ["run b"]], workers=2))  # type: ignore[list-item]
    assert len(made) == 1 + backends.MAX_STALLS  # the first pool, then MAX_STALLS fresh ones


def test_a_freed_worker_takes_its_next_unit_before_the_ended_units_results_are_handed_over(monkeypatch):
    """When a unit ends, the local pool starts the next one first, then yields the ended unit's results: the
    worker does not wait while the experiment records them (a batch's many results, the manifest written after
    each)."""
    from concurrent.futures import ThreadPoolExecutor

    from rltransfer.execution import backends

    monkeypatch.setattr(backends, "execute_unit", lambda unit: [{"run": job, "status": "ok"} for job in unit])
    started: list[str] = []
    seen = []
    with ThreadPoolExecutor(2) as pool:
        units = [["a1", "a2"], ["b"], ["c"], ["d"]]
        stream = backends.run_local(units, 2, started.append, pool)  # type: ignore[arg-type]
        for job, summary in stream:
            seen.append((job, list(started)))
            assert summary == {"run": job, "status": "ok"}
    assert sorted(job for job, _ in seen) == ["a1", "a2", "b", "c", "d"]
    for job, at_hand_over in seen:
        unit = next(u for u in units if job in u)
        later = units[units.index(unit) + 1 :]
        if later:  # a unit's results come after the next unit is started
            assert later[0][0] in at_hand_over, (job, at_hand_over)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_units_end_is_announced_before_its_results_and_before_the_next_units_start(monkeypatch, workers):
    """``on_end`` hears of a unit's runs when the unit ends: after they started, before their results are handed
    over and before the units that take the worker start. The grid's progress counts as in flight the runs
    started and not ended: a batch whose runs have ended is not, while its many results are recorded (it was
    counted with the next units until each of its results was)."""
    from concurrent.futures import ThreadPoolExecutor

    from rltransfer.execution import backends

    monkeypatch.setattr(backends, "execute_unit", lambda unit: [{"status": "ok"} for _ in unit])
    events: list[tuple[str, str]] = []
    units = [["a1", "a2", "a3"], ["b"], ["c1", "c2"], ["d"]]
    with ThreadPoolExecutor(2) as pool:
        stream = backends.run_local(
            units, workers, lambda job: events.append(("start", job)), pool if workers > 1 else None,  # type: ignore[arg-type]
            on_end=lambda job: events.append(("end", job)),  # type: ignore[arg-type]
        )  # fmt: skip
        for job, _ in stream:
            events.append(("result", job))
    for unit in units:
        for job in unit:
            assert events.index(("start", job)) < events.index(("end", job)) < events.index(("result", job))
        at_hand_over = events[: events.index(("result", unit[0]))]
        in_flight = {j for what, j in at_hand_over if what == "start"} - {
            j for what, j in at_hand_over if what == "end"
        }
        assert not in_flight & set(unit), (unit, in_flight)  # ended: not counted while its results are recorded
        if workers == 1:
            assert not in_flight  # one unit at a time: nothing runs while a unit's results are recorded
