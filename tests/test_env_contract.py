"""A user's env that returns what SB3 cannot take (a reward that is not one finite number, an observation not of
its space, an info that is not a dict) is told so, naming the task and the step: by ``rltransfer families
--check``, and when an experiment's config loads, before anything is written. Gymnasium's env checker only
warns of most of these; SB3 stopped on them with a traceback far from the env, or trained on other numbers."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces

from rltransfer.baselines import random_return
from rltransfer.cli import main
from rltransfer.envs import Family, Parameter, TaskError, get_family, register_family
from rltransfer.envs.behaviour import rollout
from rltransfer.envs.checks import check_family

GOOD = "good"
BROKEN = {
    "obs-shape": ("step 3 of a seeded random rollout returned an observation of shape (3,), where its "
                  "observation_space is Box(-10.0, 10.0, (2,), float32)"),
    "obs-nan": "step 3 of a seeded random rollout returned a non-finite observation [nan, 0.0]",
    "reset-shape": "reset(seed=0) returned an observation of shape (), where",
    "reward-array": ("step 3 of a seeded random rollout returned a reward of type ndarray of shape (1,) "
                     "(array([-0.1])), where a step's reward is one number"),
    "reward-none": "step 3 of a seeded random rollout returned a reward of type NoneType (None), where",
    "reward-inf": "step 3 of a seeded random rollout returned a non-finite reward (-inf)",
    "reset-old": "reset(seed=0) returned a ndarray, where Gymnasium's API returns (observation, info) (gym's old API?)",
    "step-old": ("step 3 of a seeded random rollout returned a tuple of 4, where Gymnasium's API returns (observation, "
                 "reward, terminated, truncated, info) (gym's old API?)"),
    "info-none": "step 3 of a seeded random rollout returned an info of type NoneType, where Gymnasium's reset and",
    "step-raises": "step 3 of a seeded random rollout raised ZeroDivisionError: float division by zero (raised at ",
    "reset-raises": "reset(seed=0) raised RuntimeError: my rail has no start (raised at ",
}  # fmt: skip
"""How each way of breaking the step contract (:class:`Rail`'s ``fault``, on its third step) is told."""


class Rail(gym.Env):
    """A point on a rail, pushed left or right, rewarded for staying near 0; ``fault`` breaks its third step (or
    its reset) as named in :data:`BROKEN`, from ``from_step`` on (3: every episode's third step)."""

    def __init__(self, push: float = 0.2, fault: str = GOOD, from_step: int = 3):
        self.push, self.fault, self.from_step = push, fault, from_step
        self.observation_space = spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.total = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        obs = np.array([self.x, 0.0], np.float32)
        if self.fault == "reset-old":
            return obs
        if self.fault == "reset-raises":
            raise RuntimeError("my rail has no start")
        return (np.float32(self.x) if self.fault == "reset-shape" else obs), {}

    def step(self, action):
        self.x = float(np.clip(self.x + (self.push if action else -self.push), -10, 10))
        self.t += 1
        self.total += 1
        obs, reward, info = np.array([self.x, 0.0], np.float32), -0.1, {}
        if self.t == 3 and self.total >= self.from_step:
            if self.fault == "obs-shape":
                obs = np.array([self.x, 0.0, 0.0], np.float32)
            elif self.fault == "obs-nan":
                obs[0] = np.nan
            elif self.fault == "reward-array":
                reward = np.array([-0.1])
            elif self.fault == "reward-none":
                reward = None
            elif self.fault == "reward-inf":
                reward = -np.inf
            elif self.fault == "info-none":
                info = None
            elif self.fault == "step-old":
                return obs, reward, False, info
            elif self.fault == "step-raises":
                reward = 1.0 / 0.0
        return obs, reward, False, self.t >= 20, info


def rail_family(fault: str, from_step: int = 3) -> Family:
    name = f"rail-{fault}-{from_step}"
    return register_family(
        Family(
            name=name, parameters=[Parameter("push", default=0.2, low=0.1, high=0.4)],
            build=lambda p: Rail(p["push"], fault, from_step),
            tasks={"a": {"push": 0.15}, "b": {"push": 0.25}, "c": {"push": 0.35}}, source=["a", "b"],
            targets=["c"], reward_threshold=-1.0,
        ),
        overwrite=True,
    )  # fmt: skip


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_a_rollout_names_the_step_and_what_it_returned(fault):
    env = Rail(fault=fault)
    with pytest.raises(TaskError) as err:
        rollout(env)
    assert str(err.value).startswith(BROKEN[fault]), str(err.value)
    assert len(rollout(Rail()).rewards) == 50  # the good env's rollout goes through


@pytest.mark.parametrize(
    ("space", "obs", "told"),
    [
        (spaces.Discrete(4), np.int64(4), "outside its observation_space Discrete(4) (values 0 to n - 1)"),
        (spaces.Discrete(4), np.array([1, 2]), "an observation [1, 2], where its observation_space is Discrete(4)"),
        (spaces.MultiDiscrete([2, 3]), np.array([1, 3]), "outside its observation_space MultiDiscrete([2 3])"),
        (spaces.MultiDiscrete([2, 3]), np.array([0.5, 1]), "outside its observation_space"),
        (spaces.MultiBinary(3), np.array([1, 0]), "an observation of shape (2,), where its observation_space"),
    ],
)
def test_a_discrete_observation_outside_its_space_is_told(space, obs, told):
    from rltransfer.envs.behaviour import observation_problem

    assert told in observation_problem(space, obs)
    assert observation_problem(space, space.sample()) is None


def test_what_sb3_takes_as_it_is_passes():
    """A value past a Box's bounds, an observation of another dtype or a list, an int or numpy reward: SB3 takes
    them (Gymnasium's checker warns), and so does rltransfer."""
    from rltransfer.envs.behaviour import observation_problem, reward_problem

    box = spaces.Box(-1, 1, (2,), np.float32)
    for obs in (np.array([5.0, -5.0]), np.array([0, 1], np.int64), [0.5, 0.5]):
        assert observation_problem(box, obs) is None
    for reward in (1, np.float32(0.5), np.array(2.0), np.int64(3), True):
        assert reward_problem(reward) is None


@pytest.mark.parametrize("fault", ["obs-shape", "reward-array", "step-old", "step-raises"])
def test_families_check_fails_the_steps_and_still_reports(fault, capsys):
    """The checks that roll the envs out again (a random episode to its end, the seeded repeats) are not run:
    each would meet the same fault (an old API's step of 4 values stopped the episodes-end check's unpacking
    with a traceback)."""
    checks = {c.name: c for c in check_family(rail_family(fault))}
    assert not checks["steps"].ok
    assert checks["steps"].detail.startswith(f"task 'a' of family 'rail-{fault}-3': {BROKEN[fault]}")
    assert "seeded" not in checks and "episodes end" not in checks
    assert checks["spaces"].ok
    assert main(["families", f"rail-{fault}-3", "--check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL steps: task 'a'" in out and "1 check(s) failed" in out
    good = {c.name: c for c in check_family(rail_family(GOOD))}
    assert all(c.ok for c in good.values()) and "seeded" in good and good["steps"].detail.startswith("every task's")


def refused(config: dict, tmp_path, capsys) -> str:
    """``rltransfer experiment`` of ``config`` (its output under ``tmp_path``): refused with exit 2, no traceback,
    nothing written; what it said."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**config, "output_dir": str(tmp_path / "runs")}))
    assert main(["experiment", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()
    return err


@pytest.mark.parametrize("fault", ["obs-shape", "reward-inf", "info-none", "step-old", "step-raises", "reset-raises"])
def test_an_experiment_of_a_broken_env_is_refused_before_anything_is_written(fault, tmp_path, capsys):
    rail_family(fault)
    config = {
        "name": "rail", "family": f"rail-{fault}-3",
        "agent": {"hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}}, "pretrain": {"timesteps": 128},
        "transfer": {"timesteps": 128, "seeds": 1, "strategies": ["scratch"]},
        "evaluation": {"every": 64, "episodes": 2}, "runner": {"workers": 1},
    }  # fmt: skip
    err = refused(config, tmp_path, capsys)
    assert f"rltransfer: error: config key 'family': task 'a' of family 'rail-{fault}-3': {BROKEN[fault]}" in err


def test_a_random_return_of_a_late_non_finite_reward_names_the_task_and_is_not_cached(tmp_path):
    """A reward that turns infinite past the checks' short rollouts of 50 steps (here at the 4th episode's 3rd
    step of each env: its 63rd) stops the random baseline (32 envs side by side, 4 episodes each), which would
    otherwise score every run with it."""
    family = rail_family("reward-inf", from_step=55)
    assert len(rollout(family.make(family.task("a"))).rewards) == 50
    with pytest.raises(TaskError, match=r"task 'a' of family 'rail-reward-inf-55', a random policy: an episode's "):
        random_return(family, family.task("a"), episodes=128, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def refuses_a_strong_push(p):
    if p["push"] > 0.3:
        raise ValueError(f"push {p['push']} is more than my rail takes")
    return Rail(p["push"])


def fragile_family(name: str, target_push: float, threshold: float | None = -1.0) -> Family:
    """A rail family whose build refuses a push above 0.3, the range reaching 0.4; its target pushes ``target_push``
    (``threshold`` None: the family has none, and the env is asked for its spec's)."""
    return register_family(
        Family(
            name=name, parameters=[Parameter("push", default=0.2, low=0.1, high=0.4)], build=refuses_a_strong_push,
            tasks={"a": {"push": 0.15}, "b": {"push": 0.25}, "c": {"push": target_push}}, source=["a", "b"],
            targets=["c"], reward_threshold=threshold,
        ),
        overwrite=True,
    )  # fmt: skip


def test_a_task_whose_env_does_not_build_is_told_in_the_envs_words_where_it_was_raised(tmp_path, capsys):
    fragile_family("rail-fragile", 0.35)
    told = (
        f"task 'c' of family 'rail-fragile' (push=0.35) could not be built: ValueError: push 0.35 is more than my "
        f"rail takes (raised at {__file__}:"
    )
    (check,) = check_family(get_family("rail-fragile"))  # no other check: each would build the task again
    assert check.name == "builds" and not check.ok and check.detail.startswith(told), check.detail
    assert main(["families", "rail-fragile", "--check"]) == 1
    err = refused({"name": "fragile", "family": "rail-fragile"}, tmp_path, capsys)
    assert f"rltransfer: error: config keys 'source_tasks'/'target_tasks': {told}" in err


class DuckRail:
    """A rail with reset and step but no gymnasium.Env behind it."""

    def __init__(self, push: float):
        self.rail = Rail(push)
        self.observation_space, self.action_space = self.rail.observation_space, self.rail.action_space

    def reset(self, *, seed=None, options=None):
        return self.rail.reset(seed=seed, options=options)

    def step(self, action):
        return self.rail.step(action)


@pytest.mark.parametrize("built", [DuckRail, lambda push: gym.vector.SyncVectorEnv([lambda: Rail(push)] * 2)])
def test_a_build_that_returns_no_gymnasium_env_is_told_so(built, tmp_path, capsys):
    """SB3's vector envs refuse anything but a gymnasium.Env (or an old gym env they convert); the checks read
    ``env.spec`` or call ``close``, and stopped with an AttributeError's traceback."""
    register_family(
        Family(
            name="rail-duck", parameters=[Parameter("push", default=0.2, low=0.1, high=0.4)],
            build=lambda p: built(p["push"]), tasks={"a": {"push": 0.15}, "b": {"push": 0.25}, "c": {"push": 0.35}},
            source=["a", "b"], targets=["c"], reward_threshold=-1.0,
        ),
        overwrite=True,
    )  # fmt: skip
    (check,) = check_family(get_family("rail-duck"))
    assert not check.ok and check.detail.startswith("task 'a' of family 'rail-duck' (push=0.15): its build returned a ")
    assert "not a gymnasium.Env; SB3's vector envs and Gymnasium's wrappers take only those" in check.detail
    err = refused({"name": "duck", "family": "rail-duck"}, tmp_path, capsys)
    assert f"rltransfer: error: config keys 'source_tasks'/'target_tasks': {check.detail}" in err


def test_a_parameter_whose_far_end_breaks_the_env_fails_its_check_in_the_envs_words():
    """No task pushes harder than 0.3, but the range reaches 0.4: the parameter check builds it there."""
    fragile_family("rail-range", 0.3)
    checks = {c.name: c for c in check_family(get_family("rail-range"))}
    assert checks["builds"].ok and checks["steps"].ok and checks["seeded"].ok
    told = f"0.2 -> 0.4: ValueError: push 0.4 is more than my rail takes (raised at {__file__}:"
    assert not checks["parameter push"].ok and checks["parameter push"].detail.startswith(told)


def test_a_task_that_does_not_build_is_told_before_its_threshold_is_asked_of_its_env():
    from rltransfer.config import load_config
    from rltransfer.errors import ConfigError
    from rltransfer.validation import validate

    fragile_family("rail-fragile-unthresholded", 0.35, threshold=None)
    with pytest.raises(ConfigError, match=r"task 'c' of family 'rail-fragile-unthresholded' \(push=0.35\) could not"):
        validate(load_config({"name": "fragile", "family": "rail-fragile-unthresholded"}))


class MyNormalize(gym.wrappers.NormalizeObservation):
    """A user's own NormalizeObservation."""


def normalised_rail(wrapper: str, frozen: bool = False) -> Family:
    """The rail in a build that adds Gymnasium's NormalizeObservation or NormalizeReward, or :class:`MyNormalize`
    (its statistics frozen: ``update_running_mean`` off)."""

    def build(p):
        env = getattr(gym.wrappers, wrapper, MyNormalize)(gym.wrappers.TimeLimit(Rail(p["push"]), 20))
        env.update_running_mean = not frozen
        return env

    return register_family(
        Family(
            name=f"rail-{wrapper}-{frozen}", parameters=[Parameter("push", default=0.2, low=0.1, high=0.4)],
            build=build, tasks={"a": {"push": 0.15}, "b": {"push": 0.25}, "c": {"push": 0.35}}, source=["a", "b"],
            targets=["c"], reward_threshold=-1.0,
        ),
        overwrite=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "wrapper,does",
    [
        ("NormalizeObservation", ("normalises its observations with running statistics", "evaluated on other inputs")),
        ("NormalizeReward", ("scales its rewards by a running estimate", "scores would be of a reward whose scale")),
        ("MyNormalize", ("normalises its observations with running statistics", "evaluated on other inputs")),
    ],
)
def test_an_env_that_normalises_with_running_statistics_is_refused_with_agent_normalize_as_the_fix(
    wrapper, does, tmp_path, capsys
):
    """Each env rltransfer builds would keep statistics of its own (a run's, its evaluation's); the "seeded"
    check took it for an unseeded generator ("draw every random number from self.np_random")."""
    family = normalised_rail(wrapper)
    told = rf"task 'a' of family '{family.name}': its env {does[0]}.* \({wrapper} in the family's build\).*{does[1]}.*agent.normalize: true"  # fmt: skip
    checks = {c.name: c for c in check_family(family)}
    assert not checks["wrappers"].ok and re.search(told, checks["wrappers"].detail)
    assert "seeded" not in checks  # it would fail for the same reason, told as another
    err = refused({"family": family.name}, tmp_path, capsys)
    assert re.search(r"rltransfer: error: config key 'family': " + told, err)
    frozen = {c.name: c for c in check_family(normalised_rail(wrapper, frozen=True))}
    assert frozen["wrappers"].ok and frozen["seeded"].ok  # fixed statistics: the env repeats itself
