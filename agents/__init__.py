"""Agents: encoders, the multi-task policy and its components."""

from rltransfer.agents.adapters import LoRALinear, add_adapters
from rltransfer.agents.algorithms import ALGORITHMS, Algorithm, get_algorithm
from rltransfer.agents.components import (
    FREEZABLE,
    TRUNK_SIDES,
    bundle_component,
    component_of,
    component_roots,
    component_state,
    policy_state,
)
from rltransfer.agents.encoders import ENCODERS, CnnEncoder, MlpEncoder, encoder_types, register_encoder
from rltransfer.agents.heads import StackedLinear, TaskHeads
from rltransfer.agents.multitask_dqn import MultiTaskDQNPolicy, TransferDQN
from rltransfer.agents.multitask_policy import HEAD_MODES, MultiTaskActorCriticPolicy
from rltransfer.agents.multitask_sac import MultiTaskSACPolicy, TransferSAC
from rltransfer.agents.progressive import ProgressivePolicy
from rltransfer.agents.transfer_ppo import KickstartPPO, TransferPPO
from rltransfer.agents.transferable import TransferablePolicy, transferable
from rltransfer.agents.updates import NonFiniteError

__all__ = [
    "ALGORITHMS",
    "FREEZABLE",
    "TRUNK_SIDES",
    "Algorithm",
    "get_algorithm",
    "MultiTaskDQNPolicy",
    "MultiTaskSACPolicy",
    "TransferDQN",
    "TransferSAC",
    "KickstartPPO",
    "NonFiniteError",
    "LoRALinear",
    "ProgressivePolicy",
    "TransferPPO",
    "TransferablePolicy",
    "transferable",
    "add_adapters",
    "ENCODERS",
    "encoder_types",
    "CnnEncoder",
    "HEAD_MODES",
    "MlpEncoder",
    "MultiTaskActorCriticPolicy",
    "StackedLinear",
    "TaskHeads",
    "bundle_component",
    "policy_state",
    "component_of",
    "component_state",
    "component_roots",
    "register_encoder",
]
