"""Image observations as rltransfer's agents see them: channels first, as SB3 would transpose them.

SB3 wraps an env whose observation (or an entry of a Dict observation) is a channels-last image in
``VecTransposeImage`` when it builds a model, and its policy then reads channels-first images. rltransfer
builds its agents' observations itself (a task's ``obs`` beside its ``task`` and ``context`` entries) and
records the policy's spaces in every bundle and saved agent, to check later envs against; so it shows the agent
channels-first images from the start, judged and transposed by SB3's own functions, and SB3 never has to:
the spaces recorded are the ones the envs give, wherever a component goes next.

A ``Dict`` observation of vectors and discrete values (a goal-conditioned env's ``observation``,
``achieved_goal`` and ``desired_goal``, say) is flattened into one Box (Gymnasium's ``FlattenObservation``): what
SB3's ``MultiInputPolicy`` reads of it (its ``CombinedExtractor`` flattens each entry, one-hot encodes the discrete
ones and concatenates them in the same order), as one entry beside the task's conditioning ones.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecTransposeImage


def channels_last_image(space: spaces.Space) -> bool:
    """Whether SB3 would transpose ``space``: an image (uint8, 3 dimensions, 0 to 255) whose channels are not
    first (SB3's heuristic: the smallest dimension is the channels')."""
    return isinstance(space, spaces.Box) and is_image_space(space) and not is_image_space_channels_first(space)


class ChannelsFirst(gym.ObservationWrapper):
    """A channels-last image observation, channels first (SB3's ``VecTransposeImage``, one env at a time)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        assert isinstance(env.observation_space, spaces.Box)
        self.observation_space = VecTransposeImage.transpose_space(env.observation_space)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return VecTransposeImage.transpose_image(np.asarray(observation))


def flat_dict(space: spaces.Space) -> bool:
    """Whether ``space`` is a Dict that rltransfer's agents read flattened: its entries (Dicts in it too) are
    vectors (a Box that is not an image) or discrete values (Discrete, MultiDiscrete, MultiBinary)."""

    def flat(entry: spaces.Space) -> bool:
        if isinstance(entry, spaces.Dict):
            return all(flat(e) for e in entry.spaces.values())
        if isinstance(entry, spaces.Box):
            return not is_image_space(entry)
        return isinstance(entry, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary))

    return isinstance(space, spaces.Dict) and len(space.spaces) > 0 and flat(space)


def agent_view(env: gym.Env) -> gym.Env:
    """``env`` as rltransfer's agents see it: a channels-last image observation channels first, a Dict of vectors
    and discrete values flattened (:func:`flat_dict`), else as it is."""
    if flat_dict(env.observation_space):
        return gym.wrappers.FlattenObservation(env)
    return ChannelsFirst(env) if channels_last_image(env.observation_space) else env
