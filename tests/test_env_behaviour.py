"""An experiment keeps what its family's envs did (envs.json): an edited env of one's own is neither met with the
old env's results on a resume, nor handed them by another experiment under the same output_dir."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from test_user_envs import Drift

import rltransfer
from rltransfer.config import load_config
from rltransfer.envs import Family, Parameter, register_family
from rltransfer.errors import UserInputError
from rltransfer.records.env_behaviour import ENVS_FILE, EnvBehaviour
from rltransfer.validation import measure_envs, validate


class Walk(Drift):
    """Drift (a point pushed on a line, rewarded times ``scale`` for staying near 0) seen within ``high``."""

    def __init__(self, drift: float, scale: float, high: float = 10.0):
        super().__init__(drift, scale)
        self.observation_space = spaces.Box(-high, high, (1,), np.float32)


def walk_family(scale: float = 1.0, limit: int = 40, high: float = 10.0, drift_high: float = 0.3) -> Family:
    """The family ``walk`` as a user edits it: another reward scale, time limit, space or parameter range."""

    def build(p):
        return gym.wrappers.TimeLimit(Walk(p["drift"], scale, high), max_episode_steps=limit)

    return register_family(
        Family(
            name="walk", parameters=[Parameter("drift", default=0.1, low=0.0, high=drift_high)], build=build,
            tasks={"a": {"drift": 0.05}, "b": {"drift": 0.15}, "c": {"drift": 0.25}}, source=["a", "b"],
            targets=["c"], reward_threshold=-10.0,
        ),
        overwrite=True,
    )  # fmt: skip


def config(root, name="first", **transfer):
    return {
        "name": name, "family": "walk", "output_dir": str(root),
        "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
        "pretrain": {"timesteps": 128}, "transfer": {"timesteps": 128, "seeds": 2, "strategies": ["scratch"], **transfer},
        "evaluation": {"every": 64, "episodes": 2}, "runner": {"workers": 1},
    }  # fmt: skip


def measured(**edit) -> EnvBehaviour:
    walk_family(**edit)
    return measure_envs(validate(load_config(config("/unused"))))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    yield
    walk_family()


def test_the_same_env_measures_the_same_and_each_edit_is_named():
    now = measured()
    assert set(now.tasks) == {"a", "b", "c"} and now.parameters == {"drift": [0.1, 0.0, 0.3]}
    assert now.tasks["c"].time_limit == 40 and now.tasks["c"].params == {"drift": 0.25}
    assert len(now.tasks["c"].rewards) == 50 and not now.differences(measured())
    assert measured(scale=2.0).differences(now) == [
        "tasks 'a', 'b', 'c': rewards differ from step 0 of a seeded random rollout"
    ]
    assert measured(limit=30).differences(now) == ["tasks 'a', 'b', 'c': time limit 30, was 40"]
    (space,) = measured(high=5.0).differences(now)
    assert space.startswith("tasks 'a', 'b', 'c': observation space {") and space.index("[-5.0]") < space.index("was")
    (ranges,) = measured(drift_high=0.4).differences(now)
    assert ranges == "family 'walk', parameter 'drift': default and range [0.1, 0.0, 0.4], were [0.1, 0.0, 0.3]"


def test_rounding_apart_is_no_difference_and_a_task_only_one_side_met_is_none():
    """Another kind of CPU can round an env's physics a last digit apart: not an edit."""
    now = measured()
    data = now.to_json()
    data["tasks"]["c"]["observations"] = [[v * (1 + 1e-9) for v in row] for row in data["tasks"]["c"]["observations"]]
    assert not now.differences(EnvBehaviour.model_validate(data))
    data["tasks"]["c"]["observations"][7][0] += 1e-3
    assert now.differences(EnvBehaviour.model_validate(data)) == [
        "task 'c': observations differ from step 7 of a seeded random rollout"
    ]
    fewer = {**data, "tasks": {"a": now.to_json()["tasks"]["a"]}}
    assert not now.differences(EnvBehaviour.model_validate(fewer))
    assert set(EnvBehaviour.model_validate(fewer).merged(now).tasks) == {"a", "b", "c"}


def test_an_env_that_does_not_repeat_itself_keeps_no_rollout_to_compare():
    class Unseeded(Walk):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x = float(np.random.uniform(-1, 1))  # numpy's global generator: not the reset's seed
            return np.array([self.x], np.float32), {}

    walk_family()
    family = rltransfer.envs.get_family("walk")
    family.build = lambda p: gym.wrappers.TimeLimit(Unseeded(p["drift"], 1.0), max_episode_steps=40)
    now = measure_envs(validate(load_config(config("/unused"))))
    assert all(t.observations is None and t.rewards is None for t in now.tasks.values())
    assert not now.differences(now) and not measured().differences(now)  # the spaces and parameters agree


def test_a_resume_after_the_env_changed_is_refused_and_its_record_removed_takes_the_env_as_it_is(tmp_path):
    walk_family()
    rltransfer.run_experiment(config(tmp_path), progress=False, echo=False)
    run_dir = tmp_path / "first"
    assert EnvBehaviour.read(run_dir) == measured()
    walk_family(scale=2.0)
    with pytest.raises(UserInputError, match=r"holds results made with another env than family 'walk' makes now "
                       r"\(tasks 'a', 'b', 'c': rewards differ from step 0 .*remove '.*envs.json' to take it"):  # fmt: skip
        rltransfer.run_experiment(config(tmp_path), progress=False, echo=False)
    walk_family()  # the env as it was: the directory is its own again
    res = rltransfer.run_experiment(config(tmp_path, seeds=3), progress=False, echo=False)
    assert not res.failed
    walk_family(scale=2.0)
    (run_dir / ENVS_FILE).unlink()
    rltransfer.run_experiment(config(tmp_path), progress=False, echo=False)
    assert EnvBehaviour.read(run_dir) == measure_envs(validate(load_config(config(tmp_path))))


def test_another_experiment_copies_work_made_with_the_same_envs_only(tmp_path, capsys):
    walk_family()
    rltransfer.run_experiment(config(tmp_path), progress=False, echo=False)
    walk_family(scale=2.0)
    rltransfer.run_experiment(config(tmp_path, name="edited"), progress=False, echo=True)
    assert (
        "not copying from 'first': its envs did otherwise (tasks 'a', 'b', 'c': rewards differ"
        in capsys.readouterr().err
    )
    edited = tmp_path / "edited"
    assert not (edited / "pretrain" / "copied_from.json").exists()
    for seed in (0, 1):
        run = f"runs/c/scratch/seed-{seed}/result.json"
        result, before = (json.loads((tmp_path / name / run).read_text()) for name in ("edited", "first"))
        assert "copied_from" not in result
        assert result["curve"]["return"][0] == pytest.approx(2 * before["curve"]["return"][0])  # the edited reward
    walk_family()
    rltransfer.run_experiment(config(tmp_path, name="again"), progress=False, echo=False)
    again = tmp_path / "again"
    assert json.loads((again / "pretrain" / "copied_from.json").read_text())["copied_from"].endswith("first/pretrain")
    result = json.loads((again / "runs" / "c" / "scratch" / "seed-0" / "result.json").read_text())
    assert result["copied_from"]["run_dir"].endswith("first/runs/c/scratch/seed-0")


def test_a_publication_carries_what_its_envs_did_and_its_restored_experiment_refuses_an_edited_env(tmp_path):
    from rltransfer.reporting.publication import restore
    from rltransfer.reporting.publishing import publish

    walk_family()
    rltransfer.run_experiment(config(tmp_path / "runs"), progress=False, echo=False)
    publish(tmp_path / "runs" / "first", tmp_path / "published")
    recorded = (tmp_path / "runs" / "first" / ENVS_FILE).read_bytes()
    assert (tmp_path / "published" / ENVS_FILE).read_bytes() == recorded
    restored = restore(tmp_path / "published", tmp_path / "restored").run_dir
    assert (restored / ENVS_FILE).read_bytes() == recorded
    walk_family(scale=2.0)
    with pytest.raises(UserInputError, match="rewards differ from step 0"):
        rltransfer.run_experiment(config(tmp_path / "restored", seeds=3), progress=False, echo=False)
    walk_family()
    assert not rltransfer.run_experiment(config(tmp_path / "restored", seeds=3), progress=False, echo=False).failed
