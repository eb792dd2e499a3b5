"""Multi-task DQN: SB3's DQN with a Q-network made of a shared encoder and trunk and per-task Q heads.

The online Q-network holds the components (``q_net.features_extractor`` = ``encoder``,
``q_net.mlp_extractor`` = ``trunk``, ``q_net.heads`` = ``heads``); the target network has the same
layout, starts equal to the online one and follows it as in SB3 (never a component of a bundle).
Every sample's Q-values come from its task's head, chosen by the ``task`` entry of the observation,
for the online and the target network alike.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from rltransfer.agents.encoders import hidden_layers
from rltransfer.agents.heads import StackedLinear, action_offsets, route_offsets
from rltransfer.agents.transferable import ObsLayout, TransferableMixin, encode, route
from rltransfer.agents.updates import check_losses_finite, scaled_learning_rate


class QHeads(nn.Module):
    """Every task's Q-value output layer, stacked (``q``: ``(n_tasks * n_actions, latent)``)."""

    action_offsets: torch.Tensor | None  # a buffer

    def __init__(
        self, task_names: Sequence[str], latent: int, n_actions: int, action_dims: Sequence[int] | None = None
    ):
        super().__init__()
        self.task_names = list(task_names)
        self.q = StackedLinear(len(self.task_names), latent, n_actions)
        # Actions a task lacks get a very low Q-value: never greedy, never the max of a target.
        self.register_buffer("action_offsets", action_offsets(action_dims, n_actions), persistent=False)

    def __len__(self) -> int:
        return len(self.task_names)

    def forward(self, latent: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q = self.q(latent, mask)
        return q if self.action_offsets is None else q + route_offsets(self.action_offsets, mask)


class MultiTaskQNetwork(BasePolicy):
    """SB3's ``QNetwork`` interface (``forward`` -> Q-values, ``_predict`` -> greedy actions) over
    encoder, trunk and per-task heads; ``observation_space`` is what the encoder reads (a flat
    observation of ``obs_layout`` is split into it)."""

    heads: QHeads

    action_space: spaces.Discrete

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: Sequence[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        task_names: Sequence[str] = ("task",),
        action_dims: Sequence[int] | None = None,
        obs_layout: ObsLayout | None = None,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.action_dims = list(action_dims) if action_dims is not None else None
        self.obs_layout = obs_layout
        self.net_arch = list(net_arch if net_arch is not None else [64, 64])
        self.activation_fn = activation_fn
        self.features_dim = features_dim
        self.mlp_extractor, width = hidden_layers(features_dim, self.net_arch, activation_fn)
        self.heads = QHeads(task_names, width, int(action_space.n), action_dims)

    def forward(self, obs: Any) -> torch.Tensor:
        return self.heads(self.mlp_extractor(encode(self, obs)), route(obs, self.obs_layout, len(self.heads)))

    def _predict(self, observation: Any, deterministic: bool = True) -> torch.Tensor:
        return self(observation).argmax(dim=1).reshape(-1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch, features_dim=self.features_dim, activation_fn=self.activation_fn,
            features_extractor=self.features_extractor, task_names=self.heads.task_names,
            action_dims=self.action_dims, obs_layout=self.obs_layout,
        )  # fmt: skip
        return data


class MultiTaskDQNPolicy(TransferableMixin, DQNPolicy):
    """SB3's ``DQNPolicy`` with a :class:`MultiTaskQNetwork`; ``task_names``, ``heads``, ``frozen``,
    ``lr_mults`` and ``adapters`` as for :class:`~rltransfer.agents.MultiTaskActorCriticPolicy`."""

    def component_roots(self) -> dict[str, tuple[str, nn.Module]]:
        return {"": ("q_net.", self.q_net)}

    # A multi-task Q-network in place of SB3's (the same interface, not a subclass of theirs).
    q_net: MultiTaskQNetwork  # type: ignore[assignment]
    q_net_target: MultiTaskQNetwork  # type: ignore[assignment]

    def make_q_net(self) -> MultiTaskQNetwork:  # type: ignore[override]
        net_args = {**self._update_features_extractor(self.net_args, features_extractor=None)}
        net_args["observation_space"] = self.dict_space
        return MultiTaskQNetwork(
            **net_args, task_names=self.task_names, action_dims=self.action_dims, obs_layout=self.obs_layout
        ).to(self.device)

    def _build(self, lr_schedule) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {self.action_space}")
        self.q_net = self.make_q_net()
        self._setup_transfer()
        # The target network: the same layout (adapters included), equal to the online network.
        self.q_net_target = copy.deepcopy(self.q_net)
        self.q_net_target.requires_grad_(False)
        self.q_net_target.set_training_mode(False)
        self.optimizer = self.make_optimizer(self.param_groups(lr_schedule(1)), lr_schedule(1))

    def sync_targets(self) -> None:
        """The target network equal to the online one (after components were loaded into it)."""
        self.q_net_target.load_state_dict(self.q_net.state_dict())

    @property
    def heads(self) -> QHeads:
        return self.q_net.heads


class TransferDQN(DQN):
    """DQN whose learning-rate schedule keeps the policy's parameter groups apart (``lr_mult``),
    and which stops at the first update that leaves non-finite parameters."""

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        super().train(gradient_steps, batch_size)
        check_losses_finite(self, ("train/loss",))

    def _update_learning_rate(self, optimizers: Any) -> None:
        scaled_learning_rate(self, optimizers)
