"""The name -> family registry; the shipped families register themselves on first use."""

from __future__ import annotations

import importlib

from rltransfer.envs.family import Family, TaskError, did_you_mean

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
            f"unknown family '{name}'{did_you_mean(name, _FAMILIES)}; known families: {', '.join(sorted(_FAMILIES))}"
        )
    return _FAMILIES[name]
