"""A multi-task actor-critic policy for SB3's PPO: shared encoder and trunk, per-task heads.

Components and their parameter prefixes (the names a bundle uses):

- ``encoder``: ``features_extractor.`` (observation and conditioning -> features)
- ``trunk``: ``mlp_extractor.`` (SB3's policy and value layers, shared by every task)
- ``heads``: ``heads.`` (every task's action output, log-std for Box actions, and value output,
  stacked; a bundle names them ``heads.<task>.action.weight``...)

Every sample is routed to its task's head by the ``task`` entry of the observation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from rltransfer.agents.adapters import add_adapters, is_adapter_param
from rltransfer.agents.components import component_of
from rltransfer.agents.heads import TaskHeads

HEAD_MODES = ("per_task", "shared")
SHARED_HEAD = "shared"


def _without_task(obs: Any) -> Any:
    # ``task`` only routes to heads: keep it out of preprocessing (SB3 would one-hot encode it
    # on every call) and out of the encoder's input.
    if isinstance(obs, dict) and "task" in obs:
        return {k: v for k, v in obs.items() if k != "task"}
    return obs


class MultiTaskActorCriticPolicy(ActorCriticPolicy):
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
    Other parameters are SB3's ``ActorCriticPolicy``'s.
    """

    def __init__(
        self,
        *args: Any,
        task_names: Sequence[str] = ("task",),
        heads: str = "per_task",
        frozen: Sequence[str] = (),
        lr_mults: Mapping[str, float] | None = None,
        adapters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        if heads not in HEAD_MODES:
            raise ValueError(f"heads='{heads}' unknown; allowed: {', '.join(HEAD_MODES)}")
        self.task_names = list(task_names) if heads == "per_task" else [SHARED_HEAD]
        self.head_mode = heads
        self.frozen = list(frozen)
        self.lr_mults = dict(lr_mults or {})
        self.adapters = dict(adapters) if adapters else None
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            task_names=self.task_names,
            heads=self.head_mode,
            frozen=self.frozen,
            lr_mults=self.lr_mults,
            adapters=self.adapters,
        )
        return data

    # -- building -----------------------------------------------------------------------------
    def _build(self, lr_schedule) -> None:
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(f"action space {self.action_space} unsupported: use Discrete or Box")
        self._build_mlp_extractor()
        self.heads = TaskHeads(
            self.task_names,
            self.action_dist,
            self.mlp_extractor.latent_dim_pi,
            self.mlp_extractor.latent_dim_vf,
            self.log_std_init,
        )
        if self.ortho_init:
            for module in (self.features_extractor, self.mlp_extractor):
                module.apply(partial(self.init_weights, gain=np.sqrt(2)))
            self.heads.init_weights(action_gain=0.01, value_gain=1.0)
        if self.adapters:
            for component in self.adapters.get("components", ("encoder", "trunk")):
                add_adapters(self.component_module(component), int(self.adapters["rank"]), self.adapters.get("alpha"))
        self._apply_freezing()
        self._build_optimizer(lr_schedule)

    def _build_optimizer(self, lr_schedule) -> None:
        """The optimizer over the trainable parameters, one group per learning-rate multiplier."""
        kwargs = dict(self.optimizer_kwargs)
        if self.optimizer_class is torch.optim.Adam and "foreach" not in kwargs:
            # One kernel updates every parameter tensor (same arithmetic as SB3's default Adam, which
            # on CPU loops over tensors in Python: ~3x slower per step for a small policy).
            kwargs.setdefault("fused", True)
        self.optimizer = self.optimizer_class(self.param_groups(lr_schedule(1)), lr=lr_schedule(1), **kwargs)

    def _matches(self, param_name: str, components: Sequence[str] | Mapping[str, Any]) -> str | None:
        component = component_of(param_name)
        for c in components:
            if component == c or component.startswith(c + "."):
                return c
        return None

    def component_module(self, component: str) -> nn.Module:
        """The module of a component: ``encoder``, ``trunk`` or ``heads``."""
        modules = {"encoder": self.features_extractor, "trunk": self.mlp_extractor, "heads": self.heads}
        if component not in modules:
            raise ValueError(f"unknown component '{component}'; components: {', '.join(modules)}")
        return modules[component]

    def _apply_freezing(self) -> None:
        for name, param in self.named_parameters():
            if self._matches(name, self.frozen) and not is_adapter_param(name):
                param.requires_grad_(False)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Trainable parameters grouped by learning-rate multiplier (frozen ones left out)."""
        groups: dict[float, list[nn.Parameter]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            match = None if is_adapter_param(name) else self._matches(name, self.lr_mults)
            mult = float(self.lr_mults[match]) if match else 1.0
            groups.setdefault(mult, []).append(param)
        return [{"params": ps, "lr": lr * m, "lr_mult": m} for m, ps in groups.items()]

    # -- forward passes -----------------------------------------------------------------------
    def _head_index(self, obs: Any) -> torch.Tensor | None:
        """The ``(batch, heads, 1)`` head mask of a batch (``None`` with a single head)."""
        if len(self.heads) == 1 or not isinstance(obs, dict) or "task" not in obs:
            return None
        return obs["task"].unsqueeze(-1)

    def _dist(self, latent_pi: torch.Tensor, idx: torch.Tensor | None) -> Distribution:
        mean = self.heads.action(latent_pi, idx)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return self.action_dist.proba_distribution(mean, self.heads.log_std_of(idx))
        return self.action_dist.proba_distribution(action_logits=mean)

    def _value(self, latent_vf: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return self.heads.value(latent_vf, idx)

    def extract_features(self, obs: Any, features_extractor=None):  # type: ignore[override]
        return super().extract_features(_without_task(obs), features_extractor)

    def _latents(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        pi_features, vf_features = features
        return self.mlp_extractor.forward_actor(pi_features), self.mlp_extractor.forward_critic(vf_features)

    def forward(self, obs: Any, deterministic: bool = False):
        idx = self._head_index(obs)
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._dist(latent_pi, idx)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), self._value(latent_vf, idx), log_prob

    def evaluate_actions(self, obs: Any, actions: torch.Tensor):
        return self.evaluate_with_distribution(obs, actions)[:3]

    def evaluate_with_distribution(self, obs: Any, actions: torch.Tensor):
        """``evaluate_actions`` plus the action distribution, from one forward pass (kickstarting uses it)."""
        idx = self._head_index(obs)
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._dist(latent_pi, idx)
        return self._value(latent_vf, idx), distribution.log_prob(actions), distribution.entropy(), distribution

    def get_distribution(self, obs: Any) -> Distribution:
        features = super(ActorCriticPolicy, self).extract_features(_without_task(obs), self.pi_features_extractor)
        return self._dist(self.mlp_extractor.forward_actor(features), self._head_index(obs))

    def predict_values(self, obs: Any) -> torch.Tensor:
        features = super(ActorCriticPolicy, self).extract_features(_without_task(obs), self.vf_features_extractor)
        return self._value(self.mlp_extractor.forward_critic(features), self._head_index(obs))
