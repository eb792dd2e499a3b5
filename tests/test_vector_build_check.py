"""``rltransfer families --check`` compares a family's vector build with the family's own envs stepped one by one
(the same parameters, reset seeds and seeded random actions): a user's vector build that gives other results (a
parameter it ignores, a start drawn from another stream) fails its "vector build" check, naming the task, the
result and the step, where it would have trained every run on other dynamics than the family's envs have."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces

from rltransfer.cli import main
from rltransfer.envs import Family, Parameter, get_family, register_family
from rltransfer.envs.cartpole import CARTPOLE, PARAMETERS, CartPoleVector
from rltransfer.envs.checks import check_family
from rltransfer.envs.vector import VectorPhysics
from rltransfer.envs.vector_check import check_vector_build


class FixedGravity(CartPoleVector):
    """Every cart on Earth, whatever its task's gravity."""

    def __init__(self, params):
        super().__init__([{**p, "gravity": 9.8} for p in params])


class OwnStream(CartPoleVector):
    """Starts drawn from a generator of its own, not the env's seeded one."""

    def _reset(self, index: np.ndarray) -> None:
        for i in index:
            self.state[i] = np.random.default_rng(1).uniform(low=-0.05, high=0.05, size=(4,))


class Breaks(CartPoleVector):
    def _step(self, actions):
        raise FloatingPointError("my physics overflowed")


def cartpole_with(vector: type[CartPoleVector], name: str) -> Family:
    return register_family(
        Family(
            name=name, parameters=PARAMETERS, build=CARTPOLE.build,
            tasks={"earth": {}, "moon": {"gravity": 2.5}, "long": {"length": 1.5}}, source=["earth", "long"],
            targets=["moon"], reward_threshold=195.0, vector=vector,
        ),
        overwrite=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("vector", "told"),
    [
        (FixedGravity, "task 'moon' (sub-env 1): its observation at step 1 differs from the family's env's"),
        (OwnStream, "task 'earth' (sub-env 0): its observation after the reset differs from the family's env's"),
        (Breaks, "step 1 raised FloatingPointError: my physics overflowed (raised at "),
    ],
)
def test_a_vector_build_that_differs_from_the_familys_envs_fails_its_check(vector, told, capsys):
    family = cartpole_with(vector, f"cartpole-{vector.__name__.lower()}")
    (check,) = check_vector_build(family)
    assert not check.ok and check.detail.startswith(told), check.detail
    assert main(["families", family.name, "--check"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL vector build: {told}" in out and "1 check(s) failed" in out  # every other check passes


def test_the_shipped_vector_builds_pass_and_a_family_without_one_has_no_such_check():
    checks = {c.name: c for c in check_family(cartpole_with(CartPoleVector, "cartpole-own-vector"))}
    assert checks["vector build"].ok, checks["vector build"].detail
    ended = int(re.search(r"(\d+) episodes ended", checks["vector build"].detail).group(1))
    assert ended > 100  # episodes ended and restarted from each env's own stream
    assert check_vector_build(cartpole_with(None, "cartpole-no-vector")) == []


class Drift(gym.Env):
    """A point pushed left or right, each push weaker as its episode goes on (by the episode's step count)."""

    def __init__(self, push: float):
        self.push = push
        self.observation_space = spaces.Box(-100.0, 100.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v, self.t = self.np_random.uniform(-1.0, 1.0), 0.0, 0
        return np.array([self.x, self.v], np.float32), {}

    def step(self, action):
        self.t += 1
        self.v = self.v + (self.push if action == 1 else -self.push) / self.t
        self.x = self.x + 0.1 * self.v
        return np.array([self.x, self.v], np.float32), -abs(self.x), bool(abs(self.x) > 2.0), False, {}


class DriftVector(VectorPhysics):
    """Drift as arrays, its step counts ``t`` a per-env array that ``_step`` reads and replaces."""

    max_episode_steps = 40
    state_fields = ("state", "t")

    def __init__(self, params):
        super().__init__(params)
        self.state, self.t = np.zeros((self.n, 2)), np.zeros(self.n)

    def _reset(self, index):
        for i in index:
            self.state[i] = (self.rngs[i].uniform(-1.0, 1.0), 0.0)
            self.t[i] = 0

    def _step(self, actions):
        x, v = self.state.T
        self.t = self.t + 1
        v = v + np.where(actions == 1, self.params["push"], -self.params["push"]) / self.t
        x = x + 0.1 * v
        self.state = np.stack((x, v), axis=1)
        return -np.abs(x), np.abs(x) > 2.0

    def _obs(self):
        return self.state.astype(np.float32)


class ForgetsItsCounts(DriftVector):
    """The step counts left out of ``state_fields``: alone it steps right, with other seeds' builds it does not."""

    state_fields = ("state",)


def drift_family(vector: type[VectorPhysics]) -> Family:
    return register_family(
        Family(
            name=f"drift-{vector.__name__.lower()}", parameters=[Parameter("push", 0.5, 0.1, 1.0)],
            build=lambda p: gym.wrappers.TimeLimit(Drift(p["push"]), 40), vector=vector,
            tasks={"weak": {"push": 0.2}, "mid": {}, "strong": {"push": 0.9}}, source=["weak", "strong"],
            targets=["mid"], reward_threshold=-10.0,
        ),
        overwrite=True,
    )  # fmt: skip


def test_a_vector_build_that_steps_right_alone_but_not_in_a_batch_of_seeds_fails_its_check():
    """A batch of seeds steps its seeds' builds as one (one ``_step`` over all their envs): a per-env array left
    out of ``state_fields`` is not handed over, and the batched runs trained on other dynamics."""
    (check,) = check_vector_build(drift_family(DriftVector))
    assert check.ok, check.detail
    (check,) = check_vector_build(drift_family(ForgetsItsCounts))
    told = "stepped with other seeds' builds (their physics stepped as one, as a batch of seeds steps them), task '"
    assert not check.ok and check.detail.startswith(told), check.detail
    assert "state_fields name every per-env array _step reads and replaces" in check.detail


@pytest.mark.parametrize("vector", [ForgetsItsCounts, DriftVector])
def test_an_experiment_over_a_vector_build_of_ones_own_checks_it_first(vector, tmp_path, capsys):
    """Refused before anything is written (exit 2): every run would step the envs with it."""
    family = drift_family(vector)
    config = {
        "name": "drift", "family": family.name, "output_dir": str(tmp_path / "runs"),
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}, "pretrain": {"timesteps": 64},
        "transfer": {"timesteps": 64, "seeds": 1, "strategies": ["scratch"]}, "evaluation": {"every": 32, "episodes": 1},
        "runner": {"workers": 1},
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["experiment", str(path), "--no-progress"])
    err = capsys.readouterr().err
    if vector is DriftVector:
        assert code == 0, err
        return
    assert code == 2 and "Traceback" not in err and not (tmp_path / "runs").exists()
    told = f"rltransfer: error: config key 'family': family '{family.name}''s vector build: stepped with other seeds'"
    assert told in err


def test_rltransfers_own_pairs_of_build_and_vector_build_are_not_checked_again(monkeypatch):
    from rltransfer.errors import ConfigError
    from rltransfer.validation import check_own_vector_build

    def not_again(family):
        raise AssertionError(f"checked {family.name}")

    with pytest.raises(ConfigError, match=r"'cartpole-breaks-its-own''s vector build: step 1 raised FloatingPoint"):
        check_own_vector_build(cartpole_with(Breaks, "cartpole-breaks-its-own"))  # a vector build of one's own
    monkeypatch.setattr("rltransfer.envs.vector_check.check_vector_build", not_again)
    check_own_vector_build(get_family("cartpole"))
    check_own_vector_build(cartpole_with(CartPoleVector, "cartpole-shipped-pair"))
    with pytest.raises(AssertionError, match="checked drift"):
        check_own_vector_build(drift_family(DriftVector))


class WontBuild(CartPoleVector):
    def __init__(self, params):
        raise ValueError("my vector build takes no heavy poles")


def test_a_vector_build_that_does_not_build_fails_its_check_in_its_own_words():
    (check,) = check_vector_build(cartpole_with(WontBuild, "cartpole-wontbuild"))
    told = "building it raised ValueError: my vector build takes no heavy poles (raised at "
    assert not check.ok and check.detail.startswith(told), check.detail
