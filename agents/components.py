"""Stable component names for a policy's parameters, and per-component state dicts.

Bundle keys name every task's head on its own: the policy's stacked ``heads.action.weight``
``(n_tasks, out, in)`` is stored as ``heads.<task>.action.weight`` ``(out, in)`` per task.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Component -> parameter prefix inside an SB3 policy. pi_/vf_features_extractor are aliases
# of features_extractor when the extractor is shared, and are skipped.
PREFIXES = {"encoder": "features_extractor.", "trunk": "mlp_extractor.", "heads": "heads."}
_ALIASES = ("pi_features_extractor.", "vf_features_extractor.")


def component_of(param_name: str) -> str:
    """``features_extractor.net.0.weight`` -> ``encoder``; ``mlp_extractor...`` -> ``trunk``."""
    for component, prefix in PREFIXES.items():
        if param_name.startswith(prefix):
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
    """The policy's tensors under bundle keys: aliases dropped, heads split per task, copied."""
    task_names = list(policy.heads.task_names)
    out = {}
    for name, tensor in policy.state_dict().items():
        key = to_bundle_key(name)
        if key is None:
            continue
        tensor = tensor.detach().cpu()
        if key.startswith("heads."):
            rest = key[len("heads.") :]
            per_task = tensor.reshape(len(task_names), *_head_shape(policy, rest))
            for i, task in enumerate(task_names):
                out[f"heads.{task}.{rest}"] = per_task[i].clone().contiguous()
        else:
            out[key] = tensor.clone().contiguous()
    return out


def policy_state(tensors: dict[str, torch.Tensor], task_names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`component_state`: bundle tensors -> policy state-dict entries."""
    task_names = list(task_names)
    out, heads = {}, {}
    for key, tensor in tensors.items():
        if key.startswith("heads."):
            task, _, rest = key[len("heads.") :].partition(".")
            heads.setdefault(rest, {})[task] = tensor
        else:
            out[from_bundle_key(key)] = tensor
    for rest, per_task in heads.items():
        stacked = torch.stack([per_task[t] for t in task_names])
        out["heads." + rest] = stacked if rest == "log_std" else stacked.reshape(-1, *stacked.shape[2:])
    return out


def _head_shape(policy: nn.Module, rest: str) -> tuple[int, ...]:
    """One task's shape of a stacked head tensor (``action.weight`` -> ``(out, in)``)."""
    if rest == "log_std":
        return tuple(policy.heads.log_std.shape[1:])
    layer = getattr(policy.heads, rest.split(".")[0])
    return (layer.out_features, layer.in_features) if rest.endswith("weight") else (layer.out_features,)


def bundle_component(key: str) -> str:
    """The component of a bundle key: ``encoder``, ``trunk`` or ``heads.<task>``."""
    if key.startswith("heads."):
        return "heads." + key[len("heads.") :].split(".", 1)[0]
    return component_of(from_bundle_key(key))
