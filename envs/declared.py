"""Families as data: a family declared over any registered Gymnasium id, its parameters set as
constructor arguments or as attributes of ``env.unwrapped``.

A declaration (a mapping; rltransfer's config validates its types, see ``FamilySpec`` there)::

    name: cheetah-mass
    env_id: HalfCheetah-v5
    kwargs: {}                                    # constructor arguments every task shares
    parameters:
      torso_mass: {default: 1.0, low: 0.3, high: 3.0, attribute: "model.body_mass[1]", mode: scale}
      gravity: {default: -9.81, low: -20.0, high: -2.0, attribute: "model.opt.gravity[2]"}
      ctrl_cost: {default: 0.1, low: 0.0, high: 1.0, kwarg: ctrl_cost_weight}
    tasks: {default: {}, heavy: {torso_mass: 2.0}}
    sources: [default]
    targets: {heavy: extrapolation}
    derived: my_module:recompute                  # optional: called as recompute(env.unwrapped, params)

An attribute path is names joined by dots, optionally ending in one index or slice (``[1]``, ``[1:]``,
``[:, 0]`` is not supported). ``mode: set`` (the default) writes the value there; ``mode: scale``
multiplies what is there (the env's own value, each task building a fresh env) by it. Every setting acts
on the built instance only: nothing module- or class-level is touched.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rltransfer.envs.family import Family, Parameter, TaskError, did_you_mean
from rltransfer.envs.mujoco_warnings import load_entry_point, route_mujoco_warnings

_PATH = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\[(-?\d*)(?::(-?\d*))?\])?$")


def parse_path(path: str) -> tuple[list[str], int | slice | None]:
    """``"model.body_mass[1]"`` -> (["model", "body_mass"], 1); a slice for ``[a:b]``; None without index."""
    m = _PATH.match(path.replace(" ", ""))
    if not m:
        raise TaskError(f"attribute path '{path}': expected names joined by dots, with at most one [index] or [a:b]")
    names = m.group(1).split(".")
    if m.group(2) is None and m.group(3) is None and "[" not in path:
        return names, None
    if ":" in path:
        lo, hi = m.group(2), m.group(3)
        return names, slice(int(lo) if lo else None, int(hi) if hi else None)
    return names, int(m.group(2))


def _owner(env: Any, names: list[str], where: str) -> Any:
    obj = env
    for name in names[:-1]:
        if not hasattr(obj, name):
            raise TaskError(f"{where}: {type(obj).__name__} has no attribute '{name}'{_suggest(obj, name)}")
        obj = getattr(obj, name)
    if not hasattr(obj, names[-1]):
        raise TaskError(f"{where}: {type(obj).__name__} has no attribute '{names[-1]}'{_suggest(obj, names[-1])}")
    return obj


def _suggest(obj: Any, name: str) -> str:
    return did_you_mean(name, [a for a in dir(obj) if not a.startswith("_")])


def read(env: Any, path: str, where: str = "attribute") -> Any:
    """The numeric value at ``path`` on ``env`` (a number, or an array's element or slice)."""
    names, index = parse_path(path)
    value = getattr(_owner(env, names, where), names[-1])
    if index is not None:
        if not isinstance(value, np.ndarray):
            raise TaskError(f"{where}: '{'.'.join(names)}' is a {type(value).__name__}, not an array to index")
        try:
            value = value[index]
        except IndexError:
            raise TaskError(f"{where}: index {index} outside '{'.'.join(names)}' of shape {value.shape}") from None
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not numeric and not (isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number)):
        raise TaskError(f"{where}: '{path}' holds a {type(value).__name__}, not a number")
    return value


def write(env: Any, path: str, value: float, mode: str = "set", where: str = "attribute") -> None:
    """Set (``mode="set"``) or multiply (``"scale"``) the number(s) at ``path`` on ``env`` by ``value``."""
    current = read(env, path, where)
    names, index = parse_path(path)
    owner = _owner(env, names, where)
    if isinstance(current, np.ndarray) or index is not None:
        array = getattr(owner, names[-1])
        target = slice(None) if index is None else index
        array[target] = array[target] * value if mode == "scale" else value  # in place: the instance's own
        return
    new = current * value if mode == "scale" else value
    setattr(owner, names[-1], type(current)(new) if isinstance(current, (int, float)) else new)


def _hook(ref: str) -> Callable[[Any, Mapping[str, float]], None]:
    module, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise TaskError(f"derived '{ref}': cannot import it ({err}); expected 'module:function'") from None
    if not callable(fn):
        raise TaskError(f"derived '{ref}' is not a function")
    return fn


class DeclaredBuilder:
    """``params -> env`` for a declared family: ``gym.make(env_id, **kwargs)``, then the attributes."""

    def __init__(self, spec: Mapping[str, Any]):
        self.env_id = spec["env_id"]
        self.kwargs = dict(spec.get("kwargs") or {})
        self.parameters = {n: dict(p) for n, p in spec["parameters"].items()}
        self.derived = _hook(spec["derived"]) if spec.get("derived") else None

    def __call__(self, params: Mapping[str, float]) -> gym.Env:
        kwargs = dict(self.kwargs)
        for name, p in self.parameters.items():
            if p.get("kwarg"):
                kwargs[p["kwarg"]] = _typed(params[name], p)
        env = gym.make(self.env_id, **kwargs)
        for name, p in self.parameters.items():
            if p.get("attribute"):
                write(
                    env.unwrapped, p["attribute"], _typed(params[name], p), p.get("mode", "set"), f"parameter '{name}'"
                )
        if self.derived is not None:
            self.derived(env.unwrapped, dict(params))
        return env


def _typed(value: float, p: Mapping[str, Any]) -> float | int:
    return int(round(value)) if p.get("integer") else float(value)


def _refused(spec: Mapping[str, Any], builder: DeclaredBuilder, where: str) -> str:
    """Which declared constructor argument the env's creator does not take, named by its key in the
    declaration with a close name and the arguments it takes; "" where its signature does not tell (it
    takes ``**kwargs``, or is not inspectable)."""
    import inspect

    from gymnasium.envs.registration import load_env_creator

    entry = gym.spec(spec["env_id"].rpartition(":")[2]).entry_point
    try:
        creator: Any = load_env_creator(entry) if isinstance(entry, str) else entry
        signature = inspect.signature(creator)
    except (TypeError, ValueError, ImportError, AttributeError):  # None, or a creator inspect cannot read
        return ""
    taken = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in taken.values()):
        return ""
    given = [(f"kwargs.{k}", k) for k in builder.kwargs]
    given += [(f"parameters.{n}.kwarg", p["kwarg"]) for n, p in builder.parameters.items() if p.get("kwarg")]
    for key, arg in given:
        if arg not in taken:
            return (
                f"{where}, {key}: '{spec['env_id']}' takes no constructor argument '{arg}'{did_you_mean(arg, taken)}; "
                f"it takes: {', '.join(taken)}"
            )
    return ""


def declared_family(spec: Mapping[str, Any]) -> Family:
    """The family ``spec`` declares, checked against the real env: the id is registered, every
    constructor argument is accepted and every attribute exists and holds a number."""
    name = spec["name"]
    where = f"family '{name}'"
    module, _, env_id = spec["env_id"].rpartition(":")  # gym.make's "module:EnvId": the module registers the id
    if module:
        try:
            importlib.import_module(module)
        except Exception as err:
            raise TaskError(
                f"{where}: env_id '{spec['env_id']}': importing '{module}' failed: {type(err).__name__}: {err}"
            ) from None
    if env_id not in gym.registry:
        raise TaskError(
            f"{where}: env_id '{spec['env_id']}' is not a registered Gymnasium id{did_you_mean(env_id, gym.registry)}"
            + (
                f" (importing '{module}' did not register it)"
                if module
                else "; where a module of yours registers it (gymnasium.register), write env_id as 'module:"
                f"{env_id}' (as gym.make takes it), or name the module in the config's 'imports:'"
            )
        )
    parameters = [
        Parameter(n, float(p["default"]), float(p["low"]), float(p["high"]), p.get("doc", ""), bool(p.get("integer")))
        for n, p in spec["parameters"].items()
    ]
    builder = DeclaredBuilder(spec)
    defaults = {p.name: p.default for p in parameters}
    load_entry_point(env_id)
    route_mujoco_warnings()  # before the first env is compiled; Family.make routes every later one's
    try:
        env = gym.make(builder.env_id, **{**builder.kwargs, **{
            p["kwarg"]: _typed(defaults[n], p) for n, p in builder.parameters.items() if p.get("kwarg")
        }})  # fmt: skip
    except TypeError as err:
        raise TaskError(
            _refused(spec, builder, where) or f"{where}: '{spec['env_id']}' refuses its constructor arguments: {err}"
        ) from None
    except gym.error.DependencyNotInstalled as err:  # MuJoCo's or Box2D's package, say: Gymnasium names it
        raise TaskError(f"{where}: '{spec['env_id']}' needs a package that is not installed: {err}") from None
    except Exception as err:  # the env's own constructor failed on the declared arguments
        raise TaskError(
            f"{where}: building '{spec['env_id']}' with its declared arguments failed: {type(err).__name__}: {err}"
        ) from None
    try:
        for n, p in builder.parameters.items():
            if p.get("attribute"):
                read(env.unwrapped, p["attribute"], f"{where}, parameter '{n}'")
    finally:
        env.close()
    family = Family(
        name=name,
        parameters=parameters,
        build=builder,
        tasks=spec["tasks"],
        source=spec["sources"],
        targets=spec["targets"],
        reward_threshold=spec.get("reward_threshold"),
        threshold_note=spec.get("threshold_note", ""),
        description=spec.get("description", "") or f"{spec['env_id']} (declared as data)",
    )
    family.spec = dict(spec)
    return family
