"""The algorithms rltransfer trains, each with its multi-task policy and how the trunk maps onto it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from rltransfer.agents.multitask_dqn import MultiTaskDQNPolicy, TransferDQN
from rltransfer.agents.multitask_policy import MultiTaskActorCriticPolicy
from rltransfer.agents.multitask_sac import MultiTaskSACPolicy, TransferSAC
from rltransfer.agents.transfer_ppo import TransferPPO


@dataclass(frozen=True)
class Algorithm:
    """An SB3 algorithm as rltransfer uses it."""

    name: str
    base: type[BaseAlgorithm]
    """SB3's own class (its constructor's arguments are what a config may pass)."""
    algo_class: type[BaseAlgorithm]
    policy_class: type[BasePolicy]
    actions: tuple[type[spaces.Space], ...]
    """Action spaces it handles."""
    trunk: str
    """How ``agent.trunk`` (``pi``: policy layers, ``vf``: value layers) becomes SB3's ``net_arch``."""
    replay: bool = False
    """Off-policy: learns from a replay buffer."""

    def flat_observations(self, normalize: bool) -> bool:
        """Whether its envs give vector observations' entries in one flat Box: for an off-policy
        algorithm (SB3 stores, samples and converts a Dict key by key, at every step and update),
        unless observations are normalised (VecNormalize normalises a Dict's ``obs`` key, never
        part of a Box)."""
        return self.replay and not normalize

    def net_arch(self, trunk: Mapping[str, Sequence[int]]) -> Any:
        pi, vf = list(trunk["pi"]), list(trunk["vf"])
        return {"ppo": {"pi": pi, "vf": vf}, "sac": {"pi": pi, "qf": vf}, "dqn": vf}[self.name]


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(
        "ppo",
        PPO,
        TransferPPO,
        MultiTaskActorCriticPolicy,
        (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary),
        "pi: policy, vf: value",
    ),
    "dqn": Algorithm(
        "dqn", DQN, TransferDQN, MultiTaskDQNPolicy, (spaces.Discrete,), "vf: the Q-network's hidden layers", True
    ),
    "sac": Algorithm("sac", SAC, TransferSAC, MultiTaskSACPolicy, (spaces.Box,), "pi: actor, vf: each critic", True),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm '{name}' unknown; allowed: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
