"""Agents: encoders, the multi-task policy and its components."""

from rltransfer.agents.components import (
    bundle_component,
    component_of,
    component_state,
    from_bundle_key,
    policy_state,
    to_bundle_key,
)
from rltransfer.agents.encoders import ENCODERS, MlpEncoder, register_encoder
from rltransfer.agents.heads import StackedLinear, TaskHeads
from rltransfer.agents.multitask_policy import HEAD_MODES, MultiTaskActorCriticPolicy

__all__ = [
    "ENCODERS",
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
