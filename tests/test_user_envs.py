"""A user's own environment: where its threshold comes from, episodes that never end, and the cached random
return following the env's code."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.baselines import env_fingerprint, random_return, threshold
from rltransfer.cli import main
from rltransfer.config import load_config
from rltransfer.envs import Family, Parameter, get_family, register_family
from rltransfer.errors import ConfigError, EndlessEpisode, UserInputError
from rltransfer.evaluation import run_episodes
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


def drift_family(
    name: str, limit: int | None = 50, scale: float = 1.0, threshold: float | None = None, env_class: type = Drift
) -> Family:
    """Three tasks (a, b sources; c the target) of ``env_class`` (Drift or a subclass), by their drift."""

    def build(p):
        env = env_class(p["drift"], scale) if env_class is Drift else env_class(p["drift"])
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
    import rltransfer.baselines as baselines
    import rltransfer.evaluation as evaluation

    family = drift_family("drift-endless", limit=None, threshold=-50.0)
    monkeypatch.setattr(baselines, "MAX_PARALLEL", 2)
    monkeypatch.setattr(evaluation, "MAX_EPISODE_STEPS", 500)
    with pytest.raises(EndlessEpisode, match="task 'a' of family 'drift-endless', a random policy"):
        random_return(family, family.task("a"), episodes=4, cache_dir=tmp_path)


def test_a_family_whose_random_episodes_never_end_is_refused_when_the_config_loads(tmp_path, monkeypatch):
    import rltransfer.envs.family as family_module

    monkeypatch.setattr(family_module, "MAX_EPISODE_STEPS", 300)
    drift_family("drift-endless-config", limit=None, threshold=-50.0)
    with pytest.raises(ConfigError, match=r"task 'a' of family 'drift-endless-config': a random policy's episode did"):
        validate(config("drift-endless-config", tmp_path))
    assert not (tmp_path / "runs").exists()
    drift_family("drift-ends-by-itself", limit=None, threshold=-50.0, env_class=EndsByItself)
    validate(config("drift-ends-by-itself", tmp_path))  # no time limit, but its episodes end (as MiniGrid's)


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


class EndsByItself(Drift):
    """Drift with no TimeLimit, whose episodes end on their own after 40 steps."""

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return super().reset(seed=seed)

    def step(self, action):
        self.t += 1
        obs, reward, _, _, info = super().step(action)
        return obs, reward, False, self.t >= 40, info


class DriftImage(Drift):
    """Drift seen as a channels-last RGB image (height, width, channels), as most pixel envs give it."""

    def __init__(self, drift: float = 0.1):
        super().__init__(drift)
        self.observation_space = spaces.Box(0, 255, (12, 10, 3), np.uint8)

    def _image(self, obs: np.ndarray) -> np.ndarray:
        image = np.zeros((12, 10, 3), np.uint8)
        image[:, min(int(abs(obs[0]) * 2), 9), 0] = 255
        image[0, 0, 1] = int(self.drift * 100)
        return image

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return self._image(obs), info

    def step(self, action):
        obs, *rest = super().step(action)
        return self._image(obs), *rest


def image_family(name: str) -> Family:
    return drift_family(name, limit=30, threshold=-10.0, env_class=DriftImage)


def test_rltransfer_turns_channels_last_images_as_sb3_would_so_that_sb3_never_has_to():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecTransposeImage

    from rltransfer.envs import MultiTaskVecEnv

    family = image_family("drift-image-spaces")
    raw = PPO("CnnPolicy", DummyVecEnv([lambda: family.make("a")]), n_steps=64, device="cpu", _init_setup_model=False)
    assert isinstance(raw.env, VecTransposeImage)  # SB3 transposes this space: so does rltransfer's agent_view
    env = MultiTaskVecEnv(family, [family.task("a"), family.task("b")], "context")
    model = PPO("MultiInputPolicy", env, n_steps=64, device="cpu", _init_setup_model=False)
    assert model.env is env and model.observation_space["obs"].shape == (3, 12, 10)
    obs = env.reset()["obs"]
    assert obs.shape == (2, 3, 12, 10) and obs[0, 0, :, :].max() == 255  # the red channel, first


@pytest.mark.parametrize("batch_seeds", [True, False])
def test_a_family_of_channels_last_images_pre_trains_transfers_and_its_agents_evaluate(
    tmp_path, batch_seeds, monkeypatch
):
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from rltransfer import run_experiment, wrap_target_env

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    family = image_family("drift-image")
    cfg = config("drift-image", tmp_path).to_dict()
    cfg["transfer"].update(strategies=["scratch", "finetune"], timesteps=192)
    cfg["runner"]["batch_seeds"] = batch_seeds
    result = run_experiment(cfg, progress=False, echo=False)
    assert not result.failed  # was: every run refused, its image (12, 10, 3) against the bundle's (3, 12, 10)
    model = PPO.load(result.run_dir / "runs/c/finetune/seed-0/model.zip", device="cpu")
    returns, lengths = evaluate_policy(
        model, wrap_target_env(model, Monitor(family.make("c"))), n_eval_episodes=2, return_episode_rewards=True
    )
    assert lengths == [30, 30]


@pytest.mark.parametrize(
    "observation_space", [spaces.Tuple((spaces.Box(-1, 1, (2,)), spaces.Discrete(2)))], ids=["Tuple"]
)  # a Dict of vectors and discrete values is read flattened: tests/test_dict_observations.py
def test_observations_a_bundle_cannot_hold_are_refused_with_the_wrapper_that_fixes_them(observation_space):
    class Observes(Drift):
        def __init__(self, drift):
            super().__init__(drift)
            self.observation_space = observation_space

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

    name = f"drift-observes-{type(observation_space).__name__}"
    drift_family(name, limit=30, threshold=-10.0, env_class=Observes)
    kind = type(observation_space).__name__
    with pytest.raises(
        ConfigError,
        match=rf"observes {kind} .*must be a Box, a Discrete, a MultiDiscrete or a MultiBinary.*FlattenObservation",
    ):
        validate(config(name, "/unused"))


class Reach(gym.Env):
    """Steer a point to 0; float64 observations (as MuJoCo's and many hand-written envs' are)."""

    def __init__(self, gain: float = 1.0, discrete: bool = False):
        self.gain = gain
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Discrete(3) if discrete else spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-3, 3)
        return np.array([self.x, self.gain]), {}

    def step(self, action):
        push = float(action) - 1.0 if isinstance(self.action_space, spaces.Discrete) else float(action[0])
        self.x += 0.1 * self.gain * push
        return np.array([self.x, self.gain]), -abs(self.x), False, False, {}


@pytest.mark.parametrize(("algo", "batch_seeds"), [("sac", True), ("sac", False), ("dqn", True)])
def test_float64_observations_pre_train_and_transfer_with_the_off_policy_algorithms(
    tmp_path, algo, batch_seeds, monkeypatch
):
    from rltransfer import run_experiment

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    register_family(
        Family(
            name=f"reach-{algo}", parameters=[Parameter("gain", default=1.0, low=0.2, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(Reach(p["gain"], algo == "dqn"), max_episode_steps=20),
            tasks={"a": {"gain": 0.5}, "b": {"gain": 1.5}, "c": {"gain": 2.5}}, source=["a", "b"], targets=["c"],
            reward_threshold=-5.0,
        ),
        overwrite=True,
    )  # fmt: skip
    cfg = {
        "name": f"reach-{algo}", "family": f"reach-{algo}", "output_dir": str(tmp_path / "runs"),
        "agent": {"algo": algo, "hyperparams": {"learning_starts": 50, "batch_size": 32}},
        "pretrain": {"timesteps": 120}, "transfer": {"timesteps": 100, "seeds": 1, "strategies": ["scratch", "finetune"]},
        "evaluation": {"every": 50, "episodes": 2}, "runner": {"workers": 1, "batch_seeds": batch_seeds},
    }  # fmt: skip
    result = run_experiment(cfg, progress=False, echo=False)
    assert not result.failed  # was: SAC's head mask float64 against float32 weights; then each run refused, its
    # context entry float32 against the bundle's float64


@pytest.mark.parametrize("seed", [-1, 2**40, 1.5, True, "3"])
def test_the_python_api_refuses_a_seed_numpy_would_refuse_or_take_silently(seed, tmp_path):
    import rltransfer

    with pytest.raises(ConfigError, match=r"seed must be a whole number from 0 to 2147483647"):
        rltransfer.pretrain("configs/quickstart.yaml", seed=seed, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("seed", "timesteps"), [(-2, 1000), (0, 0), (0, 2.5), (0, float("inf")), (0, True)])
def test_transfer_refuses_a_bad_seed_or_budget_before_it_builds_anything(seed, timesteps, tmp_path):
    import rltransfer

    with pytest.raises(ConfigError, match=r"(seed|timesteps) must be a whole number"):
        rltransfer.transfer("configs/quickstart.yaml", tmp_path / "no-bundle", "medium", "scratch", seed, timesteps)


def test_transfer_takes_a_budget_as_sb3s_learn_does(tmp_path):
    """``learn(1e5)`` is how SB3's users write a budget; ``transfer(..., timesteps=1e5)`` was refused."""
    import rltransfer

    cfg = {"family": "cartpole", "source_tasks": ["short", "long"], "target_tasks": ["medium"], "output_dir": str(tmp_path),
           "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}, "pretrain": {"timesteps": 64, "envs_per_task": 1}}  # fmt: skip
    bundle = rltransfer.pretrain(cfg).bundle_path
    run = rltransfer.transfer(cfg, bundle, "medium", "finetune", timesteps=64.0, save=False)
    assert run.lineage.timesteps == 64 and isinstance(run.lineage.timesteps, int) and run.model.num_timesteps == 64


class Unseeded(Drift):
    """Drift whose reset draws from numpy's global generator, which ``reset(seed=...)`` does not seed."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(np.random.uniform(-1, 1))
        return np.array([self.x], np.float32), {}


def test_an_env_that_does_not_repeat_from_its_seed_is_warned_of_and_fails_its_check():
    from rltransfer.envs.checks import check_seeding
    from rltransfer.validation import measure_envs, unseeded_warning

    drift_family("drift-unseeded", limit=30, threshold=-10.0, env_class=Unseeded)
    warning = unseeded_warning(measure_envs(validate(config("drift-unseeded", "/unused"))))
    assert "task(s) a, b, c of family 'drift-unseeded' run differently from the same reset seed" in warning
    (check,) = check_seeding(get_family("drift-unseeded"))
    assert not check.ok and "self.np_random" in check.detail
    drift_family("drift-seeded", threshold=-10.0)
    assert unseeded_warning(measure_envs(validate(config("drift-seeded", "/unused")))) == ""
    assert check_seeding(get_family("drift-seeded"))[0].ok


def test_a_directory_where_another_config_finished_nothing_is_taken_by_the_next(tmp_path, monkeypatch):
    import rltransfer.experiment as experiment
    from rltransfer import run_experiment

    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    drift_family("drift-stops", limit=30, threshold=-10.0)
    cfg = config("drift-stops", tmp_path).to_dict()

    def stops(*args, **kwargs):
        raise RuntimeError("stopped before a pre-training finished")

    with monkeypatch.context() as patch:  # an error (or Ctrl-C) as the pre-training starts
        patch.setattr(experiment, "kept_bundles", stops)
        with pytest.raises(RuntimeError, match="stopped"):
            run_experiment(cfg, progress=False, echo=False)
    run_dir = tmp_path / "runs" / "drift-stops"
    assert (run_dir / "manifest.json").is_file() and not (run_dir / "pretrain" / "bundle").exists()
    result = run_experiment(cfg, ["transfer.timesteps=192"], progress=False, echo=False)  # another config's hash
    assert not result.failed and json.loads((run_dir / "manifest.json").read_text())["status"] == "done"
    with pytest.raises(UserInputError, match="holds results of a different config"):  # now it holds results
        run_experiment(cfg, ["transfer.timesteps=256"], progress=False, echo=False)


@pytest.mark.parametrize("given", ["config", "family"])
def test_a_threshold_not_above_the_random_return_is_refused_before_anything_is_written(given, tmp_path, capsys):
    """The score (R - R_random) / (threshold - R_random) would run backwards (a better agent scoring lower), or be
    undefined: refused before the pre-training, which used to run first (the targets' baselines came after it)."""
    name = f"drift-low-threshold-{given}"
    drift_family(name, threshold=-1000.0 if given == "family" else -10.0)
    cfg = config(name, tmp_path, thresholds={"c": -1000.0} if given == "config" else {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["experiment", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    owner = "the config's" if given == "config" else f"family '{name}''s"
    told = rf"config key 'evaluation.thresholds': task '{'c' if given == 'config' else 'a'}': its threshold -1000 \({owner}\)"
    assert re.search(told + r" is not above a random policy's mean return on it \(-\d+\.?\d*\)", err), err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()
