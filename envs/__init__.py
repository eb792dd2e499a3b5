"""Environment families: parameterised Gymnasium tasks and the multi-task vector env.

Its names load on first use (``lazy_loader``, PEP 562): a family's description needs Gymnasium alone, while
``MultiTaskVecEnv`` (an SB3 ``VecEnv``) loads SB3 and torch, so ``rltransfer families`` loads neither.
Importing it registers the shipped families' Gymnasium ids (``gym.make("rltransfer/cartpole-v0",
task="very-long-heavy")``; :mod:`rltransfer.envs.registry`), as a Gymnasium package registers its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from rltransfer.envs.conditioning import CONDITIONINGS as CONDITIONINGS
    from rltransfer.envs.conditioning import conditioned_space as conditioned_space
    from rltransfer.envs.conditioning import conditioning_vector as conditioning_vector
    from rltransfer.envs.family import SPLITS as SPLITS
    from rltransfer.envs.family import Family as Family
    from rltransfer.envs.family import Parameter as Parameter
    from rltransfer.envs.family import Task as Task
    from rltransfer.envs.family import TaskError as TaskError
    from rltransfer.envs.mixed import TaskSpaces as TaskSpaces
    from rltransfer.envs.multitask import MultiTaskVecEnv as MultiTaskVecEnv
    from rltransfer.envs.multitask import check_spaces as check_spaces
    from rltransfer.envs.multitask import task_layout as task_layout
    from rltransfer.envs.registry import family_of as family_of
    from rltransfer.envs.registry import get_family as get_family
    from rltransfer.envs.registry import gym_id as gym_id
    from rltransfer.envs.registry import list_families as list_families
    from rltransfer.envs.registry import register_declared as register_declared
    from rltransfer.envs.registry import register_family as register_family

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "conditioning": ["conditioned_space", "conditioning_vector", "CONDITIONINGS"],
        "family": ["Family", "Parameter", "SPLITS", "Task", "TaskError"],
        "mixed": ["TaskSpaces"],
        "multitask": ["check_spaces", "MultiTaskVecEnv", "task_layout"],
        "registry": ["family_of", "get_family", "gym_id", "list_families", "register_declared", "register_family"],
    },
)

from rltransfer.envs.registry import load_shipped_families  # noqa: E402  (their Gymnasium ids, on import)

load_shipped_families()
