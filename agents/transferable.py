"""What every rltransfer policy (PPO, DQN, SAC) shares: per-task heads by name, frozen components,
per-component learning-rate multipliers and low-rank adapters, all applied when the policy is built,
so that they survive SB3's save and load."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rltransfer.agents.adapters import add_adapters, is_adapter_param
from rltransfer.agents.component_names import FREEZABLE, PREFIXES, TRUNK_SIDES, trunk_side
from rltransfer.agents.components import component_roots, frozen_param, iter_component_params, network_modules
from rltransfer.observation_keys import OBS, TASK

HEAD_MODES = ("per_task", "shared")
SHARED_HEAD = "shared"


ObsLayout = Sequence[tuple[str, int]]
"""Entries of a flat observation in order: name (``obs``, ``context``, ``task``) and length."""


def split_observation(obs: Any, layout: ObsLayout | None) -> Any:
    """A flat ``(batch, n)`` observation as the dict of its entries (column views, no copy);
    anything else unchanged."""
    if layout is None or isinstance(obs, dict):
        return obs
    out, start = {}, 0
    for key, size in layout:
        out[key] = obs[:, start : start + size]
        start += size
    return out


def task_columns(layout: ObsLayout) -> int:
    """How many trailing columns of a flat observation are its ``task`` entry (0: none)."""
    return int(layout[-1][1]) if layout and layout[-1][0] == TASK else 0


def encode(net: Any, obs: Any) -> torch.Tensor:
    """``net``'s features of ``obs`` (``net``: an SB3 network with ``features_extractor`` and
    ``obs_layout``). An encoder that reads its entries concatenated (``reads_columns``) gets a flat
    observation's leading columns as they stand (no split, no copy), unless it routes by ``task``
    (stems); any other gets the Dict of the entries."""
    extractor, layout = net.features_extractor, net.obs_layout
    fast = getattr(extractor, "reads_columns", False) and not getattr(extractor, "needs_task", False)
    if layout is not None and fast and not isinstance(obs, dict):
        n = task_columns(layout)
        return extractor((obs[:, :-n] if n else obs).float())
    obs = split_observation(obs, layout)
    return net.extract_features(encoder_input(obs, extractor), extractor)


def route(obs: Any, layout: ObsLayout | None, n_heads: int) -> torch.Tensor | None:
    """The head mask of a flat or dict observation (see :func:`head_mask`)."""
    if n_heads == 1:
        return None
    if layout is not None and not isinstance(obs, dict):
        n = task_columns(layout)  # float32 as the network computes, where the task's observations are float64
        return obs[:, -n:].unsqueeze(1).float() if n else None
    return head_mask(obs, n_heads)


def layout_space(space: spaces.Box, layout: ObsLayout) -> spaces.Dict:
    """The Dict of a flat Box's entries (their bounds sliced from the Box's)."""
    entries: dict[str, spaces.Space] = {}
    start = 0
    for key, size in layout:
        sl = slice(start, start + size)
        entries[key] = spaces.Box(space.low[sl], space.high[sl], (size,), space.dtype)
        start += size
    return spaces.Dict(entries)


def without_task(obs: Any) -> Any:
    """The observation without its ``task`` entry, which only routes samples to heads (SB3 would
    one-hot encode a Discrete one on every call, and the encoder must not read it)."""
    if isinstance(obs, dict) and TASK in obs:
        return {k: v for k, v in obs.items() if k != TASK}
    return obs


def encoder_input(obs: Any, extractor: Any) -> Any:
    """What an encoder reads: the observation without ``task``, unless its input stems route by it."""
    return obs if getattr(extractor, "needs_task", False) else without_task(obs)


def head_mask(obs: Any, n_heads: int) -> torch.Tensor | None:
    """The ``(batch, 1, heads)`` head mask of a batch (``None`` with a single head)."""
    if n_heads == 1 or not isinstance(obs, dict) or TASK not in obs:
        return None
    return obs[TASK].unsqueeze(1)


class TransferableMixin:
    """Mixed into an SB3 policy (before it in the bases): keyword arguments ``task_names``, ``heads``,
    ``frozen``, ``lr_mults``, ``adapters``, ``action_dims``, ``new_stems`` (see
    :class:`~rltransfer.agents.MultiTaskActorCriticPolicy`); the others go to the SB3 policy. They are
    constructor parameters, so SB3's save and load keep them.

    The policy's networks (``component_roots()``) each hold ``features_extractor``,
    ``mlp_extractor`` and ``heads``.

    ``obs_layout`` (see :func:`split_observation`): the observation is one flat Box of the named
    entries (``MultiTaskVecEnv(flat=True)``); the networks read it as the Dict :attr:`dict_space`,
    so their weights are those of a policy on the Dict, and ``predict`` takes either form.
    """

    heads: Any
    """The per-task (or shared) heads: a TaskHeads, or for SAC the actor's and critics' (registered by
    the policy's own constructor)."""
    # What the SB3 policy it is mixed into provides:
    training: bool
    features_extractor: Any  # BaseModel's (None until built)
    optimizer_class: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]

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
        obs_layout: ObsLayout | None = None,
        **kwargs: Any,
    ):
        self._init_transfer(task_names, heads, frozen, lr_mults, adapters, action_dims)
        self.new_stems = bool(new_stems)
        self.obs_layout = [(str(k), int(n)) for k, n in obs_layout] if obs_layout else None
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
        unknown = [c for c in frozen if c not in FREEZABLE]
        if unknown:
            raise ValueError(f"cannot freeze '{unknown[0]}'; allowed: {', '.join(FREEZABLE)}")
        unknown = [c for c in lr_mults or {} if c not in PREFIXES]
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
            obs_layout=self.obs_layout,
        )  # fmt: skip

    @property
    def dict_space(self) -> spaces.Space:
        """The observation as the networks read it: the Dict of a flat observation's entries, else
        the observation space itself."""
        if self.obs_layout is None:
            return self.observation_space  # type: ignore[attr-defined]
        return layout_space(self.observation_space, self.obs_layout)  # type: ignore[attr-defined]

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """SB3's, on :attr:`dict_space`."""
        return self.features_extractor_class(self.dict_space, **self.features_extractor_kwargs)  # type: ignore

    def obs_to_tensor(self, observation: Any) -> tuple[Any, bool]:
        """SB3's; a dict observation given to a policy on a flat layout is flattened first. A task's own
        observation, without the entries the policy was trained with, is refused with what to do."""
        if self.obs_layout is not None and isinstance(observation, dict):
            dtype = self.observation_space.dtype  # type: ignore[attr-defined]
            observation = np.concatenate([np.asarray(observation[k]) for k, _ in self.obs_layout], -1, dtype=dtype)
        self._check_entries(observation)
        return super().obs_to_tensor(observation)  # type: ignore[misc]

    def _check_entries(self, observation: Any) -> None:
        space = self.observation_space  # type: ignore[attr-defined]
        if isinstance(space, spaces.Dict):
            if isinstance(observation, dict):
                missing = [k for k in space.spaces if k not in observation]
            else:
                missing = [k for k in space.spaces if k != OBS]
            got = "an array" if not isinstance(observation, dict) else f"the entries {sorted(observation)}"
        elif self.obs_layout is not None and np.shape(observation)[-1:] != space.shape[-1:]:
            missing = [k for k, _ in self.obs_layout if k != OBS]
            got = f"{np.shape(observation)[-1:][0] if np.ndim(observation) else 0} values a row"
            got += f", not the {space.shape[-1]} of {', '.join(f'{k} ({n})' for k, n in self.obs_layout)}"
        else:
            return
        if missing:
            raise ValueError(
                f"this agent's observations carry the entries {list(cast(spaces.Dict, self.dict_space).spaces)} "
                f"it was trained with, and it got {got} (missing: {', '.join(missing)}). A task's own env "
                "lacks them: wrap it with rltransfer.wrap_target_env(model, env) (a saved target agent), or "
                "build it with rltransfer.make_target_env(bundle, task)"
            )

    def set_training_mode(self, mode: bool) -> None:
        """SB3's, skipped when the policy is already in ``mode``.

        SB3 calls it before every prediction and every update, and each call walks the whole module
        tree (about a tenth of a small off-policy agent's time per step); the mode only changes
        through it or ``train``/``eval``, which keep ``self.training`` current.
        """
        if self.training == mode:
            return
        super().set_training_mode(mode)  # type: ignore[misc]
        self.training = mode

    def _encoder_input(self, obs: Any, extractor: nn.Module | None = None) -> Any:
        """What the encoder reads: the observation without ``task``, unless its stems route by it."""
        return encoder_input(obs, extractor if extractor is not None else self.features_extractor)

    def component_module(self, component: str) -> nn.Module:
        """A component's module (with several networks, as SAC's actor and critic: a ModuleList of them)."""
        if component not in PREFIXES:
            raise ValueError(f"unknown component '{component}'; components: {', '.join(PREFIXES)}")
        modules = network_modules(cast(nn.Module, self), component)
        return modules[0] if len(modules) == 1 else nn.ModuleList(modules)

    def _setup_transfer(self) -> None:
        """Adapters, then freezing: call at the end of ``_build``, before building optimizers."""
        if self.adapters:
            for component in self.adapters.get("components", ("encoder", "trunk")):
                for module in network_modules(cast(nn.Module, self), component):
                    add_adapters(module, int(self.adapters["rank"]), self.adapters.get("alpha"))
        sides_seen = set()
        for _, (_, module) in component_roots(cast(nn.Module, self)).items():
            for name, param in module.named_parameters():
                sides_seen.add(trunk_side(name))
                if frozen_param(name, self.frozen) and not is_adapter_param(name) and not self._is_new_stem(name):
                    param.requires_grad_(False)
        missing = [side for side in TRUNK_SIDES if side in self.frozen and side not in sides_seen]
        if missing:
            raise ValueError(
                f"cannot freeze '{missing[0]}': this policy's trunk has no such side (an actor-critic trunk "
                "with pi and vf layers, as PPO's, has)"
            )

    def _is_new_stem(self, name: str) -> bool:
        """A parameter of an input stem that is new (not transferred): it trains at the full rate even
        when the rest of its encoder is frozen or scaled."""
        return getattr(self, "new_stems", False) and ".stems." in name

    def param_groups(self, lr: float, networks: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Trainable parameters (of the named networks, default all) grouped by learning-rate
        multiplier, each group tagged ``lr_mult``; frozen ones left out."""
        roots = component_roots(cast(nn.Module, self))
        prefixes = tuple(roots[n][0] for n in networks) if networks is not None else ("",)
        groups: dict[float, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for component, name, param in iter_component_params(cast(nn.Module, self)):
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
        return self.optimizer_class(groups, lr=lr, **kwargs)  # type: ignore[call-arg]  # every torch optimizer takes lr


class TransferablePolicy(TransferableMixin, BasePolicy):
    """For annotations: an SB3 policy with :class:`TransferableMixin` (every rltransfer policy is one).
    Never instantiated; :func:`transferable` narrows a policy to it."""


def transferable(policy: Any) -> TransferablePolicy:
    """``policy``, checked to be an rltransfer policy (one with :class:`TransferableMixin`)."""
    if not isinstance(policy, TransferableMixin):
        raise TypeError(f"{type(policy).__name__} is not an rltransfer policy (it lacks TransferableMixin)")
    return cast(TransferablePolicy, policy)
