"""MuJoCo's warnings, which it prints and logs to ``MUJOCO_LOG.TXT`` every time an env meets them, are given
once a process as Python warnings where rltransfer builds the env; a handler of one's own is left in place.

Each case runs in a fresh interpreter: MuJoCo's handler is global to a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

ROOT = Path(__file__).resolve().parents[1]

BALL = textwrap.dedent(
    """
    import gymnasium as gym
    import mujoco
    import numpy as np
    from gymnasium import spaces

    from rltransfer.envs import Family, Parameter

    MODEL = '<mujoco><worldbody><body><freejoint/><geom size="0.1"/></body></worldbody></mujoco>'


    class Ball(gym.Env):
        # Building it steps a MuJoCo model from a NaN velocity: MuJoCo warns, in the same words every time.
        observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
        action_space = spaces.Discrete(2)

        def __init__(self, mass):
            model = mujoco.MjModel.from_xml_string(MODEL)
            model.body_mass[1] = mass
            data = mujoco.MjData(model)
            data.qvel[0] = float("nan")
            mujoco.mj_step(model, data)


    family = Family(
        name="ball", parameters=[Parameter("mass", 1.0, 0.5, 2.0)], build=lambda p: Ball(p["mass"]),
        tasks={"a": {"mass": 1.0}, "b": {"mass": 2.0}}, source=["a"], targets=["b"],
    )
    """
)

WORDS = "Nan, Inf or huge value in QVEL"


def _run(script: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *flags, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )


def test_a_warning_met_by_every_env_built_is_given_once_and_logged_nowhere(tmp_path):
    out = _run(BALL + "for task in ['a', 'b', 'a', 'b']:\n    family.make(task)\nprint('built')\n", tmp_path)
    assert out.stdout.strip() == "built"
    assert out.stderr.count(WORDS) == 1, out.stderr
    assert "MuJoCoWarning" in out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_a_warning_can_be_silenced_as_any_python_warning(tmp_path):
    silence = (
        "import warnings\nfrom rltransfer.envs.mujoco_warnings import MuJoCoWarning\n"
        "warnings.filterwarnings('ignore', category=MuJoCoWarning)\n"
    )
    out = _run(BALL + silence + "family.make('a')\nfamily.make('b')\n", tmp_path)
    assert WORDS not in out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_warnings_made_errors_are_printed_not_raised_through_mujoco(tmp_path):
    out = _run(BALL + "family.make('a')\nfamily.make('b')\nprint('built')\n", tmp_path, "-W", "error")
    assert out.stdout.strip() == "built"
    assert out.stderr.count(f"WARNING: {WORDS}") == 1, out.stderr


def test_a_handler_of_ones_own_is_left_in_place(tmp_path):
    mine = "heard = []\nmujoco.set_mju_user_warning(heard.append)\n"
    build = "for task in ['a', 'b', 'a']:\n    family.make(task)\nprint(len(heard), heard[0][:30])\n"
    out = _run(BALL + mine + build, tmp_path)
    assert out.stdout.split(maxsplit=1) == ["3", WORDS[:30] + "\n"]
    assert WORDS not in out.stderr


def test_a_declared_mujoco_family_routes_them_before_its_first_env_is_built(tmp_path):
    pytest.importorskip("gymnasium.envs.mujoco.half_cheetah_v5")
    script = textwrap.dedent(
        f"""
        import yaml
        from rltransfer.envs.declared import declared_family
        from rltransfer.envs.mujoco_warnings import _warn

        spec = yaml.safe_load(open({str(ROOT / "configs/families/cheetah.yaml")!r}))
        family = declared_family(spec)  # builds a first env to check the declaration: MuJoCo is loaded by then
        import mujoco

        print(mujoco.get_mju_user_warning() is _warn)
        for task in ["default", "heavy", "mid"]:
            family.make(task).close()
        """
    )
    out = _run(script, tmp_path)
    assert out.stdout.strip() == "True"
    lines = [line for line in out.stderr.splitlines() if "MuJoCoWarning" in line]
    assert len(lines) == len(set(lines)), out.stderr  # each of its warnings once, whatever MuJoCo's version says
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
