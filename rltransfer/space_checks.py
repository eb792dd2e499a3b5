"""Whether SB3's algorithms read a family's observations and act in its actions, as the tasks declare them:
checked when a config loads (:func:`rltransfer.validation.validate`): the forms any algorithm needs
(:mod:`rltransfer.envs.space_forms`, also told by ``rltransfer families --check``), and the actions the config's
algorithm acts in."""

from __future__ import annotations

from gymnasium import spaces

from rltransfer.config import ExperimentConfig
from rltransfer.envs import Family, TaskError
from rltransfer.envs.space_forms import check_action_form, check_observation_form
from rltransfer.errors import ConfigError


def check_observation_space(family: Family, observation_space: spaces.Space) -> None:
    """The tasks' observations in a form SB3's policies read (:func:`~rltransfer.envs.space_forms.check_observation_form`)."""
    try:
        check_observation_form(family, observation_space)
    except TaskError as err:
        raise ConfigError(f"config key 'family': {err}") from None


def check_action_space(config: ExperimentConfig, family: Family, action_space: spaces.Space) -> None:
    """The algorithm must handle the family's actions (PPO: Discrete, Box, MultiDiscrete or MultiBinary; DQN:
    Discrete; SAC: Box), in a form SB3 acts in (:func:`~rltransfer.envs.space_forms.check_action_form`)."""
    from rltransfer.agents import ALGORITHMS

    algo = ALGORITHMS[config.agent.algo]
    if not isinstance(action_space, algo.actions):
        fits = [a.name for a in ALGORITHMS.values() if isinstance(action_space, a.actions)]
        each = "; ".join(f"{a.name}: {' or '.join(c.__name__ for c in a.actions)}" for a in ALGORITHMS.values())
        raise ConfigError(
            f"config key 'agent.algo': {algo.name} needs {' or '.join(c.__name__ for c in algo.actions)} actions; "
            f"family '{family.name}' acts in {action_space}; "
            + (f"algorithms for it: {', '.join(fits)}" if fits else f"no algorithm of rltransfer's acts so ({each})")
        )
    try:
        check_action_form(family, action_space)
    except TaskError as err:
        raise ConfigError(f"config key 'family': {err}") from None
