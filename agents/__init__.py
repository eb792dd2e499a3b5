"""Agents: encoders, the multi-task policy and its components."""

from rltransfer.agents.adapters import LoRALinear, add_adapters
from rltransfer.agents.components import (
    bundle_component,
    component_of,
    component_state,
    from_bundle_key,
    policy_state,
    to_bundle_key,
)
from rltransfer.agents.encoders import ENCODERS, CnnEncoder, MlpEncoder, register_encoder
from rltransfer.agents.heads import StackedLinear, TaskHeads
from rltransfer.agents.multitask_policy import HEAD_MODES, MultiTaskActorCriticPolicy
from rltransfer.agents.progressive import ProgressivePolicy
from rltransfer.agents.transfer_ppo import KickstartPPO, NonFiniteError, TransferPPO

__all__ = [
    "KickstartPPO",
    "NonFiniteError",
    "LoRALinear",
    "ProgressivePolicy",
    "TransferPPO",
    "add_adapters",
    "ENCODERS",
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
    "from_bundle_key",
    "register_encoder",
    "to_bundle_key",
]
