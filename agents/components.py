"""Stable component names for a policy's parameters, and per-component state dicts.

Every rltransfer policy is made of one or more *networks* (PPO's actor-critic policy is one, DQN's
online Q-network is one, SAC has an actor and a critic), each holding the same three components
under the same attribute names:

- ``encoder``: ``features_extractor`` (observation and conditioning -> features)
- ``trunk``: ``mlp_extractor`` (the shared hidden layers after the encoder)
- ``heads``: ``heads`` (every task's output layers, stacked)

A policy lists its networks in ``component_roots()``: bundle-name -> (parameter prefix in the
policy, module). Bundle keys put the component first and the network second:
``encoder.net.0.weight`` (one network), ``encoder.actor.net.0.weight`` (SAC). Heads are split
per task: the stacked ``heads.action.weight`` ``(n_tasks * out, in)`` is stored as
``heads.<task>.action.weight`` ``(out, in)`` for each task; so are an encoder's per-task input stems
(``encoder.stems.<task>.weight``). Target networks (DQN's, SAC's critic
target) are not components: they start equal to their network when a policy is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from rltransfer.agents.component_names import ALIASES, PREFIXES, component_of, trunk_side
from rltransfer.agents.heads import StackedLinear


def component_roots(policy: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """The policy's networks: bundle name -> (prefix of their parameters in the policy, module)."""
    roots = getattr(policy, "component_roots", None)
    return roots() if roots is not None else {"": ("", policy)}


def _split(component: str, root: str, rest: str, task: str | None = None) -> str:
    parts = [component] + ([task] if task is not None else []) + ([root] if root else []) + [rest]
    return ".".join(parts)


def key_map(policy: nn.Module) -> dict[str, list[tuple[str, int | None]]]:
    """Policy state-dict name -> its bundle keys, with the task index of each (``None``: not a head).

    Parameters outside the three components keep their name (a progressive ``column``, say).
    """
    out: dict[str, list[tuple[str, int | None]]] = {}
    for root, (prefix, module) in component_roots(policy).items():
        task_names = list(getattr(getattr(module, "heads", None), "task_names", []) or [])
        for name in module.state_dict():
            if name.startswith(ALIASES):
                continue
            component = component_of(name)
            if component not in PREFIXES:
                out[prefix + name] = [(_split(component, root, name.split(".", 1)[1]) if "." in name else name, None)]
                continue
            rest = name[len(PREFIXES[component]) :]
            if component == "heads":
                out[prefix + name] = [(_split("heads", root, rest, t), i) for i, t in enumerate(task_names)]
            elif component == "encoder" and rest.startswith("stems."):  # per-task input stems
                out[prefix + name] = [
                    (_split("encoder", root, f"stems.{t}.{rest[6:]}"), i) for i, t in enumerate(task_names)
                ]
            else:
                out[prefix + name] = [(_split(component, root, rest), None)]
    return out


def _per_task(policy: nn.Module, name: str, tensor: torch.Tensor, n: int) -> torch.Tensor:
    """A stacked head tensor as ``(n, *one task's shape)``."""
    owner = policy.get_submodule(name.rsplit(".", 1)[0]) if "." in name else policy
    if isinstance(owner, StackedLinear):  # (n * out, ...) -> (n, out, ...)
        return tensor.reshape(n, tensor.shape[0] // n, *tensor.shape[1:])
    return tensor.reshape(n, *tensor.shape[1:])  # already (n, ...): log_std


def component_state(policy: nn.Module) -> dict[str, torch.Tensor]:
    """The policy's tensors under bundle keys: aliases and target networks dropped, heads split per task."""
    state = policy.state_dict()
    out = {}
    for name, keys in key_map(policy).items():
        tensor = state[name].detach().cpu()
        if keys[0][1] is None:
            out[keys[0][0]] = tensor.clone().contiguous()
            continue
        per_task = _per_task(policy, name, tensor, len(keys))
        for key, i in keys:
            out[key] = per_task[i].clone().contiguous()
    return out


def policy_state(policy: nn.Module, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`component_state`: state-dict entries of ``policy`` from bundle tensors.

    Only entries whose bundle keys are all in ``tensors`` are returned (load them with
    ``load_state_dict(strict=False)``); shapes are those of the policy's own tensors.
    """
    state = policy.state_dict()
    out = {}
    for name, keys in key_map(policy).items():
        if not all(k in tensors for k, _ in keys):
            continue
        if keys[0][1] is None:
            out[name] = tensors[keys[0][0]]
        else:
            out[name] = torch.stack([tensors[k] for k, _ in keys]).reshape(state[name].shape)
    return out


def bundle_component(key: str) -> str:
    """The component of a bundle key: ``encoder``, ``trunk`` or ``heads.<task>``."""
    if key.startswith("heads."):
        return "heads." + key[len("heads.") :].split(".", 1)[0]
    return key.split(".", 1)[0]


def network_modules(policy: nn.Module, component: str) -> list[nn.Module]:
    """A component's modules in every network of the policy (one for PPO and DQN, two for SAC)."""
    attr = PREFIXES[component].rstrip(".")
    return [getattr(module, attr) for _, module in component_roots(policy).values()]


def iter_component_params(policy: nn.Module) -> Iterable[tuple[str, str, nn.Parameter]]:
    """(component, name, parameter) for every trainable-candidate parameter of the policy's networks."""
    for _, (prefix, module) in component_roots(policy).items():
        for name, param in module.named_parameters():
            yield component_of(name), prefix + name, param


def frozen_param(param_name: str, frozen: Iterable[str]) -> bool:
    """Whether a parameter (named inside its network) is in a frozen component or trunk side."""
    frozen = set(frozen)
    return component_of(param_name) in frozen or trunk_side(param_name) in frozen
