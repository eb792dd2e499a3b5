"""A multi-task actor-critic policy for SB3's PPO: shared encoder and trunk, per-task heads.

Components and their parameter prefixes (the names a bundle uses):

- ``encoder``: ``features_extractor.`` (observation and conditioning -> features)
- ``trunk``: ``mlp_extractor.`` (SB3's policy and value layers, shared by every task)
- ``heads``: ``heads.`` (every task's action output, log-std for Box actions, and value output,
  stacked; a bundle names them ``heads.<task>.action.weight``...)

Every sample is routed to its task's head by the ``task`` entry of the observation.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy

from rltransfer.agents.heads import TaskHeads
from rltransfer.agents.transferable import HEAD_MODES, SHARED_HEAD, TransferableMixin, head_mask

__all__ = ["HEAD_MODES", "SHARED_HEAD", "MultiTaskActorCriticPolicy"]


class MultiTaskActorCriticPolicy(TransferableMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose action and value outputs are per-task heads.

    :param task_names: one head per name (with ``heads="per_task"``); the ``task`` observation
        entry indexes this list.
    :param heads: ``per_task`` | ``shared`` (one head, conditioned through the observation).
    :param frozen: names of components whose parameters never train (``encoder``, ``trunk``,
        ``heads``); applied at build time, so it survives save and load.
    :param lr_mults: component name -> learning-rate multiplier; the optimizer gets one
        parameter group per multiplier, tagged ``lr_mult`` (see :class:`rltransfer.agents.TransferPPO`).
    :param adapters: ``{"rank": r, "alpha": a, "components": [...]}``: low-rank adapters on the
        linear layers of these components (their ``lora_*`` parameters train even when the
        component is frozen); built in ``_build``, so they survive save and load.
    :param action_dims: each head's own number of Discrete actions, for tasks whose action
        spaces differ (:mod:`rltransfer.envs.mixed`); the others get probability 0.
    Other parameters are SB3's ``ActorCriticPolicy``'s.
    """

    # -- building -----------------------------------------------------------------------------
    def _build(self, lr_schedule) -> None:
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
            raise ValueError(
                f"action space {self.action_space} unsupported: use Discrete, Box, MultiDiscrete or MultiBinary"
            )
        self._build_mlp_extractor()
        self.heads = TaskHeads(
            self.task_names,
            self.action_dist,
            self.mlp_extractor.latent_dim_pi,
            self.mlp_extractor.latent_dim_vf,
            self.log_std_init,
            self.action_dims,
        )
        if self.ortho_init:
            for module in (self.features_extractor, self.mlp_extractor):
                module.apply(partial(self.init_weights, gain=np.sqrt(2)))
            self.heads.init_weights(action_gain=0.01, value_gain=1.0)
        self._setup_transfer()
        self.optimizer = self.make_optimizer(self.param_groups(lr_schedule(1)), lr_schedule(1))

    # -- forward passes -----------------------------------------------------------------------
    def _head_index(self, obs: Any) -> torch.Tensor | None:
        return head_mask(obs, len(self.heads))

    def _dist(self, latent_pi: torch.Tensor, idx: torch.Tensor | None) -> Distribution:
        mean = self.heads.action_out(latent_pi, idx)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return self.action_dist.proba_distribution(mean, self.heads.log_std_of(idx))
        return self.action_dist.proba_distribution(action_logits=mean)

    def _value(self, latent_vf: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return self.heads.value(latent_vf, idx)

    def extract_features(self, obs: Any, features_extractor=None):
        return super().extract_features(self._encoder_input(obs), features_extractor)

    def _latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        pi_features, vf_features = features
        return self.mlp_extractor.forward_actor(pi_features), self.mlp_extractor.forward_critic(vf_features)

    def forward(self, obs: Any, deterministic: bool = False):
        distribution, values = self.distribution_and_value(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *(self.action_space.shape or ()))), values, log_prob

    def _action_params(self, latent_pi: torch.Tensor, idx: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        out = self.heads.action_out(latent_pi, idx)
        return (out, self.heads.log_std_of(idx)) if isinstance(self.action_dist, DiagGaussianDistribution) else (out,)

    def action_params_and_value(self, obs: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The action distribution's parameters (``(logits,)``; ``(mean, log_std)`` for Box actions) and the
        value of ``obs``, from one forward pass: the network alone, which the batched engine runs for all its
        seeds at once (:mod:`rltransfer.agents.batched_ppo`; it builds the distributions as SB3's do)."""
        idx = self._head_index(obs)
        latent_pi, latent_vf = self._latents(obs)
        return self._action_params(latent_pi, idx), self._value(latent_vf, idx)

    def action_params(self, obs: Any) -> tuple[torch.Tensor, ...]:
        """The action distribution's parameters alone, from the actor's part of the network (what acting
        without learning needs, as SB3's ``predict`` computes its distribution: ``get_distribution``)."""
        return self._action_params(self._actor_latent(obs), self._head_index(obs))

    def distribution_and_value(self, obs: Any) -> tuple[Distribution, torch.Tensor]:
        """The action distribution and the value of ``obs``, from one forward pass (what acting needs)."""
        idx = self._head_index(obs)
        latent_pi, latent_vf = self._latents(obs)
        return self._dist(latent_pi, idx), self._value(latent_vf, idx)

    def evaluate_actions(self, obs: Any, actions: torch.Tensor):
        return self.evaluate_with_distribution(obs, actions)[:3]

    def evaluate_with_distribution(self, obs: Any, actions: torch.Tensor):
        """``evaluate_actions`` plus the action distribution, from one forward pass (kickstarting uses it)."""
        idx = self._head_index(obs)
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._dist(latent_pi, idx)
        return self._value(latent_vf, idx), distribution.log_prob(actions), distribution.entropy(), distribution

    def _actor_latent(self, obs: Any) -> torch.Tensor:
        features = super(ActorCriticPolicy, self).extract_features(self._encoder_input(obs), self.pi_features_extractor)
        return self.mlp_extractor.forward_actor(features)

    def get_distribution(self, obs: Any) -> Distribution:
        return self._dist(self._actor_latent(obs), self._head_index(obs))

    def predict_values(self, obs: Any) -> torch.Tensor:
        features = super(ActorCriticPolicy, self).extract_features(self._encoder_input(obs), self.vf_features_extractor)
        return self._value(self.mlp_extractor.forward_critic(features), self._head_index(obs))
