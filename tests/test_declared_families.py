"""Families as data (YAML over a Gymnasium id), families from an installed plugin package, and
`rltransfer families --check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from rltransfer.cli import main
from rltransfer.config import FamilySpec, load_config
from rltransfer.envs import Family, Parameter, TaskError, get_family, register_declared
from rltransfer.envs.checks import check_family, trajectory
from rltransfer.envs.declared import declared_family, parse_path, read, write
from rltransfer.errors import ConfigError
from rltransfer.validation import resolve, validate

ROOT = Path(__file__).resolve().parents[1]
DECLARED = ROOT / "configs" / "families" / "cartpole-declared.yaml"
PLUGIN = Path(__file__).parent / "plugin"
TINY = {
    "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}, "encoder": {"hidden": [16]},
              "trunk": {"pi": [16], "vf": [16]}},
    "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 2},
    "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "finetune"], "head_init": "nearest"},
    "evaluation": {"every": 128, "episodes": 2},
}  # fmt: skip


def spec(**changes) -> dict:
    data = yaml.safe_load(DECLARED.read_text())
    data.update(changes)
    return FamilySpec.model_validate(data).model_dump()


def test_a_declared_family_is_the_code_family_it_restates():
    declared, code = register_declared(spec()), get_family("cartpole")
    for task in ("default", "very-long-heavy", "medium"):
        a, b = declared.make(task), code.make(task)
        np.testing.assert_array_equal(trajectory(a, seed=4), trajectory(b, seed=4), err_msg=task)
    assert declared.target_tasks == {"medium": "interpolation", "very-long-heavy": "extrapolation"}


def test_attribute_paths_set_and_scale_nested_array_elements():
    class Model:
        def __init__(self):
            self.body_mass = np.array([0.0, 2.0, 3.0])
            self.opt = type("Opt", (), {})()
            self.opt.gravity = np.array([0.0, 0.0, -9.81])

    env = type("Env", (), {})()
    env.model, env.tau = Model(), 0.02
    assert parse_path("model.body_mass[1:]") == (["model", "body_mass"], slice(1, None))
    write(env, "model.body_mass[1:]", 2.0, "scale")
    write(env, "model.opt.gravity[2]", -3.0)
    write(env, "tau", 0.5, "scale")
    np.testing.assert_array_equal(env.model.body_mass, [0.0, 4.0, 6.0])
    assert env.model.opt.gravity[2] == -3.0 and env.tau == 0.01
    with pytest.raises(Exception, match="has no attribute 'body_mas' \\(did you mean 'body_mass'\\?\\)"):
        read(env, "model.body_mas[1]")
    with pytest.raises(Exception, match="index 7 outside"):
        read(env, "model.body_mass[7]")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env_id": "CartPole-v9"}, "not a registered Gymnasium id"),
        ({"parameters": {"length": {"default": 0.5, "low": 0.1, "high": 3, "attribute": "lenght"}}},
         "has no attribute 'lenght' (did you mean 'length'?)"),
        ({"parameters": {"length": {"default": 0.5, "low": 0.1, "high": 3, "attribute": "spec"}}}, "not a number"),
        ({"parameters": {"length": {"default": 0.5, "low": 0.1, "high": 3, "kwarg": "pole"}}},
         "parameters.length.kwarg: 'CartPole-v1' takes no constructor argument 'pole'; it takes: sutton_barto_reward, render_mode"),
        ({"kwargs": {"sutton_barto_rewards": True}},
         "kwargs.sutton_barto_rewards: 'CartPole-v1' takes no constructor argument 'sutton_barto_rewards' (did you mean 'sutton_barto_reward'?)"),
        ({"derived": "nowhere.module:fn"}, "cannot import it"),
    ],
)  # fmt: skip
def test_a_declaration_is_checked_against_the_real_env(changes, message):
    data = yaml.safe_load(DECLARED.read_text())
    data.update(changes, name="broken-declared")
    data["tasks"] = {k: {p: v for p, v in t.items() if p in data["parameters"]} for k, t in data["tasks"].items()}
    cfg = {"family": "broken-declared", "families": [data], **TINY}
    with pytest.raises(ConfigError) as err:
        validate(load_config(cfg))
    assert "config key 'families[0]'" in str(err.value) and message in str(err.value)


def test_a_constructor_taking_any_keyword_refuses_with_its_own_message():
    def make(**kwargs):  # a creator whose signature cannot tell which arguments it takes
        raise TypeError(f"unexpected {sorted(kwargs)}")

    gym.register("RltransferTest/AnyKeyword-v0", entry_point=make)
    try:
        data = {**yaml.safe_load(DECLARED.read_text()), "env_id": "RltransferTest/AnyKeyword-v0", "kwargs": {"x": 1}}
        with pytest.raises(TaskError, match=r"refuses its constructor arguments: unexpected \['x'\]"):
            declared_family(data)
    finally:
        del gym.registry["RltransferTest/AnyKeyword-v0"]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (gym.error.DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`'),
         "'RltransferTest/Failing-v0' needs a package that is not installed: MuJoCo is not installed"),
        (ValueError("mass must be positive"),
         "building 'RltransferTest/Failing-v0' with its declared arguments failed: ValueError: mass must be positive"),
    ],
)  # fmt: skip
def test_an_env_that_cannot_be_built_is_told_by_the_cli_not_raised(tmp_path, capsys, error, message):
    """A declared family whose env fails to build (its extra not installed, as MuJoCo's for the shipped
    cheetah family, or its constructor refusing a value): exit 2 and what failed, not a traceback."""

    def make(**kwargs):
        raise error

    gym.register("RltransferTest/Failing-v0", entry_point=make)
    try:
        data = {**yaml.safe_load(DECLARED.read_text()), "name": "failing", "env_id": "RltransferTest/Failing-v0"}
        data["parameters"] = {n: p for n, p in data["parameters"].items() if "attribute" in p}
        data["tasks"] = {k: {p: v for p, v in t.items() if p in data["parameters"]} for k, t in data["tasks"].items()}
        (tmp_path / "failing.yaml").write_text(yaml.safe_dump(data))
        assert main(["families", str(tmp_path / "failing.yaml")]) == 2
        assert f"family 'failing': {message}" in capsys.readouterr().err
        with pytest.raises(ConfigError, match="config key 'families\\[0\\]'"):
            resolve(load_config({"family": "failing", "families": [data]}))
    finally:
        del gym.registry["RltransferTest/Failing-v0"]


def test_a_config_names_a_family_file_and_its_resolved_config_holds_the_declaration(tmp_path):
    (tmp_path / "fam.yaml").write_text(DECLARED.read_text())
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"family": "cartpole-declared", "families": ["fam.yaml"]}))
    cfg = load_config(tmp_path / "exp.yaml")
    assert cfg.families[0].name == "cartpole-declared" and cfg.families[0].derived.endswith(":recompute")
    assert load_config(cfg.to_dict()) == cfg  # what a worker receives: data, no file
    with pytest.raises(ConfigError, match=r"config key 'families\[0\]': file 'nope.yaml' not found"):
        load_config({"family": "x", "families": ["nope.yaml"]})


def test_a_worker_resolves_a_declared_family_with_its_parameters_in_their_order(tmp_path):
    """The order of a declared family's parameters is the order of its context vector: the config a job
    carries must resolve to the same order in a worker (sorting the job's JSON reordered the cheetah's)."""
    import json

    from rltransfer.execution.job import _setup_of

    (tmp_path / "fam.yaml").write_text(DECLARED.read_text())
    cfg = load_config({"family": "cartpole-declared", "families": [str(tmp_path / "fam.yaml")]})
    declared = list(cfg.families[0].model_dump()["parameters"])
    assert declared != sorted(declared)  # the check needs an order that sorting would change
    setup = _setup_of(json.dumps(cfg.to_dict()))
    assert list(setup.family.parameters) == declared


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rltransfer.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_declared_family_runs_from_the_cli_on_two_workers_and_re_reports(tmp_path, backend):
    if backend == "ray":
        pytest.importorskip("ray")
    cfg = {
        "name": "declared", "output_dir": str(tmp_path / "runs"), "family": "cartpole-declared",
        "families": [str(DECLARED)], "source_tasks": ["short", "long"], "target_tasks": ["very-long-heavy"],
        **TINY, "runner": {"backend": backend, "workers": 2},
    }  # fmt: skip
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli("experiment", str(tmp_path / "exp.yaml"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "runs" / "declared"
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert summary["family"] == "cartpole-declared" and len(summary["rows"]) == 2
    bundle = json.loads((run_dir / "pretrain" / "bundle" / "bundle.json").read_text())
    assert bundle["family_spec"]["env_id"] == "CartPole-v1"  # the bundle carries its family
    before = (run_dir / "report" / "summary.json").read_bytes()
    res = run_cli("report", str(run_dir), cwd=tmp_path)  # a fresh process: nothing registered but the config
    assert res.returncode == 0, res.stderr
    assert (run_dir / "report" / "summary.json").read_bytes() == before


def _install_plugin(site: Path) -> dict:
    """The plugin package, installed as pip would: the package and its dist-info (entry points)."""
    site.mkdir()
    (site / "rltransfer_demo_plugin").symlink_to(PLUGIN / "rltransfer_demo_plugin")
    info = site / "rltransfer_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rltransfer-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[rltransfer.families]\ndemo = rltransfer_demo_plugin:families\n\n"
        "[rltransfer.strategies]\ndemo = rltransfer_demo_plugin:strategies\n\n"
        "[rltransfer.encoders]\ndemo_mlp = rltransfer_demo_plugin:DemoEncoder\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_plugin_package_family_and_strategy_from_the_cli_on_two_workers(tmp_path, backend):
    if backend == "ray":
        pytest.importorskip("ray")
    env = _install_plugin(tmp_path / "site")
    res = run_cli("families", "demo-poles", env=env)
    assert res.returncode == 0 and "a plugin's family" in res.stdout, res.stderr
    cfg = {
        "name": "plugin", "output_dir": str(tmp_path / "runs"), "family": "demo-poles", **TINY,
        "agent": {**TINY["agent"], "encoder": {"type": "demo_mlp", "hidden": [16]}},  # the plugin's encoder
        "transfer": {**TINY["transfer"], "strategies": ["scratch", "encoder_only"]},
        "runner": {"backend": backend, "workers": 2},
    }  # fmt: skip
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli("experiment", str(tmp_path / "exp.yaml"), "--no-progress", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "runs" / "plugin" / "report" / "summary.json").read_text())
    assert [r["strategy"] for r in summary["rows"]] == ["scratch", "encoder_only"]
    bundle = json.loads((tmp_path / "runs" / "plugin" / "pretrain" / "bundle" / "bundle.json").read_text())
    assert bundle["architecture"]["encoder"]["type"] == "demo_mlp"
    res = run_cli("report", str(tmp_path / "runs" / "plugin"), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    # Without the package installed the report still renders (it needs no family), and the family is
    # unknown: a clear message, exit 2.
    assert run_cli("report", str(tmp_path / "runs" / "plugin"), cwd=tmp_path).returncode == 0
    res = run_cli("families", "demo-poles", cwd=tmp_path)
    assert res.returncode == 2 and "unknown family 'demo-poles'" in res.stderr and "Traceback" not in res.stderr


def test_a_plugin_module_imported_first_loads_its_own_entry_points(tmp_path):
    """A script that imports a plugin package before anything of rltransfer: the package imports
    rltransfer.agents at its top (to subclass an encoder), and rltransfer asks for the package's encoder, family
    and strategy only when one is looked up, never while Python is still importing the package."""
    env = _install_plugin(tmp_path / "site")
    script = (
        "import rltransfer_demo_plugin\n"
        "from rltransfer.agents import encoder_types\nfrom rltransfer.envs import get_family\n"
        "from rltransfer.strategies import known_strategies\n"
        "print(encoder_types()['demo_mlp'] is rltransfer_demo_plugin.DemoEncoder, "
        "get_family('demo-poles').name, 'encoder_only' in known_strategies())\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.split() == ["True", "demo-poles", "True"], res.stderr


def test_families_check_of_an_unknown_family_says_so_before_any_output(capsys):
    assert main(["families", "--check", "no-such-family"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "unknown family 'no-such-family'" in err and "cartpole" in err


def test_families_check_passes_a_sound_family_and_catches_broken_ones(capsys):
    assert main(["families", "--check", str(DECLARED)]) == 0
    assert "every check passed" in capsys.readouterr().out

    class Shared(gym.Wrapper):  # a builder that writes the pole's length where every instance reads it
        length = 0.5

        def step(self, action):
            self.env.unwrapped.length = Shared.length
            self.env.unwrapped.polemass_length = self.env.unwrapped.masspole * Shared.length
            return self.env.step(action)

    def leaky(params):
        Shared.length = params["length"]
        return Shared(gym.make("CartPole-v1"))

    def ignores(params):  # 'gravity' is accepted and never set
        env = gym.make("CartPole-v1")
        env.unwrapped.length = params["length"]
        env.unwrapped.polemass_length = env.unwrapped.masspole * params["length"]
        return env

    params = [Parameter("length", 0.5, 0.2, 2.0), Parameter("gravity", 9.8, 2.0, 20.0)]
    tasks = {"default": {}, "long": {"length": 1.5}, "far": {"length": 1.8, "gravity": 15.0}}
    broken = {
        name: Family(name, params, build, tasks, ["default"], {"far": "extrapolation"})
        for name, build in (("leaky", leaky), ("ignores", ignores))
    }
    leaky_checks = {c.name: c for c in check_family(broken["leaky"])}
    assert not leaky_checks["no state shared between tasks"].ok
    ignores_checks = {c.name: c for c in check_family(broken["ignores"])}
    assert not ignores_checks["parameter gravity"].ok and "no effect" in ignores_checks["parameter gravity"].detail
    assert ignores_checks["parameter length"].ok and ignores_checks["no state shared between tasks"].ok


def test_import_registers_a_family_in_the_driver_and_in_every_worker(tmp_path):
    (tmp_path / "my_family.py").write_text(
        "import gymnasium as gym\n"
        "from rltransfer.envs import Family, Parameter, register_family\n\n"
        "def build(params):\n"
        "    env = gym.make('CartPole-v1')\n"
        "    env.unwrapped.gravity = params['gravity']\n"
        "    return env\n\n"
        "register_family(Family('my-gravity', [Parameter('gravity', 9.8, 2.0, 20.0)], build,\n"
        "    {'low': {'gravity': 6.0}, 'default': {}, 'high': {'gravity': 16.0}}, ['low', 'default'], {'high': 'extrapolation'}),\n"
        "    overwrite=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    assert run_cli("families", "my-gravity", env=env).returncode == 2  # not imported: unknown
    res = run_cli("--import", "my_family", "families", "my-gravity", env=env)
    assert res.returncode == 0 and "gravity" in res.stdout, res.stderr
    cfg = {
        "name": "imp",
        "output_dir": str(tmp_path / "runs"),
        "family": "my-gravity",
        **TINY,
        "runner": {"workers": 2},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli(
        "--import", "my_family", "experiment", str(tmp_path / "exp.yaml"), "--no-progress", env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr  # the spawned workers imported it too: the config says so
    assert yaml.safe_load((tmp_path / "runs" / "imp" / "config.yaml").read_text())["imports"] == ["my_family"]
    run = str(tmp_path / "runs" / "imp" / "runs" / "high" / "finetune" / "seed-0")
    res = run_cli("evaluate", run, "--episodes", "1", env=env)  # the experiment's config imports it
    assert res.returncode == 0 and res.stdout.startswith("high: mean return"), res.stderr
    res = run_cli("evaluate", run, "--episodes", "1", cwd=tmp_path / "runs")  # where it cannot be imported
    assert res.returncode == 2 and "imports 'my_family', which failed here (ModuleNotFoundError" in res.stderr
    res = run_cli("--import", "no_such_module", "families", env=env)
    assert res.returncode == 2 and "--import no_such_module: importing 'no_such_module' failed" in res.stderr


def test_the_command_imports_a_module_from_the_current_directory_as_python_m_would(tmp_path):
    """An installed script (the ``rltransfer`` command) has not the current directory on Python's path, where
    ``python -m`` has it first: ``--import my_env`` beside ``my_env.py`` found nothing."""
    command = Path(sys.executable).parent / "rltransfer"
    if not command.is_file():
        pytest.skip("the rltransfer command is not installed beside this Python")
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "my_local_family.py").write_text(
        "from rltransfer.envs import Family, Parameter, register_family\n"
        "from rltransfer.envs.cartpole import CARTPOLE\n\n"
        "register_family(Family('my-local', [Parameter('length', 0.5, 0.2, 2.0)], CARTPOLE.build,\n"
        "    {'short': {}, 'long': {'length': 1.5}}, ['short'], {'long': 'extrapolation'}), overwrite=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def families(cwd):
        args = [str(command), "--import", "my_local_family", "families", "my-local"]
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)

    res = families(tmp_path / "here")
    assert res.returncode == 0 and "length" in res.stdout, res.stderr
    res = families(tmp_path)  # elsewhere: not found, as before
    assert res.returncode == 2 and "No module named 'my_local_family'" in res.stderr


SCRIPT = """import gymnasium as gym
import rltransfer
from rltransfer.envs import Family, Parameter, register_family


def build(params):
    env = gym.make("CartPole-v1")
    env.unwrapped.gravity = params["gravity"]
    return env


def register():
    register_family(Family("script-gravity", [Parameter("gravity", 9.8, 2.0, 20.0)], build,
        {"low": {"gravity": 6.0}, "default": {}, "high": {"gravity": 16.0}}, ["low", "default"], ["high"]))


{where}
if __name__ == "__main__":
    {guarded}
    rltransfer.run_experiment({config!r}, progress=False, echo=False)
"""


MODULE = SCRIPT.split("\n\n{where}")[0].replace("script-gravity", "module-gravity") + "\n\nregister()\n"
"""A module of the user's own that registers a family when imported (the script imports it)."""

UNKNOWN = "would not resolve the config (config key 'family': unknown family 'module-gravity'"


@pytest.mark.parametrize(
    ("where", "backend", "refused"),
    [
        ("top", "local", None),
        ("guarded", "local", "the grid's worker processes would not resolve the config (config key 'family': unknown "
                             "family 'script-gravity'"),
        ("top", "ray", "runner.backend 'ray': Ray's workers do not import the script that defines family 'script-gravity'"),
        # a module the script imports at its top level reaches the workers: tests/test_docs_code.py's extending
        # page study (its family's module imported so, 2 workers, no 'imports:') runs so
        ("module-guarded", "local", f"the grid's worker processes {UNKNOWN}"),
        ("module-top", "ray", f"runner.backend 'ray': Ray's workers import rltransfer and the config's 'imports:' alone, "
                              f"and {UNKNOWN}"),
    ],
)  # fmt: skip
def test_a_family_a_script_defines_reaches_the_workers_or_is_refused_before_pre_training(
    tmp_path, where, backend, refused
):
    """Spawned workers re-import the script: a family it registers at its top level (or a module it imports
    there registers) reaches them; one it registers under ``if __name__ == "__main__":`` (or a module it imports
    there) does not, and every run failed on it after the pre-training; Ray's workers never import the script.
    Those are refused before anything trains, naming the fix."""
    if backend == "ray":
        pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    family = "module-gravity" if where.startswith("module") else "script-gravity"
    config = {"name": "s", "output_dir": str(tmp_path / "runs"), "family": family, **TINY,
              "runner": {"backend": backend, "workers": 2}}  # fmt: skip
    (tmp_path / "my_gravity.py").write_text(MODULE)
    top, guarded = {"top": ("register()", "pass"), "guarded": ("", "register()"),
                    "module-top": ("import my_gravity", "pass"), "module-guarded": ("", "import my_gravity")}[where]  # fmt: skip
    text = SCRIPT.replace("{where}", top).replace("{guarded}", guarded).replace("{config!r}", repr(config))
    (tmp_path / "script.py").write_text(text)
    res = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    if refused is None:
        assert res.returncode == 0, res.stderr
        assert len(list((tmp_path / "runs" / "s" / "runs").rglob("result.json"))) == 4
        return
    assert res.returncode == 1 and refused in res.stderr and "ConfigError" in res.stderr
    assert not (tmp_path / "runs" / "s" / "config.yaml").exists()  # nothing pre-trained
    if where.startswith("module"):
        assert "name 'my_gravity' under the config's 'imports:'" in res.stderr


def test_a_ray_worker_knows_what_the_configs_imports_register(tmp_path, monkeypatch):
    """A fresh interpreter resolves the config as a Ray worker does: it knows a module's family once the config
    imports the module, not before."""
    from rltransfer.execution.known_names import resolved_afresh

    (tmp_path / "my_gravity.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {"name": "s", "family": "module-gravity"}
    assert resolved_afresh(config).startswith("config key 'family': unknown family 'module-gravity'")
    assert resolved_afresh({**config, "imports": ["my_gravity"]}) == ""


def test_the_shipped_mujoco_family_passes_every_check():
    pytest.importorskip("mujoco", reason="the MuJoCo family needs the [mujoco] extra")
    cfg = load_config(ROOT / "configs" / "cheetah.yaml")
    family = resolve(cfg).family
    assert family.spec is not None and family.spec["env_id"] == "HalfCheetah-v5"
    checks = check_family(family, steps=100)
    assert [c.name for c in checks if not c.ok] == []
    heavy = family.make("heavy-slippery").unwrapped.model
    default = family.make("default").unwrapped.model
    np.testing.assert_allclose(heavy.body_mass[1:], 1.8 * default.body_mass[1:])
    np.testing.assert_allclose(heavy.geom_friction[0], 0.3 * default.geom_friction[0])
    np.testing.assert_array_equal(heavy.body_mass[0], default.body_mass[0])  # the world body stays massless


def test_report_renders_the_directory_of_a_family_registered_in_a_users_script(tmp_path):
    """The report needs no family: the manifest names the source tasks (the bug: `rltransfer report` exited
    2 on such a directory, where the family is unknown)."""
    import rltransfer
    from rltransfer.envs import register_family

    def build(params):
        env = gym.make("CartPole-v1")
        env.unwrapped.force_mag = params["force"]
        return env

    register_family(
        Family("script-push", [Parameter("force", 10.0, 2.0, 30.0)], build,
               {"weak": {"force": 6.0}, "default": {}, "strong": {"force": 20.0}}, ["weak", "default"], ["strong"]),
        overwrite=True,
    )  # fmt: skip
    cfg = {
        "name": "script",
        "output_dir": str(tmp_path / "runs"),
        "family": "script-push",
        **TINY,
        "runner": {"workers": 1},
    }
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    before = (res.run_dir / "report" / "summary.json").read_bytes()
    assert json.loads(before)["source_tasks"] == ["weak", "default"]
    done = run_cli("report", str(res.run_dir), cwd=tmp_path)  # a fresh process: the family is unknown there
    assert done.returncode == 0, done.stderr
    assert (res.run_dir / "report" / "summary.json").read_bytes() == before


def test_a_grid_validates_its_config_once_not_per_run(tmp_path, monkeypatch):
    """Validation builds envs (to read their spaces): once for the experiment, never again (its pre-training is
    handed the resolved Setup, and a grid's runs only resolve the config)."""
    import rltransfer
    from rltransfer import validation

    calls = []
    real = validation.check_hyperparam_values
    monkeypatch.setattr(validation, "check_hyperparam_values", lambda *a: calls.append(1) or real(*a))
    cfg = {"name": "once", "output_dir": str(tmp_path / "runs"), "family": "cartpole",
           "source_tasks": ["short", "long"], "target_tasks": ["very-long-heavy"], **TINY, "runner": {"workers": 1}}  # fmt: skip
    res = rltransfer.run_experiment(cfg, progress=False, echo=False)
    assert len(json.loads((res.run_dir / "report" / "summary.json").read_text())["rows"]) == 2
    assert len(calls) == 1  # the experiment; none for its pre-training or its 4 runs


def test_an_env_id_of_a_users_module_is_imported_as_gym_make_imports_it(tmp_path, monkeypatch):
    """``env_id: "module:EnvId"``, as ``gym.make`` takes it: the module registers the id when the family loads,
    in every process that builds the family (workers, a saved agent's evaluation), with nothing else imported."""
    (tmp_path / "my_registering_module.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('RltransferTestPole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',\n"
        "             max_episode_steps=60, reward_threshold=50.0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    family = declared_family(spec(name="pole-of-a-module", env_id="my_registering_module:RltransferTestPole-v0"))
    assert family.reward_threshold() == 50.0 and family.make("default").spec.max_episode_steps == 60
    assert (
        family.make("very-long-heavy").unwrapped.length
        == get_family("cartpole").make("very-long-heavy").unwrapped.length
    )
    with pytest.raises(TaskError, match=r"importing 'no_such_module' failed: ModuleNotFoundError"):
        declared_family(spec(name="pole-nowhere", env_id="no_such_module:RltransferTestPole-v0"))
    with pytest.raises(TaskError, match=r"'json:Pole-v9' is not a registered Gymnasium id \(importing 'json' did not"):
        declared_family(spec(name="pole-elsewhere", env_id="json:Pole-v9"))
    with pytest.raises(TaskError, match=r"write env_id as 'module:Pole-v9'"):
        declared_family(spec(name="pole-unregistered", env_id="Pole-v9"))


def test_a_publication_of_a_declared_family_re_renders_without_the_envs_package(tmp_path):
    """The cheetah publication predates the manifest's record of the source tasks: the report reads their order
    from the config's declaration of the family, and builds no env (MuJoCo hidden here, as where the extra is
    not installed); its report comes out as published."""
    import shutil

    published = ROOT / "docs" / "results" / "cheetah"
    copy = tmp_path / "cheetah"
    shutil.copytree(published, copy)
    script = "import sys; sys.modules['mujoco'] = None\nfrom rltransfer.cli import main\nsys.exit(main(['report', sys.argv[1]]))"
    res = subprocess.run([sys.executable, "-c", script, str(copy)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr  # was 2: "HalfCheetah-v5 needs a package that is not installed"
    assert (copy / "report.md").read_text() == (published / "report.md").read_text()


def test_a_wrong_key_in_a_declared_family_is_named_with_what_is_allowed_there(tmp_path, capsys):
    """Inside a family, in a file or inline in a config (``families[0].parameters.mass``), an unknown key gets
    the keys allowed at its place and the closest of them (it got "allowed keys here: ?", and from the CLI
    pydantic's "Extra inputs are not permitted")."""
    data = yaml.safe_load(DECLARED.read_text())
    data["env_kwargs"] = data.pop("kwargs", {})
    first = next(iter(data["parameters"]))
    data["parameters"][first]["attr"] = "x"
    (tmp_path / "fam.yaml").write_text(yaml.safe_dump(data))
    assert main(["families", str(tmp_path / "fam.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"invalid family file '{tmp_path / 'fam.yaml'}':" in err
    assert "key 'env_kwargs': unknown key (did you mean 'kwargs'?); allowed keys here: name, env_id, kwargs," in err
    assert f"key 'parameters.{first}.attr': unknown key; allowed keys here: default, low, high," in err
    with pytest.raises(ConfigError) as refused:
        load_config({"family": "cartpole-declared", "families": [data]})
    assert f"config key 'families[0].parameters.{first}.attr': unknown key; allowed keys here: default, low" in str(
        refused.value
    )
    assert "config key 'families[0].env_kwargs': unknown key (did you mean 'kwargs'?)" in str(refused.value)
