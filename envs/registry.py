"""The name -> family registry: the shipped families are registered when ``rltransfer.envs`` is imported, and
families of installed packages (the entry-point group :data:`ENTRY_POINTS`) on first use.

Every registered family is a Gymnasium id too, ``rltransfer/<family>-v0`` (:func:`gym_id`), whose keyword
arguments name a task or give parameters: ``gym.make("rltransfer/cartpole-v0", task="very-long-heavy")``,
``gym.make("rltransfer/cartpole-v0", length=1.5)``, and ``gym.make_vec`` of it steps a family's vector build
(:mod:`rltransfer.envs.gym_vector`). ``import rltransfer.envs`` registers the shipped families' ids, as a
Gymnasium package registers its own on import; the others are registered with their family.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import gymnasium as gym

from rltransfer.envs.family import Family, Task, TaskError, did_you_mean

ENTRY_POINTS = "rltransfer.families"
"""A package exposes families as ``name = "module:attr"`` in this group; ``attr`` is a Family, a list of
them, or a function returning either."""

GYM_NAMESPACE = "rltransfer"
"""The namespace of the families' Gymnasium ids."""
GYM_NAME = re.compile(r"[\w.-]+")
"""A family name a Gymnasium id can hold (letters, digits, ``_``, ``.``, ``-``); a family named otherwise has no id."""

_FAMILIES: dict[str, Family] = {}
_BUILTIN_MODULES = ("cartpole", "acrobot", "pendulum", "mountaincar", "lunarlander", "minigrid", "classic")
_shipped_loaded = False
_loaded = False


def load_shipped_families() -> None:
    """Register the shipped families, and their Gymnasium ids (``import rltransfer.envs`` does)."""
    global _shipped_loaded
    if _shipped_loaded:
        return
    _shipped_loaded = True
    for module in _BUILTIN_MODULES:
        for family in importlib.import_module(f"rltransfer.envs.{module}").FAMILIES:
            _add(family, replace=False)


def _load_builtins() -> None:
    """The shipped families and those of installed packages (:data:`ENTRY_POINTS`)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    load_shipped_families()
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        for family in _families_of(ep):
            _add(family, replace=False)


def _add(family: Family, replace: bool) -> None:
    if replace or family.name not in _FAMILIES:
        _FAMILIES[family.name] = family
    if GYM_NAME.fullmatch(family.name) and gym_id(family.name) not in gym.registry:  # found by name when made
        gym.register(
            gym_id(family.name), entry_point=f"{__name__}:make_task_env", kwargs={"family": family.name},
            order_enforce=False, disable_env_checker=True,  # the family's env is wrapped as gym.make wraps
            vector_entry_point="rltransfer.envs.gym_vector:make_task_vector_env",  # gym.make_vec
        )  # fmt: skip


def gym_id(family: str) -> str:
    """The Gymnasium id of the family ``family``: ``rltransfer/<family>-v0``."""
    return f"{GYM_NAMESPACE}/{family}-v0"


def make_task_env(
    family: str, task: str | Task | Mapping[str, Any] | None = None, render_mode: str | None = None, **params: Any
) -> gym.Env:
    """The env of a family's task, as its Gymnasium id makes it (``gym.make(gym_id(family), ...)``): the task
    named (``task="very-long-heavy"``) or given as parameters (``task={"length": 1.5}``, or ``length=1.5``;
    the others at their defaults); with neither, the family's default parameters. The same env as
    :meth:`Family.make` builds, step for step.
    """
    fam = get_family(family)
    env = fam.make(task_of(fam, task, params))
    if render_mode is not None:
        # A family builds its envs without one; an env takes its mode when rendering (Gymnasium's own envs, and
        # the shipped families', read the attribute then), so it is set as the env's constructor would.
        modes = env.metadata.get("render_modes", [])
        if render_mode not in modes:
            raise TypeError(  # as an env class without the mode answers gym.make (SB3's make_vec_env then goes on)
                f"{gym_id(family)}: render_mode {render_mode!r} is not one of the env's ({', '.join(modes) or 'none'})"
            )
        env.unwrapped.render_mode = render_mode
    return env


def task_of(family: Family, task: str | Task | Mapping[str, Any] | None, params: Mapping[str, Any]) -> Task:
    """The task a family's Gymnasium id is made with: ``task`` (a name, a Task or parameters) or ``params``
    (with neither, the family's defaults); both given are refused."""
    if task is not None and params:
        raise TaskError(
            f"{gym_id(family.name)}: give a task (task=...) or parameters ({', '.join(params)}), not both: "
            "task={...} takes parameters too"
        )
    return family.task(task if task is not None else params, where=gym_id(family.name))


def _families_of(ep: metadata.EntryPoint) -> list[Family]:
    try:
        found: Any = ep.load()
        found = found() if callable(found) and not isinstance(found, Family) else found
    except Exception as err:  # a broken plugin is named, not hidden
        raise TaskError(
            f"the family plugin '{ep.name}' ({ep.value}) failed to load: {type(err).__name__}: {err}"
        ) from None
    found = [found] if isinstance(found, Family) else list(found)
    if not all(isinstance(f, Family) for f in found):
        raise TaskError(f"the family plugin '{ep.name}' ({ep.value}) gave something other than Family objects")
    return found


def register_declared(spec: Mapping[str, Any]) -> Family:
    """Register the family ``spec`` declares as data (:mod:`rltransfer.envs.declared`), or return the one
    registered from the same declaration. A declaration replaces an earlier one of the same name; it
    never replaces a family defined in code."""
    from rltransfer.envs.declared import declared_family

    _load_builtins()
    name = spec["name"]
    existing = _FAMILIES.get(name)
    if existing is not None and existing.spec == dict(spec):
        return existing
    if existing is not None and existing.spec is None:
        raise TaskError(f"a family named '{name}' is defined in code; give the declared one another name")
    _add(declared_family(spec), replace=True)
    return _FAMILIES[name]


def family_of(name: str, spec: Mapping[str, Any] | None = None) -> Family:
    """The family ``name``: registered from its declaration ``spec`` where one is given (a bundle or a
    saved agent carries the declaration of a family declared as data), else looked up."""
    return register_declared(spec) if spec else get_family(name)


def register_family(family: Family, overwrite: bool = False) -> Family:
    """Make ``family`` available by name to configs, the CLI and :func:`get_family`.

    :param family: the family to register.
    :param overwrite: replace a family of the same name instead of raising.
    """
    _load_builtins()
    if family.name in _FAMILIES and not overwrite:
        raise TaskError(f"a family named '{family.name}' is already registered (pass overwrite=True)")
    _add(family, replace=True)
    return family


def list_families() -> list[str]:
    """Names of every registered family."""
    _load_builtins()
    return sorted(_FAMILIES)


def _as_gym_id(name: str) -> str:
    """What ``name`` is where it is a Gymnasium id, not a family ("" where it is neither)."""
    own = next((f for f in _FAMILIES if gym_id(f) == name), None)
    if own is not None:
        return f"; '{name}' is the Gymnasium id of family '{own}': name the family"
    if name in gym.registry:
        return (
            f"; '{name}' is a Gymnasium id, one env: a family over it is declared as data (a YAML file of its "
            f"tasks' parameters, 'env_id: {name}', listed under the config's 'families:')"
        )
    return ""


def get_family(name: str) -> Family:
    """The family registered under ``name``; a clear error naming the known ones otherwise."""
    _load_builtins()
    if name not in _FAMILIES:
        raise TaskError(
            f"unknown family '{name}'{did_you_mean(name, _FAMILIES)}{_as_gym_id(name)}; known families: "
            f"{', '.join(sorted(_FAMILIES))} (a family of your own is known once the module that registers it is "
            "imported: a config's 'imports: [MODULE]', 'rltransfer --import MODULE ...', or an import in your script)"
        )
    return _FAMILIES[name]
