"""Validation judges SB3's hyperparameter values as SB3 would, without building a model."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

import rltransfer
from rltransfer.agent_factory import resolve_hyperparams
from rltransfer.envs import get_family
from rltransfer.errors import ConfigError
from rltransfer.hyperparameters import algo_class
from rltransfer.validation import validate

FAMILY = {"ppo": "cartpole", "sac": "pendulum", "dqn": "cartpole"}

# Values SB3 takes or refuses when it builds the algorithm (each case one config's hyperparams).
CASES = {
    "ppo": [
        {}, {"n_steps": 64, "batch_size": 32, "n_epochs": 4}, {"learning_rate": "lin_0.001", "clip_range": "lin_0.2"},
        {"clip_range_vf": 0.2}, {"clip_range_vf": -0.1}, {"batch_size": 1}, {"n_steps": 1},
        {"batch_size": 0, "normalize_advantage": False}, {"n_steps": "x"}, {"n_steps": 1.5},
    ],
    "sac": [
        {}, {"ent_coef": "auto_0.1", "target_entropy": -2.0}, {"ent_coef": 0.05}, {"train_freq": [1, "episode"]},
        {"ent_coef": "auto_x"}, {"ent_coef": "auto_-1"}, {"ent_coef": "bad"}, {"target_entropy": "x"},
        {"train_freq": [1, "epi"]}, {"buffer_size": 1e6},
    ],
    "dqn": [
        {}, {"train_freq": [4, "step"], "exploration_fraction": 0.2}, {"train_freq": [4, "episodes"]},
        {"learning_rate": "lin_x"},
    ],
}  # fmt: skip

# Values SB3 takes when it is built and fails on in the middle of a run: refused by type.
LATE = {
    "ppo": [({"n_epochs": 2.5}, "n_epochs': PPO takes int, not 2.5"), ({"gamma": "0.9"}, "gamma': PPO takes float")],
    "sac": [({"gradient_steps": 1.5}, "gradient_steps': SAC takes int"), ({"tau": "0.01"}, "tau': SAC takes float")],
    "dqn": [({"exploration_fraction": "x"}, "exploration_fraction': DQN takes float")],
}


def _config(algo: str, hyperparams: dict):
    return rltransfer.load_config({"family": FAMILY[algo], "agent": {"algo": algo, "hyperparams": hyperparams}})


def _sb3_builds(algo: str, hyperparams: dict) -> bool:
    family = get_family(FAMILY[algo])
    env = DummyVecEnv([lambda: family.make(family.task(family.source_tasks[0]))])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            algo_class(algo)("MlpPolicy", env, device="cpu", **resolve_hyperparams(hyperparams))
        return True
    except (TypeError, ValueError, AssertionError, ZeroDivisionError):
        return False
    finally:
        env.close()


@pytest.mark.parametrize("algo", list(CASES))
def test_validation_refuses_exactly_what_sb3_refuses_when_it_builds(algo):
    verdicts = []
    for hyperparams in CASES[algo]:
        try:
            validate(_config(algo, hyperparams))
            valid = True
        except ConfigError as err:
            assert "agent.hyperparams" in str(err)
            valid = False
        verdicts.append(valid)
        assert valid == _sb3_builds(algo, hyperparams), hyperparams
    assert True in verdicts and False in verdicts  # both kinds were compared


@pytest.mark.parametrize("algo", list(LATE))
def test_values_sb3_would_fail_on_mid_run_are_refused_by_type(algo):
    for hyperparams, message in LATE[algo]:
        assert _sb3_builds(algo, hyperparams)  # SB3 builds it, and the run would fail later
        with pytest.raises(ConfigError, match=message):
            validate(_config(algo, hyperparams))


# Values SB3 builds and trains on, to no meaning (a discount above 1, a negative learning rate, no epochs):
# refused by range, with what is allowed; and the edges of each range, which are allowed.
NONSENSE = {
    "ppo": [
        ({"gamma": 1.5}, "gamma': must be in [0, 1], got 1.5"), ({"gae_lambda": -0.1}, "gae_lambda': must be in [0, 1]"),
        ({"learning_rate": 0.0}, "learning_rate': must be above 0"), ({"clip_range": 0}, "clip_range': must be above 0"),
        ({"n_epochs": 0}, "n_epochs': must be at least 1, got 0"), ({"ent_coef": float("nan")}, "ent_coef': must be a finite number"),
        ({"vf_coef": float("inf")}, "vf_coef': must be a finite number, got inf"), ({"max_grad_norm": -1.0}, "max_grad_norm': must be above 0"),
    ],
    "sac": [({"tau": 2.0}, "tau': must be in [0, 1]"), ({"ent_coef": -0.1}, "ent_coef': must be at least 0")],
    "dqn": [
        ({"exploration_final_eps": 1.5}, "exploration_final_eps': must be in [0, 1]"),
        ({"target_update_interval": 0}, "target_update_interval': must be at least 1"),
    ],
}  # fmt: skip
EDGES = {
    "ppo": {"gamma": 1.0, "gae_lambda": 0.0, "ent_coef": 0.0, "vf_coef": 0.0, "n_epochs": 1, "learning_rate": 1e-12},
    "sac": {"tau": 1.0, "gamma": 0.0, "learning_starts": 0},
    "dqn": {"exploration_initial_eps": 1.0, "exploration_final_eps": 0.0, "exploration_fraction": 1.0},
}


@pytest.mark.parametrize("algo", list(NONSENSE))
def test_numbers_sb3_trains_on_to_no_meaning_are_refused_by_range(algo):
    for hyperparams, message in NONSENSE[algo]:
        assert _sb3_builds(algo, hyperparams), hyperparams  # SB3 takes it
        with pytest.raises(ConfigError, match=re.escape(f"config key 'agent.hyperparams.{message}")):
            validate(_config(algo, hyperparams))
    validate(_config(algo, EDGES[algo]))  # every edge is allowed
    with pytest.raises(ConfigError, match=re.escape("gamma': must be in [0, 1], got 1.5")):
        validate(_config(algo, {"gamma": np.float32(1.5)}))  # a NumPy number from a script is judged too


def test_a_negative_learning_rate_is_refused_before_sb3_builds_its_optimizer():
    """SB3 refuses it only when it builds the policy's optimizer (torch's Adam), after validation passed it."""
    assert not _sb3_builds("ppo", {"learning_rate": -0.001})
    with pytest.raises(ConfigError, match=re.escape("agent.hyperparams.learning_rate': must be above 0, got -0.001")):
        validate(_config("ppo", {"learning_rate": -0.001}))


@pytest.mark.parametrize("algo", list(FAMILY))
def test_validation_builds_no_model_and_draws_no_random_number(algo, monkeypatch):
    def refuse(self):
        raise AssertionError("validation built an SB3 model")

    register = torch.nn.Module.register_parameter

    def meta_only(module, name, param):  # the encoder is checked on torch's meta device: no storage
        assert param is None or param.device.type == "meta", f"validation allocated {type(module).__name__}.{name}"
        register(module, name, param)

    monkeypatch.setattr(BaseAlgorithm, "_setup_model", refuse)
    monkeypatch.setattr(torch.nn.Module, "register_parameter", meta_only)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    validate(_config(algo, {}))
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.array_equal(numpy_state, np.random.get_state()[1])


@pytest.mark.parametrize(
    ("targets", "named"),
    [
        (["short"], "['short']"),
        ([{"length": 0.3}], "['length=0.3']"),
        (["medium", {"name": "again", "length": 0.3}], "['again']"),
    ],
)
def test_a_target_that_also_pre_trains_is_refused(targets, named):
    """A target is held out: one named as a source, or with a source's parameters under another name, is refused
    (it was trained on and reported as a transfer). Near it is allowed."""
    cfg = {"family": "cartpole", "source_tasks": ["short", "default"], "target_tasks": targets}
    with pytest.raises(ConfigError, match=re.escape(f"config key 'target_tasks': {named} also pre-train")):
        validate(rltransfer.load_config(cfg))
    validate(rltransfer.load_config({**cfg, "target_tasks": [{"length": 0.31}]}))


def test_a_strategy_named_twice_is_refused():
    cfg = {"family": "cartpole", "transfer": {"strategies": ["scratch", "finetune", "finetune"]}}
    with pytest.raises(ConfigError, match=r"'transfer.strategies': strategies repeat: \['finetune'\]"):
        validate(rltransfer.load_config(cfg))
