"""Environment families: parameterised Gymnasium tasks and the multi-task vector env."""

from rltransfer.envs.conditioning import CONDITIONINGS, conditioned_space, conditioning_vector
from rltransfer.envs.family import SPLITS, Family, Parameter, Task, TaskError
from rltransfer.envs.mixed import TaskSpaces
from rltransfer.envs.multitask import MultiTaskVecEnv, check_spaces, task_layout
from rltransfer.envs.registry import family_of, get_family, list_families, register_declared, register_family

__all__ = [
    "CONDITIONINGS",
    "MultiTaskVecEnv",
    "check_spaces",
    "task_layout",
    "TaskSpaces",
    "conditioned_space",
    "conditioning_vector",
    "SPLITS",
    "Family",
    "Parameter",
    "Task",
    "TaskError",
    "family_of",
    "get_family",
    "register_declared",
    "list_families",
    "register_family",
]
