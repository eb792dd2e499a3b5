"""Multi-task SAC: actor and critics made of encoder, trunk and per-task heads, and one entropy
coefficient per task (multi-task SAC as in Yu et al. 2019, Meta-World, and mtrl).

Networks and their components (bundle keys ``encoder.actor.*``, ``trunk.critic.*``,
``heads.<task>.actor.mu.weight``...):

- ``actor``: ``features_extractor`` (encoder), ``mlp_extractor`` (trunk: the policy layers),
  ``heads`` (each task's mean and log-std layers);
- ``critic``: ``features_extractor`` (its own encoder, as in SB3's SAC), ``mlp_extractor`` (the
  hidden layers of each of the ``n_critics`` Q-networks, over features and action), ``heads``
  (each task's output layer of each Q-network).

The critic target has the critic's layout, starts equal to it and follows it as in SB3; it is no
component of a bundle, and the replay buffer never travels either.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from torch import nn
from torch.nn import functional as F

from rltransfer.agents.encoders import hidden_layers
from rltransfer.agents.heads import StackedLinear
from rltransfer.agents.transferable import ObsLayout, TransferableMixin, encode, route
from rltransfer.agents.updates import check_losses_finite, scaled_learning_rate

COPIED_FROM = (
    "stable_baselines3.SAC.train",
    "2.9.2",
    "0ac7abe1c18ba7fe1b8a5bbf2b301b6fff4f4573aa02c4342187a953600ce50c",
)
"""``TransferSAC.train`` restates this SB3 method (the sha256 of its source at that version); a test fails
when the installed SB3's differs, so that the copy is compared with it again."""


class ActorHeads(nn.Module):
    """Every task's Gaussian mean (``mu``) and log-std (``log_std``) layers, stacked."""

    def __init__(self, task_names: Sequence[str], latent: int, action_dim: int):
        super().__init__()
        self.task_names = list(task_names)
        self.mu = StackedLinear(len(self.task_names), latent, action_dim)
        self.log_std = StackedLinear(len(self.task_names), latent, action_dim)

    def __len__(self) -> int:
        return len(self.task_names)


class CriticHeads(nn.Module):
    """Every task's output layer of each Q-network (``q.<k>``), stacked."""

    def __init__(self, task_names: Sequence[str], latents: Sequence[int]):
        super().__init__()
        self.task_names = list(task_names)
        self.q = nn.ModuleList(StackedLinear(len(self.task_names), w, 1) for w in latents)

    def __len__(self) -> int:
        return len(self.task_names)


class MultiTaskActor(BasePolicy):
    """SB3's SAC ``Actor`` interface (squashed Gaussian, state-dependent log-std) with per-task heads."""

    action_space: spaces.Box
    heads: ActorHeads
    mlp_extractor: nn.Module

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: Sequence[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        task_names: Sequence[str] = ("task",),
        obs_layout: ObsLayout | None = None,
        **_sde: Any,  # use_sde, log_std_init, full_std, use_expln, clip_mean: gSDE is not supported
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor,
            normalize_images=normalize_images, squash_output=True,
        )  # fmt: skip
        self.net_arch = list(net_arch)
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.obs_layout = obs_layout
        self.mlp_extractor, width = hidden_layers(features_dim, self.net_arch, activation_fn)
        action_dim = get_action_dim(action_space)
        self.heads = ActorHeads(task_names, width, action_dim)
        self.action_dist = SquashedDiagGaussianDistribution(action_dim)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch, features_dim=self.features_dim, activation_fn=self.activation_fn,
            features_extractor=self.features_extractor, task_names=self.heads.task_names, obs_layout=self.obs_layout,
        )  # fmt: skip
        return data

    def get_action_dist_params(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        latent = self.mlp_extractor(encode(self, obs))
        mask = route(obs, self.obs_layout, len(self.heads))
        log_std = torch.clamp(self.heads.log_std(latent, mask), LOG_STD_MIN, LOG_STD_MAX)
        return self.heads.mu(latent, mask), log_std, {}

    def forward(self, obs: Any, deterministic: bool = False) -> torch.Tensor:
        mean, log_std, _ = self.get_action_dist_params(obs)
        return self.action_dist.actions_from_params(mean, log_std, deterministic=deterministic)

    def action_log_prob(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std, _ = self.get_action_dist_params(obs)
        return self.action_dist.log_prob_from_params(mean, log_std)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self(observation, deterministic)


class MultiTaskCritic(BaseModel):
    """SB3's ``ContinuousCritic`` interface (``n_critics`` Q-networks over features and action)
    with per-task output layers."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: Sequence[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        task_names: Sequence[str] = ("task",),
        obs_layout: ObsLayout | None = None,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.obs_layout = obs_layout
        trunks, widths = [], []
        for _ in range(n_critics):
            trunk, width = hidden_layers(features_dim + get_action_dim(action_space), net_arch, activation_fn)
            trunks.append(trunk)
            widths.append(width)
        self.mlp_extractor = nn.ModuleList(trunks)
        self.heads = CriticHeads(task_names, widths)

    def forward(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.set_grad_enabled(not self.share_features_extractor):
            features = encode(self, obs)
        x = torch.cat([features, actions], dim=1)
        mask = route(obs, self.obs_layout, len(self.heads))
        return tuple(head(trunk(x), mask) for trunk, head in zip(self.mlp_extractor, self.heads.q))

    def q1_forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = encode(self, obs)
        x = torch.cat([features, actions], dim=1)
        return self.heads.q[0](self.mlp_extractor[0](x), route(obs, self.obs_layout, len(self.heads)))


class MultiTaskSACPolicy(TransferableMixin, SACPolicy):
    """SB3's ``SACPolicy`` with a :class:`MultiTaskActor` and :class:`MultiTaskCritic`;
    ``task_names``, ``heads``, ``frozen``, ``lr_mults`` and ``adapters`` as for
    :class:`~rltransfer.agents.MultiTaskActorCriticPolicy` (a component is frozen, scaled or
    adapted in actor and critic alike)."""

    def component_roots(self) -> dict[str, tuple[str, nn.Module]]:
        return {"actor": ("actor.", self.actor), "critic": ("critic.", self.critic)}

    def sync_targets(self) -> None:
        """The critic target equal to the critic (after components were loaded into it)."""
        self.critic_target.load_state_dict(self.critic.state_dict())

    @property
    def heads(self) -> ActorHeads:
        return self.actor.heads

    # A multi-task actor and critic in place of SB3's (the same interface, not subclasses of theirs).
    actor: MultiTaskActor  # type: ignore[assignment]
    critic: MultiTaskCritic  # type: ignore[assignment]
    critic_target: MultiTaskCritic  # type: ignore[assignment]
    task_names: list[str]

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> MultiTaskActor:  # type: ignore[override]
        kwargs = {**self._update_features_extractor(self.actor_kwargs, features_extractor)}
        kwargs["observation_space"] = self.dict_space
        return MultiTaskActor(**kwargs, task_names=self.task_names, obs_layout=self.obs_layout).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> MultiTaskCritic:  # type: ignore[override]
        kwargs = {**self._update_features_extractor(self.critic_kwargs, features_extractor)}
        kwargs["observation_space"] = self.dict_space
        return MultiTaskCritic(**kwargs, task_names=self.task_names, obs_layout=self.obs_layout).to(self.device)

    def _build(self, lr_schedule) -> None:
        if not isinstance(self.action_space, spaces.Box):
            raise ValueError(f"SAC needs a Box action space, got {self.action_space}")
        self.actor = self.make_actor()
        shared = self.share_features_extractor
        self.critic = self.make_critic(features_extractor=self.actor.features_extractor if shared else None)
        self._setup_transfer()
        self.critic_target = copy.deepcopy(self.critic)  # its own copy of a shared encoder too, as in SB3
        self.critic_target.requires_grad_(False)
        self.critic_target.set_training_mode(False)
        lr = lr_schedule(1)
        self.actor.optimizer = self.make_optimizer(self.param_groups(lr, ["actor"]), lr)
        critic_groups = self.param_groups(lr, ["critic"])
        if shared:  # the critic loss does not train the shared encoder (SB3's choice)
            own = {id(p) for p in self.actor.features_extractor.parameters()}
            critic_groups = [{**g, "params": [p for p in g["params"] if id(p) not in own]} for g in critic_groups]
            critic_groups = [g for g in critic_groups if g["params"]]
        self.critic.optimizer = self.make_optimizer(critic_groups, lr)


class TransferSAC(SAC):
    """SB3's SAC with one learned entropy coefficient per task head (``ent_coef="auto"``), per-group
    learning-rate multipliers, and a stop at the first update that leaves non-finite parameters.

    Each sample's entropy term uses its own task's coefficient, and each coefficient is tuned
    toward the target entropy on its own task's samples only. A fixed ``ent_coef`` (a number) is
    shared by every task, as in SB3. :attr:`ent_coefs` maps head name -> current coefficient.
    """

    policy: MultiTaskSACPolicy
    actor: MultiTaskActor  # type: ignore[assignment]
    critic: MultiTaskCritic  # type: ignore[assignment]
    critic_target: MultiTaskCritic  # type: ignore[assignment]
    log_ent_coef: torch.Tensor

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.ent_coef_optimizer is not None:
            n = len(self.policy.heads)
            init = float(self.log_ent_coef.detach().exp()[0])
            self.log_ent_coef = torch.log(torch.full((n,), init, device=self.device)).requires_grad_(True)
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))

    @property
    def ent_coefs(self) -> dict[str, float]:
        names = self.policy.heads.task_names
        if self.ent_coef_optimizer is None:
            return {n: float(self.ent_coef_tensor) for n in names}
        return dict(zip(names, self.log_ent_coef.detach().exp().tolist()))

    def _update_learning_rate(self, optimizers: Any) -> None:
        scaled_learning_rate(self, optimizers)

    def _log_alpha(self, obs: Any, batch: int) -> torch.Tensor:
        """Each sample's log entropy coefficient, ``(batch, 1)``."""
        mask = route(obs, self.policy.obs_layout, len(self.policy.heads))
        if mask is None:
            return self.log_ent_coef[:1].expand(batch, 1)
        return (mask.squeeze(1) * self.log_ent_coef).sum(1, keepdim=True)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        # SB3's SAC.train (COPIED_FROM) with per-task entropy coefficients (SB3 has no hook for them).
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        ent_coef_losses, ent_coefs, actor_losses, critic_losses = [], [], [], []
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            if self.use_sde:  # log_std may have changed between two gradient steps
                self.actor.reset_noise()  # type: ignore[operator]  # gSDE: refused for a multi-task actor
            actions_pi, log_prob = self.actor.action_log_prob(data.observations)
            log_prob = log_prob.reshape(-1, 1)
            if self.ent_coef_optimizer is not None:
                log_alpha = self._log_alpha(data.observations, data.rewards.shape[0])
                ent_coef = log_alpha.detach().exp()
                ent_coef_loss = -(log_alpha * (log_prob + self.target_entropy).detach()).mean()  # type: ignore[operator]
                ent_coef_losses.append(ent_coef_loss.item())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(float(ent_coef.mean()))
            with torch.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
                next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q, _ = torch.min(next_q, dim=1, keepdim=True)
                next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q
            current_q = self.critic(data.observations, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            assert isinstance(critic_loss, torch.Tensor)  # for the type checker (SB3's line)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            q_pi = torch.cat(self.critic(data.observations, actions_pi), dim=1)
            min_q_pi, _ = torch.min(q_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_q_pi).mean()
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        for name, value in self.ent_coefs.items():
            self.logger.record(f"train/ent_coef/{name}", value)
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        check_losses_finite(self, ("train/actor_loss", "train/critic_loss", "train/ent_coef_loss"))
