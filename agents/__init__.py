"""Agents: encoders, the multi-task policy and its components.

Its names load on first use (``lazy_loader``, PEP 562): ``from rltransfer.agents import KickstartPPO`` imports
torch and SB3, while a module that needs only the components' names (``rltransfer.agents.component_names``,
which the strategy registry checks parameters against) does not, so ``rltransfer report`` runs without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
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
    from rltransfer.agents.transferable import transferable as transferable
    from rltransfer.agents.updates import NonFiniteError as NonFiniteError

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "adapters": ["add_adapters", "LoRALinear"],
        "algorithms": ["Algorithm", "ALGORITHMS", "get_algorithm"],
        "component_names": ["component_of", "FREEZABLE", "TRUNK_SIDES"],
        "components": ["bundle_component", "component_roots", "component_state", "policy_state"],
        "encoders": ["CnnEncoder", "encoder_types", "MlpEncoder", "register_encoder"],
        "heads": ["StackedLinear", "TaskHeads"],
        "multitask_dqn": ["MultiTaskDQNPolicy", "TransferDQN"],
        "multitask_policy": ["HEAD_MODES", "MultiTaskActorCriticPolicy"],
        "multitask_sac": ["MultiTaskSACPolicy", "TransferSAC"],
        "progressive": ["ProgressivePolicy"],
        "transfer_ppo": ["KickstartPPO", "TransferPPO"],
        "transferable": ["transferable", "TransferablePolicy"],
        "updates": ["NonFiniteError"],
    },
)
