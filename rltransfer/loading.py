"""Loading a bundle into a target agent: where the target stands among the bundle's source tasks
(:class:`TargetSpec`), what its head and input stem start from (``transfer.head_init``: fresh, the mean of the
source heads, the nearest source's, the probe's pick), kickstarting's teacher, and the copy of a strategy's
components into the target policy, shape-checked, with the row each component adds to the run's lineage."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from rltransfer.agents import component_state, policy_state, transferable
from rltransfer.bundle import Bundle
from rltransfer.envs import Family, Task
from rltransfer.errors import BundleError, ConfigError
from rltransfer.observation_keys import OBS
from rltransfer.records.lineage import ComponentLoad
from rltransfer.strategies import COMPONENTS, Plan


@dataclass
class TargetSpec:
    """Where a target task stands relative to the bundle's source tasks."""

    task: Task
    onehot_index: int | None
    """Its index among the bundle's sources (``None``: held out)."""
    nearest: str
    """The source task nearest by normalised parameters (with a probe: the probe's choice)."""
    nearest_index: int


def locate_target(bundle: Bundle, family: Family, task: Task) -> TargetSpec:
    """The target's one-hot index (if it is a source) and its nearest source task by context."""
    names = bundle.task_names
    i = family.nearest(task, [t.params for t in bundle.source_tasks])
    return TargetSpec(task, names.index(task.name) if task.name in names else None, names[i], i)


def head_init_tensors(
    bundle: Bundle, spec: TargetSpec, mode: str, target_spaces: tuple[int, int] | None = None
) -> tuple[dict[str, torch.Tensor], str] | None:
    """The target head's tensors by ``mode`` (``fresh``: ``None``), keyed by what follows
    ``heads.<task>.`` (``action.weight``...), and where they came from.

    With tasks of different spaces (``task_spaces`` in the bundle), ``mean`` averages the heads of
    the sources whose spaces are the target's, ``target_spaces`` (observation length, action count):
    other heads' actions mean other things. None of them: no tensors, and a source saying why.
    """
    if bundle.architecture.heads == "shared":
        return _head_of(bundle, "shared"), "the shared conditioned head"
    if mode == "fresh":
        return None
    if mode == "nearest":
        src = spec.nearest
        return _head_of(bundle, src), f"source task '{src}' (nearest by context)"
    if mode == "probe":
        src = spec.nearest
        return _head_of(bundle, src), f"source task '{src}' (best when probed on the target)"
    if mode == "mean":
        names = _sources_of_spaces(bundle, target_spaces)
        if not names:
            obs_dim, n_actions = target_spaces  # type: ignore[misc]  # only mixed bundles exclude sources
            return {}, f"fresh: no source task has the target's spaces ({obs_dim} observations, {n_actions} actions)"
        heads = [_head_of(bundle, n) for n in names]
        out = {k: torch.stack([h[k] for h in heads]).mean(0) for k in heads[0]}
        if len(names) == len(bundle.task_names):
            return out, f"mean of {len(names)} source heads"
        return out, f"mean of {len(names)} source heads of the target's spaces ({', '.join(names)})"
    raise ConfigError(f"config key 'transfer.head_init': '{mode}' unknown; allowed: fresh, mean, nearest, probe")


def _sources_of_spaces(bundle: Bundle, target_spaces: tuple[int, int] | None) -> list[str]:
    """The bundle's source tasks whose (observation length, action count) is ``target_spaces``;
    every source where the bundle's tasks share their spaces."""
    task_spaces = bundle.architecture.task_spaces
    if task_spaces is None or target_spaces is None:
        return list(bundle.task_names)
    dims = zip(task_spaces.obs_dims, task_spaces.action_dims, strict=True)
    want = (int(target_spaces[0]), int(target_spaces[1]))
    return [n for n, (o, a) in zip(bundle.task_names, dims, strict=True) if (int(o), int(a)) == want]


def kickstart_teacher(
    bundle: Bundle, spec: TargetSpec, head_init: str, target_spaces: tuple[int, int] | None = None
) -> tuple[BasePolicy, int, str]:
    """Kickstarting's teacher: the pre-trained policy as ``zero_shot`` runs it on the target, its
    head for the target the one ``head_init`` gives (``fresh``, which teaches nothing: the nearest
    source's). With tasks of different spaces, ``target_spaces`` (observation length, action count)
    picks the sources ``mean`` averages; the teacher acts in the bundle's largest action space, the
    actions beyond the target's masked (see :class:`KickstartPPO`).

    :return: the teacher policy, the index of its head for the target, where that head came from.
    """
    if bundle.architecture.heads != "per_task":
        return bundle.policy, 0, "the shared conditioned head"
    if head_init != "mean":
        how = "best when probed on the target" if head_init == "probe" else "nearest by context"
        return bundle.policy, spec.nearest_index, f"source task '{spec.nearest}' ({how})"
    init = head_init_tensors(bundle, spec, "mean", target_spaces)
    assert init is not None  # None is "fresh"'s only
    tensors, source = init
    if not tensors:  # no source of the target's spaces (the caller refuses this with mixed spaces)
        raise BundleError(
            f"bundle '{bundle.path}': kickstart has no teacher head for target '{spec.task.name}': {source}"
        )
    teacher = copy.deepcopy(bundle.policy)  # the bundle's policy keeps its own heads
    tensors = {**bundle.tensors, **{f"heads.{spec.nearest}.{k}": v for k, v in tensors.items()}}
    with torch.no_grad():
        teacher.load_state_dict(policy_state(teacher, tensors), strict=False)
    return teacher, spec.nearest_index, source


def stem_is_new(bundle: Bundle, spec: TargetSpec, obs_dim: int) -> bool:
    """Whether a target of ``obs_dim`` observations gets a new input stem: its nearest source's
    observations have another length (the stem cannot start from that source's)."""
    spaces_ = bundle.architecture.task_spaces
    return spaces_ is not None and int(spaces_.obs_dims[spec.nearest_index]) != int(obs_dim)


def _stem_init(
    bundle: Bundle, own: dict[str, torch.Tensor], head: str, spec: TargetSpec, obs_dim: int
) -> tuple[dict[str, torch.Tensor], str]:
    """The target's input stem from the nearest source's, where their observations have the same
    length; otherwise it stays new (it trains at the full rate, even in a frozen encoder).

    The bundle's stems read observations padded to the longest source's; the target's reads its own
    length, so a source stem's weight keeps its first ``obs_dim`` columns. The others only ever saw
    padding (zeros, which the encoder starts them at and keeps them at), so the stem computes the same.
    """
    if stem_is_new(bundle, spec, obs_dim):
        return {}, (
            f"new stem, trained at the full rate ('{spec.nearest}', the nearest source, has another observation length)"
        )
    mine = [k for k in own if k.startswith("encoder.") and f".stems.{head}." in k]
    out = {}
    for k in mine:
        theirs = bundle.tensors[k.replace(f".stems.{head}.", f".stems.{spec.nearest}.")]
        out[k] = theirs[:, : own[k].shape[1]] if theirs.ndim == 2 and own[k].ndim == 2 else theirs
    return out, f"stem of '{spec.nearest}' (nearest by context)"


def _own_action_rows(copied: dict[str, torch.Tensor], own: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """A source head (or a mean of heads) of ``n`` actions for a target of ``n`` actions: the
    bundle's heads act in the sources' largest ``Discrete``, the actions beyond a task's own masked;
    the target's head has its own rows only, which keep the source's logits (or Q-values)."""
    out = {}
    for k, v in copied.items():
        mine = own.get(k)
        fits = mine is not None and mine.shape[0] == n < v.shape[0] and mine.shape[1:] == v.shape[1:]
        out[k] = v[:n] if fits else v
    return out


def _action_count(bundle: Bundle, index: int) -> int:
    spaces_ = bundle.architecture.task_spaces
    if spaces_ is None:
        raise ValueError("the bundle's tasks share their spaces: no action count by task")
    return int(spaces_.action_dims[index])


def _spaces_of(policy: BasePolicy) -> tuple[int, int]:
    """A target policy's (observation length, action count), as ``task_spaces`` records a task's
    (0 actions: a ``Box``, which every task shares)."""
    n = int(policy.action_space.n) if isinstance(policy.action_space, spaces.Discrete) else 0
    obs = cast(spaces.Dict, transferable(policy).dict_space)[OBS]
    return int(cast(spaces.Box, obs).shape[0]), n


def _head_of(bundle: Bundle, task: str) -> dict[str, torch.Tensor]:
    prefix = f"heads.{task}."
    return {k[len(prefix) :]: v for k, v in bundle.tensors.items() if k.startswith(prefix)}


def _head_tensors(
    policy: BasePolicy, bundle: Bundle, own: Mapping[str, torch.Tensor], spec: TargetSpec, head_init: str
) -> tuple[dict[str, torch.Tensor], str]:
    """The target head's tensors as ``head_init`` makes them, and where they come from (none: fresh)."""
    mixed = bundle.architecture.task_spaces is not None
    target_spaces = _spaces_of(policy) if mixed else None
    init = head_init_tensors(bundle, spec, head_init, target_spaces)
    if init is None:
        return {}, ""
    tensors, source = init
    head = str(transferable(policy).heads.task_names[0])
    copied = {f"heads.{head}.{rest}": v for rest, v in tensors.items()}
    if target_spaces is not None:  # mean: of sources with the target's action count; nearest, probe: the source's
        n = target_spaces[1] if head_init == "mean" else _action_count(bundle, spec.nearest_index)
        copied = _own_action_rows(copied, dict(own), n)
        if any(k not in own or own[k].shape != v.shape for k, v in copied.items()):
            return {}, f"fresh: {source} has another number of actions"
    return copied, source


def _shared_tensors(
    policy: BasePolicy, bundle: Bundle, own: Mapping[str, torch.Tensor], spec: TargetSpec, component: str
) -> tuple[dict[str, torch.Tensor], str]:
    """An encoder's or a trunk's tensors from the bundle (the encoder's input stem chosen where the tasks'
    observations differ), and where they come from."""
    copied = {k: v for k, v in bundle.tensors.items() if k.split(".", 1)[0] == component and ".stems." not in k}
    source = f"bundle {bundle.checksum[:12]}"
    if component == "encoder" and bundle.architecture.task_spaces is not None:
        head = str(transferable(policy).heads.task_names[0])
        stems, note = _stem_init(bundle, dict(own), head, spec, _spaces_of(policy)[0])
        copied.update(stems)
        source += f"; {note}"
    return copied, source


def _status(component: str, plan: Plan, loaded: bool) -> str:
    if component in plan.frozen and plan.adapters and component in plan.adapters.get("components", ()):
        return "adapted"
    if component in plan.frozen:
        return "frozen"
    sides = [c for c in plan.frozen if c.startswith(component + ".")]  # trunk.pi, trunk.vf
    return ("loaded" if loaded else "fresh") + (f"; {', '.join(sides)} frozen" if sides else "")


def load_components(
    policy: BasePolicy, bundle: Bundle, plan: Plan, spec: TargetSpec, head_init: str
) -> list[ComponentLoad]:
    """Copy the plan's components from the bundle into ``policy``, shape-checked; target networks
    (DQN's, SAC's critic target) start equal to their loaded networks.

    :return: one row per component: status (loaded / frozen / adapted / fresh), shapes, source.
    """
    own = {k: v for k, v in component_state(policy).items() if ".lora_" not in k}
    report, to_load = [], {}
    for component in COMPONENTS:
        copied: dict[str, torch.Tensor] = {}
        source = ""
        if component in plan.load and component == "heads":
            copied, source = _head_tensors(policy, bundle, own, spec, head_init)
        elif component in plan.load:
            copied, source = _shared_tensors(policy, bundle, own, spec, component)
        for key, tensor in copied.items():
            if key not in own or own[key].shape != tensor.shape:
                need = tuple(own[key].shape) if key in own else "no such tensor"
                raise BundleError(
                    f"bundle '{bundle.path}': component '{component}' tensor '{key}' has shape "
                    f"{tuple(tensor.shape)}, the target agent needs {need}"
                )
        to_load.update(copied)
        report.append(
            ComponentLoad(
                component=component, status=_status(component, plan, bool(copied)), loaded=bool(copied),
                source=source, lr_mult=0.0 if component in plan.frozen else float(plan.lr_mults.get(component, 1.0)),
                shapes={k: list(own[k].shape) for k in (copied or own) if k.split(".", 1)[0] == component},
            )
        )  # fmt: skip
    with torch.no_grad():
        policy.load_state_dict(policy_state(policy, to_load), strict=False)
    if hasattr(policy, "sync_targets"):
        policy.sync_targets()  # type: ignore[operator]
    column = getattr(policy, "column", None)
    if column is not None:
        shapes = {f"column.{k}": list(v.shape) for k, v in column.state_dict().items()}
        report.append(ComponentLoad(component="column", status="fresh", loaded=False, source="", shapes=shapes))
    return report
