"""Whether SB3's algorithms read a family's observations and act in its actions in the form the tasks declare,
whatever the algorithm: told by ``rltransfer families --check`` (its "spaces" check) and when a config loads
(:mod:`rltransfer.space_checks`, which adds what each algorithm acts in), so that an env SB3 would misread is
refused with the fix instead of training on what it did not mean."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rltransfer.envs.family import Family, TaskError

OBSERVATIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
"""The observation spaces a task may have: the agent reads one, beside its ``task`` and ``context`` entries, as
SB3's policies read it (a discrete one one-hot encoded, a binary one as its 0/1 entries), and bundles and saved
agents record it (:mod:`rltransfer.spaces_json`)."""

FLATTEN = "gymnasium.wrappers.FlattenObservation(env) makes a Box of it"


def check_observation_form(family: Family, observation_space: spaces.Space) -> None:
    """The tasks' observations (as the agents see them: a Dict of vectors and discrete values flattened,
    :func:`rltransfer.envs.images.agent_view`) must be one of :data:`OBSERVATIONS` (rltransfer puts a task's
    observation in a Dict beside its conditioning entries, and SB3 has no Dict or Tuple inside a Dict), in a form
    SB3 reads: a discrete one from 0 (SB3 one-hot encodes ``0 .. n-1`` whatever the space's ``start``: another
    value is read as another or fails), a flat MultiDiscrete or MultiBinary (SB3 splits a MultiDiscrete's values
    along one axis), a Box of at least one dimension. :class:`TaskError` names what is wrong and the fix."""
    where = f"family '{family.name}' observes {shown(observation_space)}"
    if isinstance(observation_space, spaces.Dict):  # one the agents do not read flattened (envs.images.flat_dict)
        raise TaskError(
            f"family '{family.name}' observes a Dict ({shown(observation_space)}) that holds "
            "more than vectors and discrete values; rltransfer's agents read a Dict of vectors (Boxes that are not "
            "images) and Discrete, MultiDiscrete or MultiBinary values flattened into one vector, as SB3's "
            "MultiInputPolicy does, or an image alone: give the task one of those in the family's build"
        )
    if not isinstance(observation_space, OBSERVATIONS):
        raise TaskError(
            f"family '{family.name}' observes {type(observation_space).__name__} "
            f"({observation_space}); a task's observation must be a "
            f"{', a '.join(c.__name__ for c in OBSERVATIONS[:-1])} or a {OBSERVATIONS[-1].__name__} (rltransfer "
            f"sets it beside the task's conditioning entries in a Dict): flatten it in the family's build ({FLATTEN})"
        )
    if isinstance(observation_space, spaces.Box) and observation_space.shape == ():
        raise TaskError(
            f"{where}, of shape () (one number); SB3's policies read vectors (they fail on it with an IndexError): "
            "give it shape (1,) in the family's build (gymnasium.wrappers.ReshapeObservation(env, (1,)))"
        )
    if (start := _start_off_zero(observation_space)) is not None:
        raise TaskError(
            f"{where}, whose values start at {start}; SB3's policies one-hot encode "
            "values from 0: start the space at 0 in the family's build (gymnasium.wrappers.TransformObservation "
            "can subtract the offset), or flatten it (" + FLATTEN + ")"
        )
    if _multi_dimensional(observation_space):
        raise TaskError(
            f"{where}, of shape {observation_space.shape}; SB3's policies read one-dimensional ones: flatten it "
            f"in the family's build ({FLATTEN})"
        )


def check_action_form(family: Family, action_space: spaces.Space) -> None:
    """The tasks' actions in a form SB3 acts in, whichever algorithm acts: discrete actions from 0, a flat
    MultiDiscrete or MultiBinary (SB3 samples ``0 .. n-1`` whatever the space's ``start``, and refuses
    multi-dimensional ones), a Box bounded on both sides (SB3 refuses others, which was told as a rejected
    hyperparameter). :class:`TaskError` names what is wrong and the fix."""
    where = f"family '{family.name}' acts in {shown(action_space)}"
    if (start := _start_off_zero(action_space)) is not None:
        raise TaskError(
            f"{where}, whose actions start at {start}; SB3's agents act from 0: start the "
            "space at 0 in the family's build and add the offset in the env's step"
        )
    if _multi_dimensional(action_space):
        raise TaskError(
            f"{where}, of shape {action_space.shape}; SB3's agents act in one-dimensional ones: flatten the "
            f"{type(action_space).__name__} in the family's build (and reshape the action in the env's step)"
        )
    if isinstance(action_space, spaces.Box) and not action_space.is_bounded("both"):
        raise TaskError(
            f"{where}, not bounded on both sides; SB3's agents act in a bounded Box (PPO clips its actions to the "
            "bounds, SAC squashes them into them): give the action space the finite bounds of the actions the env "
            "takes (in the env, or in a wrapper the family's build adds)"
        )


def shown(space: spaces.Space) -> str:
    """A space on one line (a multi-dimensional one prints over several)."""
    return " ".join(str(space).split())


def _start_off_zero(space: spaces.Space) -> Any:
    """Where a Discrete or MultiDiscrete space's values start, if not at 0 (SB3 reads and samples ``0 .. n-1``
    whatever the space's ``start``); else None."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)) and np.any(space.start != 0):
        return np.asarray(space.start).tolist()
    return None


def _multi_dimensional(space: spaces.Space) -> bool:
    """A MultiDiscrete or MultiBinary space of more than one dimension (SB3 reads and acts in flat ones)."""
    return isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)) and len(space.shape) != 1
