"""A config's SB3 hyperparameters (``agent.hyperparams``, ``pretrain.hyperparams``) checked against its algorithm:
the argument names, their types, their ranges, and the checks SB3 makes while it sets a model up, all before any
run; and the warning for a budget that ends before the algorithm's first update. :mod:`rltransfer.validation`
calls them where an experiment starts."""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any

from rltransfer.config import ExperimentConfig
from rltransfer.config_errors import sb3_hint
from rltransfer.envs import Family, Task
from rltransfer.errors import ConfigError, did_you_mean

# Keys that rltransfer sets itself and a config must not pass through agent.hyperparams.
_RESERVED = {"policy", "env", "policy_kwargs", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model"}


def algo_class(algo: str):
    """The SB3 algorithm class for ``agent.algo`` (SB3's own: its arguments are what a config may pass)."""
    from rltransfer.agents import ALGORITHMS  # SB3 and torch: only where a config is checked against them

    if algo not in ALGORITHMS:
        raise ConfigError(
            f"config key 'agent.algo': '{algo}' unknown{did_you_mean(algo, ALGORITHMS)}; "
            f"allowed: {', '.join(ALGORITHMS)}"
        )
    return ALGORITHMS[algo].base


RANGES: dict[str, tuple[float, float, str]] = {
    "gamma": (0.0, 1.0, "in [0, 1]"),
    "gae_lambda": (0.0, 1.0, "in [0, 1]"),
    "tau": (0.0, 1.0, "in [0, 1]"),
    "exploration_fraction": (0.0, 1.0, "in [0, 1]"),
    "exploration_initial_eps": (0.0, 1.0, "in [0, 1]"),
    "exploration_final_eps": (0.0, 1.0, "in [0, 1]"),
    "learning_rate": (math.ulp(0.0), math.inf, "above 0"),
    "clip_range": (math.ulp(0.0), math.inf, "above 0"),
    "clip_range_vf": (math.ulp(0.0), math.inf, "above 0 (or null: no clipping of the value)"),
    "target_kl": (math.ulp(0.0), math.inf, "above 0 (or null: no early stop)"),
    "max_grad_norm": (math.ulp(0.0), math.inf, "above 0"),
    "ent_coef": (0.0, math.inf, "at least 0"),
    "vf_coef": (0.0, math.inf, "at least 0"),
    "n_epochs": (1, math.inf, "at least 1"),
    "buffer_size": (1, math.inf, "at least 1"),
    "learning_starts": (0, math.inf, "at least 0"),
    "target_update_interval": (1, math.inf, "at least 1"),
}
"""The values an SB3 hyperparameter may take where SB3 takes any number and trains on nonsense (a discount
of 1.5, a negative learning rate, no epochs): low, high (both allowed) and how to say it."""


def _check_value(where: str, key: str, value: Any) -> None:
    """A hyperparameter's number: finite, and within :data:`RANGES` (strings, lists and null are judged
    against SB3's types and checks later)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # NumPy's numbers are Real too
        return
    if not math.isfinite(value):
        raise ConfigError(f"config key '{where}.{key}': must be a finite number, got {value}")
    if key in RANGES:
        low, high, allowed = RANGES[key]
        if not low <= float(value) <= high:
            raise ConfigError(f"config key '{where}.{key}': must be {allowed}, got {value}")


def check_hyperparams(config: ExperimentConfig) -> None:
    """Every ``agent.hyperparams`` key must be an argument of the SB3 algorithm, and its number a number
    the algorithm can train with (:data:`RANGES`)."""
    cls = algo_class(config.agent.algo)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in _RESERVED | {"self"}]
    for where, hyper in (
        ("agent.hyperparams", config.agent.hyperparams),
        ("pretrain.hyperparams", config.pretrain.hyperparams),
    ):
        for key, value in hyper.items():
            if key == "use_sde" and value:
                raise ConfigError(
                    f"config key '{where}.use_sde': gSDE is not supported by the multi-task heads; use false"
                )
            if key in ("learning_rate", "clip_range", "clip_range_vf") and isinstance(value, str):
                try:
                    ok = value.startswith("lin_") and float(value[4:]) > 0
                except ValueError:
                    ok = False
                if not ok:
                    raise ConfigError(
                        f"config key '{where}.{key}': '{value}' is not a number or a linear schedule like 'lin_0.001'"
                    )
            if key not in allowed:
                hint = did_you_mean(key, allowed) or sb3_hint(key)
                raise ConfigError(
                    f"config key '{where}.{key}': not a {cls.__name__} argument rltransfer passes on{hint}; "
                    f"allowed: {', '.join(allowed)}"
                )
            _check_value(where, key, value)


# The value checks SB3's setup (``_setup_model``) makes while it builds the policy and the buffers, which
# :func:`check_hyperparam_values` makes without building them. Restated from these methods of SB3 2.9.2
# (sha256 of ``inspect.getsource``); tests/test_sb3_copies.py fails when the installed SB3's differ.
SETUP_CHECKS_FROM = (
    "2.9.2",
    {
        "stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm._setup_model": "1bfc1e2ac80d7ca860ced58c737688f4df269446c86959d44ee1712fabd1ca36",
        "stable_baselines3.common.off_policy_algorithm.OffPolicyAlgorithm._setup_model": "d5de65cb8d9bfe04e4f4569d1ae28d2f87f4e7ca54faddeaf50575e1e789822c",
        "stable_baselines3.PPO._setup_model": "165f5575cd97df1bf59d9342aff6a18ca4d4ba89ad9fbd1ded49c30188479eeb",
        "stable_baselines3.SAC._setup_model": "8ca5725f1c3d28571abe3e90acda4f5ca2824e95592850b24dbc3173fb2e3e16",
        "stable_baselines3.DQN._setup_model": "0ada8eb0ee4ae4689db68f7a3065a89862787ea4b074d50f1461afed1ee1e09f",
    },
)


def _type_text(annotation) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("collections.abc.", "").replace("typing.", "")


def _check_types(cls, where: str, hyper: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Each value against the type SB3's signature gives its argument, strictly (no ``"64"`` for an int,
    no ``2.5`` for one either): SB3 takes many wrong types when it is built and fails on them mid-run."""
    from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, ValidationError

    params = inspect.signature(cls.__init__).parameters
    for key, value in hyper.items():
        annotation = params[key].annotation
        if annotation is inspect.Parameter.empty:
            continue
        try:
            TypeAdapter(annotation, config=ConfigDict(strict=True, arbitrary_types_allowed=True)).validate_python(value)
        except ValidationError:
            schedule = (
                " (or a linear schedule like 'lin_0.001')"
                if key in ("learning_rate", "clip_range", "clip_range_vf")
                else ""
            )
            raise ConfigError(
                f"config key '{where}.{key}': {cls.__name__} takes {_type_text(annotation)}{schedule}, not {given[key]!r}"
            ) from None
        except PydanticSchemaGenerationError:  # a type pydantic cannot check: SB3 judges the value below
            continue


def _setup_checks(model) -> None:
    """What SB3's ``_setup_model`` checks on the way to building the model (SETUP_CHECKS_FROM), without the
    model: its own schedule and ``train_freq`` conversions, then the few checks it makes inline."""
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.utils import FloatSchedule

    model._setup_lr_schedule()
    if isinstance(model, OffPolicyAlgorithm):
        model._convert_train_freq()
    if isinstance(model, PPO):
        FloatSchedule(model.clip_range)
        if isinstance(model.clip_range_vf, (float, int)):
            assert model.clip_range_vf > 0, "`clip_range_vf` must be positive, pass `None` to deactivate vf clipping"
    if isinstance(model, SAC):
        if model.target_entropy != "auto":
            float(model.target_entropy)
        if isinstance(model.ent_coef, str) and model.ent_coef.startswith("auto"):
            if "_" in model.ent_coef:
                assert float(model.ent_coef.split("_")[1]) > 0.0, "The initial value of ent_coef must be greater than 0"
        else:
            float(model.ent_coef)


def check_hyperparam_values(config: ExperimentConfig, family: Family, task: Task) -> None:
    """SB3 judges the hyperparameter values on one env of ``task``, and no model is built: each value
    against the type SB3 declares for it, then SB3's constructor without its model (its own checks of
    batch and buffer sizes) and the checks its setup makes (:func:`_setup_checks`). Wrong values are
    reported now, by key, instead of failing inside a run."""
    import warnings

    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltransfer.agent_factory import resolve_hyperparams
    from rltransfer.envs.images import agent_view

    cls = algo_class(config.agent.algo)
    env = DummyVecEnv([lambda: agent_view(family.make(task))])
    try:
        for where, hyper in (
            ("agent.hyperparams", config.agent.hyperparams),
            ("pretrain.hyperparams", {**config.agent.hyperparams, **config.pretrain.hyperparams}),
        ):
            values = resolve_hyperparams(hyper)
            _check_types(cls, where, values, hyper)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _setup_checks(cls("MlpPolicy", env, device="cpu", _init_setup_model=False, **values))
            except (TypeError, ValueError, AssertionError, ZeroDivisionError) as err:
                raise ConfigError(f"config key '{where}': {cls.__name__} rejects these values: {err}") from None
    finally:
        env.close()


def first_update(config: ExperimentConfig) -> tuple[int, str]:
    """The target steps before a run's first update, and what they are: PPO updates once a rollout
    (``n_steps`` x ``transfer.n_envs`` steps) is collected, SAC and DQN only after ``learning_starts`` steps."""
    hyper = config.agent.hyperparams
    defaults = inspect.signature(algo_class(config.agent.algo).__init__).parameters
    if config.agent.algo == "ppo":
        n_steps = hyper.get("n_steps", defaults["n_steps"].default)
        first = n_steps * config.transfer.n_envs
        return (
            first,
            f"one PPO rollout (n_steps {n_steps:,} x transfer.n_envs {config.transfer.n_envs}: {first:,} steps)",
        )
    first = hyper.get("learning_starts", defaults["learning_starts"].default)
    return first, f"{config.agent.algo.upper()}'s learning_starts ({first:,} steps)"


def untrained_warning(config: ExperimentConfig) -> str:
    """A warning where a run's budget (``transfer.timesteps``) ends before its algorithm's first update
    (:func:`first_update`), or "": a run stops at its budget, mid-rollout. Below that no run trains, and
    every trained strategy reports the policy it started from."""
    budget = config.transfer.timesteps
    first, what = first_update(config)
    if budget >= first:
        return ""
    return (
        f"warning: transfer.timesteps ({budget:,}) is below {what}: no run is updated, and every trained "
        "strategy reports the policy it starts from"
    )


def probe_budget_warning(config: ExperimentConfig, n_sources: int, time_limits: Mapping[str, int | None]) -> str:
    """A warning where a probe of source heads (``transfer.head_init: probe``) may leave a run less of its budget
    than its first update (:func:`first_update`), or "". Each run of a strategy that takes the heads (or is
    taught by them) first runs every source head on its target for ``probe_episodes`` episodes, charged to its
    budget: up to ``probe_episodes`` x sources x the target's time limit steps (``time_limits``: each target's;
    a target without one is not judged). A run left less than its first update is never updated."""
    from rltransfer.strategies import plan_of

    t = config.transfer
    if t.head_init != "probe" or config.agent.heads != "per_task":
        return ""
    probing = [
        name for name in t.strategies
        if (plan := plan_of(name, t.strategy_params.get(name))) is not None and plan.train
        and ("heads" in plan.load or plan.teacher)
    ]  # fmt: skip
    first, what = first_update(config)
    worst = {name: t.probe_episodes * n_sources * limit for name, limit in time_limits.items() if limit}
    short = {name: steps for name, steps in worst.items() if t.timesteps - steps < first}
    if not probing or not short or t.timesteps < first:  # below the first update without a probe: said already
        return ""
    target, steps = max(short.items(), key=lambda item: item[1])
    return (
        f"warning: with transfer.head_init: probe, each run of {', '.join(probing)} first runs each of the "
        f"{n_sources} source heads on its target for {t.probe_episodes} episode(s) (transfer.probe_episodes), "
        f"charged to its budget: up to {steps:,} of its {t.timesteps:,} steps on target '{target}' (time limit "
        f"{time_limits[target]:,} steps), which would leave less than {what}, and such a run is never updated; "
        "raise transfer.timesteps or lower transfer.probe_episodes"
    )


def minibatch_warning(config: ExperimentConfig, n_sources: int) -> str:
    """A warning where PPO's ``batch_size`` is above a rollout (``n_steps`` x envs) of the target runs or of the
    pre-training (``n_sources`` tasks of ``pretrain.envs_per_task`` envs), or "": every minibatch is then the
    whole rollout (SB3 warns and truncates it), so ``batch_size`` changes nothing there."""
    if config.agent.algo != "ppo":
        return ""
    defaults = inspect.signature(algo_class("ppo").__init__).parameters
    lines = []
    for where, hyper, envs, envs_text in (
        ("agent.hyperparams", config.agent.hyperparams, config.transfer.n_envs,
         f"transfer.n_envs {config.transfer.n_envs}"),
        ("pretrain.hyperparams", {**config.agent.hyperparams, **config.pretrain.hyperparams},
         config.pretrain.envs_per_task * n_sources,
         f"pretrain.envs_per_task {config.pretrain.envs_per_task} x {n_sources} source tasks"),
    ):  # fmt: skip
        n_steps = hyper.get("n_steps", defaults["n_steps"].default)
        batch = hyper.get("batch_size", defaults["batch_size"].default)
        rollout = n_steps * envs
        run = "a target run" if where == "agent.hyperparams" else "the pre-training"
        key = f"{where if 'batch_size' in config.pretrain.hyperparams else 'agent.hyperparams'}.batch_size"
        if batch > rollout:
            lines.append(
                f"warning: {key} {batch:,} is above {run}'s PPO rollout (n_steps {n_steps:,} x "
                f"{envs_text}: {rollout:,} samples): every minibatch is the whole rollout, so batch_size changes "
                "nothing there"
            )
    return "\n".join(dict.fromkeys(lines))
