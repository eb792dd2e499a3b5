"""Agents: encoders, the multi-task policy and its components."""

from rltransfer.agents.components import component_of, component_state, from_bundle_key, to_bundle_key
from rltransfer.agents.encoders import ENCODERS, MlpEncoder, register_encoder
from rltransfer.agents.heads import TaskHead, route
from rltransfer.agents.multitask_policy import HEAD_MODES, MultiTaskActorCriticPolicy

__all__ = [
    "ENCODERS",
    "HEAD_MODES",
    "MlpEncoder",
    "MultiTaskActorCriticPolicy",
    "TaskHead",
    "component_of",
    "component_state",
    "from_bundle_key",
    "register_encoder",
    "route",
    "to_bundle_key",
]
