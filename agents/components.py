"""Stable component names for a policy's parameters, and per-component state dicts."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Component -> parameter prefix inside an SB3 policy. pi_/vf_features_extractor are aliases
# of features_extractor when the extractor is shared, and are skipped.
PREFIXES = {"encoder": "features_extractor.", "trunk": "mlp_extractor.", "heads": "heads."}
_ALIASES = ("pi_features_extractor.", "vf_features_extractor.")


def component_of(param_name: str) -> str:
    """``features_extractor.net.0.weight`` -> ``encoder``; ``heads.short.value.bias`` -> ``heads.short``."""
    for component, prefix in PREFIXES.items():
        if param_name.startswith(prefix):
            if component == "heads":
                return "heads." + param_name[len(prefix) :].split(".", 1)[0]
            return component
    for alias in _ALIASES:
        if param_name.startswith(alias):
            return "encoder"
    return param_name.split(".", 1)[0]


def to_bundle_key(param_name: str) -> str | None:
    """The bundle key of a policy parameter (``encoder.net.0.weight``), ``None`` for aliases."""
    if param_name.startswith(_ALIASES):
        return None
    for component, prefix in PREFIXES.items():
        if param_name.startswith(prefix):
            return component + "." + param_name[len(prefix) :]
    return param_name


def from_bundle_key(key: str) -> str:
    """Inverse of :func:`to_bundle_key`."""
    component, _, rest = key.partition(".")
    return PREFIXES[component] + rest if component in PREFIXES else key


def component_state(policy: nn.Module) -> dict[str, torch.Tensor]:
    """The policy's parameters and buffers under bundle keys (aliases dropped, tensors copied)."""
    out = {}
    for name, tensor in policy.state_dict().items():
        key = to_bundle_key(name)
        if key is not None:
            out[key] = tensor.detach().cpu().clone().contiguous()
    return out


def components_in(keys: Iterable[str]) -> list[str]:
    """Distinct component names among bundle keys, in order (``encoder``, ``trunk``, ``heads.a``...)."""
    seen: dict[str, None] = {}
    for key in keys:
        seen.setdefault(component_of(from_bundle_key(key)), None)
    return list(seen)
