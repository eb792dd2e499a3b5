"""Build an SB3 model with rltransfer's multi-task policy from a config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rltransfer.agents import encoder_types, get_algorithm
from rltransfer.agents.encoders import ACTIVATIONS
from rltransfer.config import AgentConfig
from rltransfer.envs import TaskSpaces
from rltransfer.hardware import train_on_one_core
from rltransfer.records.bundle_manifest import Architecture, TaskDims


def architecture(agent: AgentConfig, task_names: Sequence[str], layout: TaskSpaces | None = None) -> Architecture:
    """What a bundle stores to rebuild every component. Tasks whose spaces differ (``layout.mixed``)
    add ``task_spaces``: each task's observation length (its input stem) and number of actions (its
    head)."""
    mixed = layout is not None and layout.mixed
    return Architecture(
        algo=agent.algo,
        encoder=agent.encoder.model_dump(),
        trunk=agent.trunk.model_dump(),
        heads=agent.heads,
        task_names=list(task_names),
        **(
            {"task_spaces": TaskDims(obs_dims=list(layout.obs_dims), action_dims=list(layout.action_dims))}
            if layout is not None and mixed
            else {}
        ),
    )


def policy_kwargs(
    arch: Architecture, frozen: Sequence[str] = (), lr_mults: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for the multi-task policy described by ``arch`` (of its ``algo``, PPO
    for bundles older than SAC and DQN support)."""
    enc = dict(arch.encoder)
    spaces = arch.task_spaces
    if spaces is not None:
        enc["stems"] = list(spaces.obs_dims)
    return {
        "task_names": list(arch.task_names),
        "heads": arch.heads,
        "features_extractor_class": encoder_types()[enc.pop("type")],
        "features_extractor_kwargs": enc,
        "net_arch": get_algorithm(arch.algo).net_arch(arch.trunk),
        "activation_fn": ACTIVATIONS[enc.get("activation", "tanh")],
        "frozen": list(frozen),
        "lr_mults": dict(lr_mults or {}),
        "action_dims": list(spaces.action_dims) if spaces is not None else None,
    }


SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")


def resolve_hyperparams(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """SB3 keyword arguments from config values; RL Zoo's ``lin_<value>`` becomes a linear schedule
    from ``value`` to 0 over the run (driven by one ``learn()`` call, so it really decays to 0), and a
    ``train_freq`` given as a pair (YAML's ``[1, episode]``, as RL Zoo writes it) the tuple SB3 takes."""
    from stable_baselines3.common.utils import LinearSchedule

    out = dict(hyperparams)
    for key in SCHEDULED:
        value = out.get(key)
        if isinstance(value, str) and value.startswith("lin_"):
            out[key] = LinearSchedule(float(value[4:]), 0.0, 1.0)
    if isinstance(out.get("train_freq"), list):
        out["train_freq"] = tuple(out["train_freq"])
    return out


def build_model(
    agent: AgentConfig,
    env: VecEnv,
    arch: Architecture,
    seed: int,
    frozen: Sequence[str] = (),
    lr_mults: Mapping[str, float] | None = None,
    algo_cls: type[BaseAlgorithm] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
) -> BaseAlgorithm:
    """An SB3 model on ``env`` with the algorithm's multi-task policy; CPU, one torch thread."""
    train_on_one_core()
    algo = get_algorithm(agent.algo)
    return (algo_cls or algo.algo_class)(
        algo.policy_class,
        env,
        policy_kwargs={**policy_kwargs(arch, frozen, lr_mults), "obs_layout": getattr(env, "obs_layout", None)},
        seed=seed,
        device="cpu",
        verbose=0,
        **resolve_hyperparams({**agent.hyperparams, **(hyperparams or {})}),
    )
