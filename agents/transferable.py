"""What every rltransfer policy (PPO, DQN, SAC) shares: per-task heads by name, frozen components,
per-component learning-rate multipliers and low-rank adapters, all applied when the policy is built,
so that they survive SB3's save and load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rltransfer.agents.adapters import add_adapters, is_adapter_param
from rltransfer.agents.components import PREFIXES, component_roots, iter_component_params, network_modules

HEAD_MODES = ("per_task", "shared")
SHARED_HEAD = "shared"


def without_task(obs: Any) -> Any:
    """The observation without its ``task`` entry, which only routes samples to heads (SB3 would
    one-hot encode a Discrete one on every call, and the encoder must not read it)."""
    if isinstance(obs, dict) and "task" in obs:
        return {k: v for k, v in obs.items() if k != "task"}
    return obs


def encoder_input(obs: Any, extractor: Any) -> Any:
    """What an encoder reads: the observation without ``task``, unless its input stems route by it."""
    return obs if getattr(extractor, "needs_task", False) else without_task(obs)


def head_mask(obs: Any, n_heads: int) -> torch.Tensor | None:
    """The ``(batch, heads, 1)`` head mask of a batch (``None`` with a single head)."""
    if n_heads == 1 or not isinstance(obs, dict) or "task" not in obs:
        return None
    return obs["task"].unsqueeze(-1)


class TransferableMixin:
    """Mixed into an SB3 policy (before it in the bases): keyword arguments ``task_names``, ``heads``,
    ``frozen``, ``lr_mults``, ``adapters``, ``action_dims``, ``new_stems`` (see
    :class:`~rltransfer.agents.MultiTaskActorCriticPolicy`); the others go to the SB3 policy. They are
    constructor parameters, so SB3's save and load keep them.

    The policy's networks (``component_roots()``) each hold ``features_extractor``,
    ``mlp_extractor`` and ``heads``.
    """

    def __init__(
        self,
        *args: Any,
        task_names: Sequence[str] = ("task",),
        heads: str = "per_task",
        frozen: Sequence[str] = (),
        lr_mults: Mapping[str, float] | None = None,
        adapters: Mapping[str, Any] | None = None,
        action_dims: Sequence[int] | None = None,
        new_stems: bool = False,
        **kwargs: Any,
    ):
        self._init_transfer(task_names, heads, frozen, lr_mults, adapters, action_dims)
        self.new_stems = bool(new_stems)
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self._transfer_parameters())
        return data

    def _init_transfer(
        self,
        task_names: Sequence[str],
        heads: str,
        frozen: Sequence[str],
        lr_mults: Mapping[str, float] | None,
        adapters: Mapping[str, Any] | None,
        action_dims: Sequence[int] | None = None,
    ) -> None:
        if heads not in HEAD_MODES:
            raise ValueError(f"heads='{heads}' unknown; allowed: {', '.join(HEAD_MODES)}")
        unknown = [c for c in [*frozen, *(lr_mults or {})] if c not in PREFIXES]
        if unknown:
            raise ValueError(f"unknown component '{unknown[0]}'; components: {', '.join(PREFIXES)}")
        self.task_names = list(task_names) if heads == "per_task" else [SHARED_HEAD]
        self.head_mode = heads
        self.frozen = list(frozen)
        self.lr_mults = dict(lr_mults or {})
        self.adapters = dict(adapters) if adapters else None
        self.action_dims = [int(d) for d in action_dims] if action_dims is not None else None
        if self.action_dims is not None and len(self.action_dims) != len(self.task_names):
            raise ValueError(f"action_dims {self.action_dims} must give one number per head ({len(self.task_names)})")

    def _transfer_parameters(self) -> dict[str, Any]:
        return dict(
            task_names=self.task_names, heads=self.head_mode, frozen=self.frozen, lr_mults=self.lr_mults,
            adapters=self.adapters, action_dims=self.action_dims, new_stems=self.new_stems,
        )  # fmt: skip

    def _encoder_input(self, obs: Any, extractor: nn.Module | None = None) -> Any:
        """What the encoder reads: the observation without ``task``, unless its stems route by it."""
        return encoder_input(obs, extractor if extractor is not None else self.features_extractor)

    def component_module(self, component: str) -> nn.Module:
        """A component's module (with several networks, as SAC's actor and critic: a ModuleList of them)."""
        if component not in PREFIXES:
            raise ValueError(f"unknown component '{component}'; components: {', '.join(PREFIXES)}")
        modules = network_modules(self, component)
        return modules[0] if len(modules) == 1 else nn.ModuleList(modules)

    def _setup_transfer(self) -> None:
        """Adapters, then freezing: call at the end of ``_build``, before building optimizers."""
        if self.adapters:
            for component in self.adapters.get("components", ("encoder", "trunk")):
                for module in network_modules(self, component):
                    add_adapters(module, int(self.adapters["rank"]), self.adapters.get("alpha"))
        for component, name, param in iter_component_params(self):
            if component in self.frozen and not is_adapter_param(name) and not self._is_new_stem(name):
                param.requires_grad_(False)

    def _is_new_stem(self, name: str) -> bool:
        """A parameter of an input stem that is new (not transferred): it trains at the full rate even
        when the rest of its encoder is frozen or scaled."""
        return getattr(self, "new_stems", False) and ".stems." in name

    def param_groups(self, lr: float, networks: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Trainable parameters (of the named networks, default all) grouped by learning-rate
        multiplier, each group tagged ``lr_mult``; frozen ones left out."""
        roots = component_roots(self)
        prefixes = tuple(roots[n][0] for n in networks) if networks is not None else ("",)
        groups: dict[float, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for component, name, param in iter_component_params(self):
            if not param.requires_grad or not name.startswith(prefixes) or id(param) in seen:
                continue
            seen.add(id(param))
            new = is_adapter_param(name) or self._is_new_stem(name)
            mult = 1.0 if new else float(self.lr_mults.get(component, 1.0))
            groups.setdefault(mult, []).append(param)
        return [{"params": ps, "lr": lr * m, "lr_mult": m} for m, ps in groups.items()]

    def make_optimizer(self, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        """The policy's optimizer class over ``groups``; Adam runs fused (one kernel updates every
        parameter tensor: same arithmetic as SB3's default Adam, which on CPU loops over tensors
        in Python, ~3x slower per step for a small network)."""
        kwargs = dict(self.optimizer_kwargs)
        if self.optimizer_class is torch.optim.Adam and "foreach" not in kwargs:
            kwargs.setdefault("fused", True)
        return self.optimizer_class(groups, lr=lr, **kwargs)
