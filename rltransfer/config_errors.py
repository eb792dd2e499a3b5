"""A config's refusal as its user reads it: pydantic's validation errors turned into one line a wrong key
(what was wrong, what was given, what is allowed), and where each setting an SB3 or RL Zoo user writes out of
habit lives in a config instead.

Pure: no torch, no environments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from rltransfer.errors import did_you_mean

SB3_SETTINGS: dict[str, str] = {
    "policy": "rltransfer builds the policy from agent.encoder, agent.trunk and agent.heads",
    "policy_kwargs": "the network is agent.encoder (hidden, activation), agent.trunk (pi, vf) and agent.heads",
    "net_arch": "the layers are agent.encoder.hidden, then agent.trunk.pi and agent.trunk.vf",
    "activation_fn": "the activation is agent.encoder.activation",
    "qf": "SAC's critics and DQN's Q-network take their layers from agent.trunk.vf",
    "n_envs": "the envs are transfer.n_envs (a target run's) and pretrain.envs_per_task (each source task's)",
    "n_timesteps": "the budgets are pretrain.timesteps and transfer.timesteps",
    "normalize": "VecNormalize is agent.normalize",
    "seed": "the grid seeds its runs: transfer.seeds runs a cell (seeds 0 to n-1), pretrain.seeds pre-trainings",
    "tensorboard_log": "every run logs to TensorBoard under output_dir (<output_dir>/<name>/tb)",
    "verbose": "rltransfer prints its own progress (--no-progress: none)",
    "device": "rltransfer trains on the CPU",
    "env_wrapper": "an env's wrappers are its family's: a family of your own (register_family) builds its env wrapped",
    "frame_stack": "frame stacking is an env wrapper: a family of your own (register_family) builds its env wrapped",
    "env_kwargs": "an env's arguments are its family's: its tasks' parameters, or a declared family's kwargs",
    "normalize_kwargs": "VecNormalize is agent.normalize (observations, and rewards while training)",
    "callback": "callbacks are passed from Python, as to SB3's learn: callbacks= of rltransfer's pretrain and transfer",
}
"""Settings of an SB3 model or an RL Zoo hyperparameter file that a config sets elsewhere (or rltransfer
itself): where each lives, for the refusal of a key an SB3 user writes out of habit."""


def sb3_hint(name: object) -> str:
    """`` (from SB3 or RL Zoo: where it lives here)`` for a setting of theirs a config sets elsewhere, else ""."""
    where = SB3_SETTINGS.get(str(name))
    return f" (from SB3 or RL Zoo: {where})" if where else ""


def _key(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model at ``loc`` under ``root``, through lists' items and mappings' values (``families[0]``,
    ``parameters.mass``); None where no model is."""
    at: Any = root
    for part in loc:
        if isinstance(at, type) and issubclass(at, BaseModel):
            field = at.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            at = field.annotation
        else:
            origin, args = get_origin(at), [a for a in get_args(at) if a is not type(None)]
            if origin in (Union, UnionType) and len(args) == 1:  # X | None
                origin, args = get_origin(args[0]), list(get_args(args[0]))
            if origin is list and isinstance(part, int):
                at = args[0]
            elif origin is dict and isinstance(part, str):
                at = args[1]
            else:
                return None
    return at if isinstance(at, type) and issubclass(at, BaseModel) else None


def format_validation_error(
    err: ValidationError, root: type[BaseModel], header: str = "invalid config", label: str = "config key"
) -> str:
    """pydantic's ``err`` on validating ``root`` as a user reads it: ``header``, then one line a wrong key
    (``label '...'``): what was wrong, what was given, what is allowed (a close name, or where an SB3 user's
    setting lives here)."""
    lines: dict[tuple[str, str], list[str]] = {}  # (key, "(got value)") -> messages: a union's branches, one line
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in ("str", "list"))))
        key = _key(loc) or "<top level>"
        if e["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1], root)
            allowed = ", ".join(parent.model_fields) if parent else "?"
            hint = (did_you_mean(loc[-1], parent.model_fields) if parent else "") or sb3_hint(loc[-1])
            lines.setdefault((key, ""), []).append(f"unknown key{hint}; allowed keys here: {allowed}")
        elif e["type"] == "missing":
            lines.setdefault((key, ""), []).append("required")
        else:
            hint = ""
            if e["type"] == "literal_error":
                names = re.findall(r"'([^']*)'", e.get("ctx", {}).get("expected", ""))
                hint = did_you_mean(e.get("input"), names)
            msg = e["msg"].removeprefix("Value error, ")  # a validator's own message, as it says it
            given = e.get("input")  # a section's own check (on a whole mapping) says what it got in its message
            got = "" if e["type"] == "value_error" and isinstance(given, Mapping) else f"(got {given!r}){hint}"
            lines.setdefault((key, got), []).append(msg)
    out = []
    for (key, got), msgs in lines.items():
        first, *rest = dict.fromkeys(msgs)
        said = ", or ".join([first, *(m.removeprefix("Input should be ") for m in rest)])
        out.append(f"{label} '{key}': {said} {got}".rstrip())
    return f"{header}:\n  " + "\n  ".join(dict.fromkeys(out))
