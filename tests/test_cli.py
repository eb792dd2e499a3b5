import json
import subprocess
import sys
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rltransfer.bundle import load_bundle
from rltransfer.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rltransfer.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_families_lists_parameters_tasks_and_splits(capsys):
    assert main(["families", "cartpole"]) == 0
    out = capsys.readouterr().out
    assert "length" in out and "range [0.1, 3]" in out
    assert "very-long-heavy    extrapolation" in out and "short              source" in out
    assert "Gymnasium id: rltransfer/cartpole-v0 (gym.make('rltransfer/cartpole-v0', task=...)" in out
    assert main(["families", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"cartpole", "pendulum", "lunarlander"} <= {f["name"] for f in data}
    assert {f["name"]: f["gym_id"] for f in data}["lunarlander-continuous"] == "rltransfer/lunarlander-continuous-v0"


def test_output_whose_reader_went_stops_quietly_as_sigpipe_would():
    """``rltransfer families | head -3`` ended in a BrokenPipeError traceback when head left first."""
    code = (
        "import os, sys\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, sys.stdout.fileno())\n"
        "from rltransfer.cli import main\nsys.exit(main(['families']))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stderr) == (141, "")


def test_version_names_the_checkout_and_the_libraries_without_loading_torch():
    """What a bug report needs, as the results record it: the checkout's commit (this one is a checkout) and the
    libraries' versions, read from their metadata (``--version`` imports no torch)."""
    from rltransfer.revision import code_revision, package_versions

    code = "import sys; from rltransfer.cli import main\ntry: main(['--version'])\nexcept SystemExit as e: print('exit', e.code, 'torch' in sys.modules)"  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    first, libs, end = res.stdout.splitlines()
    assert first == f"rltransfer {package_versions()['rltransfer']} (checkout {code_revision()})"
    assert libs.startswith("python ") and f"torch {package_versions()['torch']}" in libs and "stable-baselines3" in libs
    assert end == "exit 0 False"


def test_bad_input_exits_2_with_one_message_and_no_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"family": "cartpole", "agent": {"algo": "a2c"}}))
    cases = [
        ["pretrain", str(cfg)],
        ["pretrain", str(tmp_path / "missing.yaml")],
        ["pretrain", str(cfg), "--set", "agent.algo"],
        ["families", "nope"],
        ["families", "cartpole", "--check", "--json"],  # the checks print lines, not JSON: --json did nothing
        ["frobnicate"],
    ]
    for args in cases:
        res = run_cli(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and res.stderr.strip(), args
    res = run_cli("pretrain", str(cfg), cwd=tmp_path)
    assert "config key 'agent.algo'" in res.stderr
    # Seeds numpy refuses: each ended in a traceback (numpy's ValueError) before they were checked here.
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"family": "cartpole"}))
    seeds = [
        ["pretrain", str(good), "--seed", "-1"],
        ["transfer", str(good), "--bundle", "b", "--target", "t", "--strategy", "scratch", "--seed", str(2**32)],
        ["evaluate", "model.zip", "--seed", "-1"],
        ["verify", "published", "--runs", "1", "--sample-seed", "-1"],
    ]
    for args in seeds:
        res = run_cli(*args, cwd=tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        assert f"seed: must be a whole number from 0 to 2147483647, got '{args[-1]}'" in res.stderr, args
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_config_error_is_told_before_torch_loads(tmp_path):
    """experiment, pretrain and transfer read their config before anything loads torch (seconds): a config
    error, like --help, is answered at once, still as one message with exit code 2."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("family: cartpole\nagent: 3\n")
    transfer = ["--bundle", "b", "--target", "t", "--strategy", "s"]
    script = (
        "import sys\nfrom rltransfer.cli import main\n"
        f"codes = [main([c, {str(cfg)!r}, *extra]) for c, extra in [('experiment', []), ('pretrain', []), ('transfer', {transfer!r})]]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )  # fmt: skip
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.stdout.split("\n")[0] == "[2, 2, 2] False", res.stderr
    assert res.stderr.count("config key 'agent'") == 3 and "Traceback" not in res.stderr


def test_report_renders_a_publication_without_torch(tmp_path):
    """A report is statistics and plots of finished runs: it loads neither torch nor SB3 (seconds each), the
    strategy registry it shows parameters from included."""
    import shutil

    pub = tmp_path / "quickstart"
    shutil.copytree(Path(__file__).resolve().parents[1] / "docs" / "results" / "quickstart", pub)
    before = (pub / "report.md").read_text()
    script = (
        "import sys\nfrom rltransfer.cli import main\n"
        f"code = main(['report', {str(pub)!r}])\n"
        "print(code, sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.stdout.strip().split("\n")[-1] == "0 []", res.stderr
    assert (pub / "report.md").read_text() == before  # the same report as with the registry's classes loaded


def test_help_everywhere_has_an_example():
    from rltransfer.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # every subcommand the parser has
    assert {
        "experiment",
        "report",
        "publish",
        "verify",
        "families",
        "pretrain",
        "transfer",
        "migrate",
        "evaluate",
    } <= set(commands)
    for args in [["--help"]] + [[name, "--help"] for name in commands]:
        res = run_cli(*args)
        assert res.returncode == 0 and "example" in res.stdout, args


def test_pretrain_cli_writes_bundle_and_per_task_tensorboard(tmp_path, tiny_config):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    res = run_cli("pretrain", str(cfg), "--no-progress", "--set", "pretrain.timesteps=192", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "short" in res.stdout and "mean return" in res.stdout
    out = tmp_path / "runs" / "tiny" / "pretrain"
    bundle = load_bundle(out / "bundle")
    assert bundle.manifest.timesteps >= 192
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for task in ("short", "long"):
        assert f"pretrain/{task}/rollout_return_mean100" in tags and f"pretrain/{task}/rollout_length_mean100" in tags
        assert f"pretrain/{task}/final_eval_return" in tags
    assert {"train/value_loss", "train/approx_kl", "time/fps"} <= tags
    plugins = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins
