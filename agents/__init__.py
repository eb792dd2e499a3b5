"""Agents: encoders, the multi-task policy and its components.

Its names load on first use (PEP 562): ``from rltransfer.agents import KickstartPPO`` imports torch and SB3,
while a module that needs only the components' names (``rltransfer.agents.component_names``, which the
strategy registry checks parameters against) does not, so ``rltransfer report`` runs without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use (__getattr__)
    from rltransfer.agents.adapters import LoRALinear as LoRALinear
    from rltransfer.agents.adapters import add_adapters as add_adapters
    from rltransfer.agents.algorithms import ALGORITHMS as ALGORITHMS
    from rltransfer.agents.algorithms import Algorithm as Algorithm
    from rltransfer.agents.algorithms import get_algorithm as get_algorithm
    from rltransfer.agents.component_names import FREEZABLE as FREEZABLE
    from rltransfer.agents.component_names import TRUNK_SIDES as TRUNK_SIDES
    from rltransfer.agents.component_names import component_of as component_of
    from rltransfer.agents.components import bundle_component as bundle_component
    from rltransfer.agents.components import component_roots as component_roots
    from rltransfer.agents.components import component_state as component_state
    from rltransfer.agents.components import policy_state as policy_state
    from rltransfer.agents.encoders import CnnEncoder as CnnEncoder
    from rltransfer.agents.encoders import MlpEncoder as MlpEncoder
    from rltransfer.agents.encoders import encoder_types as encoder_types
    from rltransfer.agents.encoders import register_encoder as register_encoder
    from rltransfer.agents.heads import StackedLinear as StackedLinear
    from rltransfer.agents.heads import TaskHeads as TaskHeads
    from rltransfer.agents.multitask_dqn import MultiTaskDQNPolicy as MultiTaskDQNPolicy
    from rltransfer.agents.multitask_dqn import TransferDQN as TransferDQN
    from rltransfer.agents.multitask_policy import HEAD_MODES as HEAD_MODES
    from rltransfer.agents.multitask_policy import MultiTaskActorCriticPolicy as MultiTaskActorCriticPolicy
    from rltransfer.agents.multitask_sac import MultiTaskSACPolicy as MultiTaskSACPolicy
    from rltransfer.agents.multitask_sac import TransferSAC as TransferSAC
    from rltransfer.agents.progressive import ProgressivePolicy as ProgressivePolicy
    from rltransfer.agents.transfer_ppo import KickstartPPO as KickstartPPO
    from rltransfer.agents.transfer_ppo import TransferPPO as TransferPPO
    from rltransfer.agents.transferable import TransferablePolicy as TransferablePolicy
    from rltransfer.agents.updates import NonFiniteError as NonFiniteError

_MODULE_OF = {
    "add_adapters": "adapters",
    "LoRALinear": "adapters",
    "Algorithm": "algorithms",
    "ALGORITHMS": "algorithms",
    "get_algorithm": "algorithms",
    "component_of": "component_names",
    "FREEZABLE": "component_names",
    "TRUNK_SIDES": "component_names",
    "bundle_component": "components",
    "component_roots": "components",
    "component_state": "components",
    "policy_state": "components",
    "CnnEncoder": "encoders",
    "encoder_types": "encoders",
    "MlpEncoder": "encoders",
    "register_encoder": "encoders",
    "StackedLinear": "heads",
    "TaskHeads": "heads",
    "MultiTaskDQNPolicy": "multitask_dqn",
    "TransferDQN": "multitask_dqn",
    "HEAD_MODES": "multitask_policy",
    "MultiTaskActorCriticPolicy": "multitask_policy",
    "MultiTaskSACPolicy": "multitask_sac",
    "TransferSAC": "multitask_sac",
    "ProgressivePolicy": "progressive",
    "KickstartPPO": "transfer_ppo",
    "TransferPPO": "transfer_ppo",
    "TransferablePolicy": "transferable",
    "NonFiniteError": "updates",
}
"""Each public name -> the module of this package that defines it. (``transferable``, the function that makes
a policy transferable, is imported from ``rltransfer.agents.transferable``: a package attribute of that name
is the module once it is imported.)"""

__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
