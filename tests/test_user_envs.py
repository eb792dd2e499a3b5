"""A user's own environment: where its threshold comes from, episodes that never end, and the cached random
return following the env's code."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.cli import main
from rltransfer.config import load_config
from rltransfer.envs import Family, Parameter, register_family
from rltransfer.errors import ConfigError, EndlessEpisode
from rltransfer.evaluation import env_fingerprint, random_return, run_episodes, threshold
from rltransfer.validation import validate


class Drift(gym.Env):
    """A point pushed left or right on a line, drifting; rewarded for staying near 0. Its episodes never end."""

    def __init__(self, drift: float = 0.1, scale: float = 1.0):
        self.drift, self.scale = drift, scale
        self.observation_space = spaces.Box(-10, 10, (1,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1, 1))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + self.drift + (0.2 if action else -0.2), -10, 10))
        return np.array([self.x], np.float32), -self.scale * abs(self.x), False, False, {}


def drift_family(name: str, limit: int | None = 50, scale: float = 1.0, threshold: float | None = None) -> Family:
    def build(p):
        env = Drift(p["drift"], scale)
        return gym.wrappers.TimeLimit(env, max_episode_steps=limit) if limit else env

    return register_family(
        Family(
            name=name, parameters=[Parameter("drift", default=0.1, low=0.0, high=0.3)], build=build,
            tasks={"a": {"drift": 0.05}, "b": {"drift": 0.15}, "c": {"drift": 0.25}}, source=["a", "b"],
            targets=["c"], reward_threshold=threshold,
        ),
        overwrite=True,
    )  # fmt: skip


def config(family: str, tmp_path, **evaluation):
    return load_config({
        "name": family, "family": family, "output_dir": f"{tmp_path}/runs",
        "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
        "pretrain": {"timesteps": 128}, "transfer": {"timesteps": 128, "seeds": 1, "strategies": ["scratch"]},
        "evaluation": {"every": 64, "episodes": 2, **evaluation}, "runner": {"workers": 1},
    })  # fmt: skip


def test_a_threshold_the_config_gives_is_used_without_asking_the_env():
    family = drift_family("drift-no-threshold")
    cfg = config("drift-no-threshold", "/unused", thresholds={"a": -50, "b": -40, "c": -30})
    validate(cfg)  # refused before: the family was asked for its threshold even where the config gives one
    assert threshold(family, family.task("c"), cfg.evaluation.thresholds) == -30.0


def test_a_task_without_a_threshold_is_refused_before_the_experiment_writes_anything(tmp_path, capsys):
    drift_family("drift-no-threshold")
    with pytest.raises(ConfigError, match=r"evaluation.thresholds.*no return threshold for task 'c'"):
        validate(config("drift-no-threshold", tmp_path, thresholds={"a": -50, "b": -40}))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config("drift-no-threshold", tmp_path).to_dict()))
    assert main(["experiment", str(path), "--no-progress"]) == 2
    assert "no return threshold for task 'a'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # was: the run directory made, then the error


def test_a_threshold_for_a_task_of_neither_the_experiment_nor_the_family_is_refused():
    drift_family("drift-typo", threshold=-50.0)
    with pytest.raises(ConfigError, match=r"'cc' is not a task of this experiment or of family 'drift-typo'"):
        validate(config("drift-typo", "/unused", thresholds={"cc": -10}))


def test_an_episode_that_never_ends_is_an_error_not_a_return_cut_off_anywhere():
    endless = DummyVecEnv([lambda: Drift()])
    with pytest.raises(EndlessEpisode, match="did not end in 1,000 steps.*TimeLimit"):
        run_episodes(endless, lambda obs: np.zeros(1, dtype=int), 2, 0, max_steps=1000)
    limited = DummyVecEnv([lambda: gym.wrappers.TimeLimit(Drift(), max_episode_steps=20)])
    assert len(run_episodes(limited, lambda obs: np.zeros(1, dtype=int), 2, 0, max_steps=1000)) == 2


def test_a_random_baseline_of_an_endless_env_names_the_task(tmp_path, monkeypatch):
    import rltransfer.evaluation as evaluation

    family = drift_family("drift-endless", limit=None, threshold=-50.0)
    monkeypatch.setattr(evaluation, "MAX_PARALLEL", 2)
    monkeypatch.setattr(evaluation, "MAX_EPISODE_STEPS", 500)
    with pytest.raises(EndlessEpisode, match="task 'a' of family 'drift-endless', a random policy"):
        random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path)


def test_the_cached_random_return_is_measured_again_when_the_env_changes(tmp_path):
    family = drift_family("drift-edited", threshold=-50.0)
    first = random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path)
    assert random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path) == first
    assert len(list((tmp_path / "random_returns").iterdir())) == 1  # the second call read the cache
    family = drift_family("drift-edited", scale=2.0, threshold=-50.0)  # the same name and task, edited rewards
    assert random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path) == pytest.approx(2 * first)
    family = drift_family("drift-edited", limit=80, threshold=-50.0)  # a longer time limit
    assert random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path) != first
    assert len(list((tmp_path / "random_returns").iterdir())) == 3


def test_an_envs_fingerprint_is_the_same_for_every_build_of_it():
    family = drift_family("drift-fingerprint", threshold=-50.0)
    assert env_fingerprint(family.make("a")) == env_fingerprint(family.make("a"))
    assert env_fingerprint(family.make("a")) != env_fingerprint(family.make("b"))
    assert env_fingerprint(gym.make("CartPole-v1")) == env_fingerprint(gym.make("CartPole-v1"))


def test_sb3s_evaluate_policy_under_the_episode_limit_stops_on_an_endless_env_and_changes_nothing_else():
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    from rltransfer.evaluation import EpisodeLimit

    def limited():
        env = DummyVecEnv([lambda: gym.wrappers.TimeLimit(Drift(), max_episode_steps=30)])
        env.seed(0)
        return env

    model = PPO("MlpPolicy", limited(), n_steps=64, batch_size=64, seed=0, device="cpu")
    plain = evaluate_policy(model, limited(), n_eval_episodes=3, return_episode_rewards=True)
    guarded = evaluate_policy(model, EpisodeLimit(limited(), 1000), n_eval_episodes=3, return_episode_rewards=True)
    assert guarded == plain and guarded[1] == [30, 30, 30]
    with pytest.raises(EndlessEpisode, match="did not end in 1,000 steps"):
        evaluate_policy(model, EpisodeLimit(DummyVecEnv([lambda: Drift()]), 1000), n_eval_episodes=1)


def test_families_check_fails_a_family_whose_episodes_never_end():
    from rltransfer.envs.checks import check_episodes_end

    (endless,) = check_episodes_end(drift_family("drift-check-endless", limit=None), limit=1000)
    assert not endless.ok and "task 'a'" in endless.detail and "TimeLimit" in endless.detail
    (limited,) = check_episodes_end(drift_family("drift-check-limited", limit=40))
    assert limited.ok and limited.detail == "time limit 40 steps"
