"""Observation encoders, as SB3 features extractors (drop them into any SB3 model's ``policy_kwargs``)."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from torch import nn

from rltransfer.agents.heads import StackedLinear
from rltransfer.observation_keys import ENCODED, OBS, TASK

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def hidden_layers(width: int, sizes: Sequence[int], activation_fn: type[nn.Module]) -> tuple[nn.Sequential, int]:
    """SB3's ``create_mlp`` without an output layer (Linear + activation per size), and its output width."""
    sizes = [int(size) for size in sizes]
    return nn.Sequential(*create_mlp(width, -1, sizes, activation_fn)), sizes[-1] if sizes else width


def mlp(width: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    """Linear + activation layers of the given widths, starting from ``width`` inputs."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}'; allowed: {', '.join(ACTIVATIONS)}")
    return hidden_layers(width, hidden, ACTIVATIONS[activation])[0]


def encoded_keys(observation_space: gym.Space) -> list[str] | None:
    """The keys of a Dict observation that an encoder consumes (``None`` for a flat space)."""
    if isinstance(observation_space, spaces.Dict):
        keys = [k for k in ENCODED if k in observation_space.spaces]
        if OBS not in keys:
            raise ValueError(f"a multi-task observation needs an '{OBS}' key, got {list(observation_space.spaces)}")
        return keys
    return None


class MlpEncoder(BaseFeaturesExtractor):
    """An MLP over the (flattened) observation and its conditioning vector.

    Works on a plain ``Box`` observation, or on rltransfer's multi-task ``Dict`` observation
    (``obs``, optional ``context``, and ``task``, which only routes: to heads, and to stems).

    :param observation_space: the observation space.
    :param hidden: widths of the hidden layers; the last is the features dimension
        (an empty list passes the input through unchanged).
    :param activation: ``tanh`` | ``relu`` | ``elu``.
    :param stems: per-task input stems, for tasks whose observations differ in length: each
        task's own observation length, in head order. Task ``i``'s stem maps the first
        ``stems[i]`` entries of the (zero-padded) observation to ``stem_width`` features; the
        shared layers see the stem's output and the conditioning. ``None``: no stems.
    :param stem_width: the stems' shared output width.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        stems: Sequence[int] | None = None,
        stem_width: int = 64,
    ):
        keys = encoded_keys(observation_space)
        entries = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {}
        if keys is None:
            in_dim = get_flattened_obs_dim(observation_space)
        else:
            in_dim = sum(get_flattened_obs_dim(entries[k]) for k in keys)
        hidden = [int(h) for h in hidden]
        self.stem_dims = [int(d) for d in stems] if stems is not None else None
        if self.stem_dims is not None:
            if keys is None or TASK not in entries:
                raise ValueError("input stems need rltransfer's multi-task observation (with its 'task' entry)")
            width = get_flattened_obs_dim(entries[OBS])
            n_tasks = get_flattened_obs_dim(entries[TASK])
            if len(self.stem_dims) != n_tasks or max(self.stem_dims) > width:
                raise ValueError(f"stems {self.stem_dims} do not fit {n_tasks} tasks of observations padded to {width}")
            in_dim = in_dim - width + int(stem_width)
        super().__init__(observation_space, features_dim=hidden[-1] if hidden else in_dim)
        self.keys = keys
        self.input_dim = in_dim
        if self.stem_dims is not None:
            self.stems = StackedLinear(len(self.stem_dims), width, int(stem_width))
            with torch.no_grad():  # columns beyond a task's length only ever see padding: zero
                for i, d in enumerate(self.stem_dims):
                    self.stems.weight.view(len(self.stem_dims), int(stem_width), width)[i, :, d:] = 0.0
            self.stem_activation = ACTIVATIONS[activation]()
        self.net = mlp(in_dim, hidden, activation)

    reads_columns = True
    """``forward`` also takes its entries (``obs``, ``context``) already concatenated in that order,
    as they lead a flat observation (:data:`rltransfer.observation_keys.FLAT_ORDER`)."""

    @property
    def needs_task(self) -> bool:
        """Whether ``forward`` reads the observation's ``task`` entry (to route through stems)."""
        return self.stem_dims is not None

    def flat_input(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's input: observation (through its task's stem) and conditioning, flattened and
        concatenated (a tensor is taken as these entries already concatenated, as they lead a flat
        observation)."""
        if isinstance(observations, torch.Tensor):
            return observations.flatten(1)
        if self.keys is None:
            raise TypeError("an encoder of a plain observation takes a tensor")
        if self.stem_dims is None:
            return torch.cat([observations[k].flatten(1) for k in self.keys], dim=1)
        mask = observations[TASK].unsqueeze(1) if len(self.stem_dims) > 1 else None
        parts = [self.stem_activation(self.stems(observations[OBS].flatten(1), mask))]
        parts += [observations[k].flatten(1) for k in self.keys if k != OBS]
        return torch.cat(parts, dim=1)

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(self.flat_input(observations))


class CnnEncoder(BaseFeaturesExtractor):
    """A small CNN for small egocentric images (MiniGrid's 7x7), then an MLP with the conditioning.

    SB3's NatureCNN needs images of at least 36x36 (8x8 kernels, stride 4): this stack of 2x2
    convolutions keeps every cell of a 7x7 view. Expects channels-first ``(C, H, W)`` float
    observations (MiniGrid's cell codes, see :mod:`rltransfer.envs.minigrid`).

    :param channels: output channels of the successive 2x2 convolutions.
    :param hidden: widths of the layers after the convolutions (the last is the features dimension).
    :param activation: ``tanh`` | ``relu`` | ``elu`` (of the layers after the convolutions).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        channels: Sequence[int] = (16, 32, 64),
        hidden: Sequence[int] = (64,),
        activation: str = "relu",
    ):
        keys = encoded_keys(observation_space)
        entries = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {}
        image = entries[OBS] if keys is not None else observation_space
        if not isinstance(image, spaces.Box) or len(image.shape) != 3:
            raise ValueError(f"the cnn encoder needs (C, H, W) image observations, got {image}")
        extra = sum(get_flattened_obs_dim(entries[k]) for k in (keys or []) if k != OBS)
        hidden = [int(h) for h in hidden]
        c, h, w = image.shape
        if h <= len(channels) or w <= len(channels):
            raise ValueError(f"images of {h}x{w} are too small for {len(channels)} 2x2 convolutions")
        super().__init__(observation_space, features_dim=hidden[-1] if hidden else 0)
        self.keys = keys
        convs: list[nn.Module] = []
        for out in channels:
            convs += [nn.Conv2d(c, int(out), kernel_size=2), nn.ReLU()]
            c = int(out)
        self.conv = nn.Sequential(*convs, nn.Flatten())
        width = c * (h - len(channels)) * (w - len(channels)) + extra
        if not hidden:
            self._features_dim = width
        self.net = mlp(width, hidden, activation)

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(observations, torch.Tensor):
            return self.net(self.conv(observations))
        parts = [self.conv(observations[OBS])]
        parts += [observations[k].flatten(1) for k in self.keys or () if k != OBS]
        return self.net(torch.cat(parts, dim=1))


_ENCODERS: dict[str, type[BaseFeaturesExtractor]] = {"mlp": MlpEncoder, "cnn": CnnEncoder}
"""The registry; read it through :func:`encoder_types` (which loads the plugins first)."""


def register_encoder(name: str, cls: type[BaseFeaturesExtractor]) -> None:
    """Make an encoder class available to configs as ``agent.encoder.type: <name>``."""
    _ENCODERS[name] = cls


ENTRY_POINTS = "rltransfer.encoders"
"""A package exposes encoders as ``<type> = "module:Class"`` in this group (an SB3 features extractor)."""


_plugins_loaded = False


def load_plugins() -> None:
    """Register the encoders of installed packages, once, on the first lookup (:func:`encoder_types`), not
    when ``rltransfer.agents`` is imported: a plugin module that imports ``rltransfer.agents`` at its top
    (to subclass an encoder) would otherwise be asked for its encoder while Python is still importing it."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    from importlib import metadata

    _plugins_loaded = True  # before loading: a plugin that looks an encoder up while it loads finds the others
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        try:
            cls = ep.load()
        except Exception as err:  # a broken plugin is named, not hidden
            raise ImportError(f"the encoder plugin '{ep.name}' ({ep.value}) failed to load: {err}") from None
        if not (isinstance(cls, type) and issubclass(cls, BaseFeaturesExtractor)):
            raise ImportError(f"the encoder plugin '{ep.name}' ({ep.value}) is not an SB3 BaseFeaturesExtractor")
        _ENCODERS.setdefault(ep.name, cls)


def encoder_types() -> dict[str, type[BaseFeaturesExtractor]]:
    """Every encoder a config may name as ``agent.encoder.type``: rltransfer's, those registered, and those
    installed packages expose (their entry points loaded on the first call)."""
    load_plugins()
    return _ENCODERS
