"""The name -> family registry; the shipped families register themselves on first use, and families of
installed packages through the entry-point group :data:`ENTRY_POINTS`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from rltransfer.envs.family import Family, TaskError, did_you_mean

ENTRY_POINTS = "rltransfer.families"
"""A package exposes families as ``name = "module:attr"`` in this group; ``attr`` is a Family, a list of
them, or a function returning either."""

_FAMILIES: dict[str, Family] = {}
_BUILTIN_MODULES = ("cartpole", "acrobot", "pendulum", "mountaincar", "lunarlander", "minigrid", "classic")
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        for family in importlib.import_module(f"rltransfer.envs.{module}").FAMILIES:
            _FAMILIES.setdefault(family.name, family)
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        for family in _families_of(ep):
            _FAMILIES.setdefault(family.name, family)


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
    _FAMILIES[name] = declared_family(spec)
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
    _FAMILIES[family.name] = family
    return family


def list_families() -> list[str]:
    """Names of every registered family."""
    _load_builtins()
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    """The family registered under ``name``; a clear error naming the known ones otherwise."""
    _load_builtins()
    if name not in _FAMILIES:
        raise TaskError(
            f"unknown family '{name}'{did_you_mean(name, _FAMILIES)}; known families: {', '.join(sorted(_FAMILIES))} "
            "(a family of your own is known once the module that registers it is imported: a config's "
            "'imports: [MODULE]', 'rltransfer --import MODULE ...', or an import in your script)"
        )
    return _FAMILIES[name]
