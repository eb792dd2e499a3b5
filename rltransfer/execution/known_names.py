"""Whether a grid's workers know the names its config uses. A run resolves its config afresh in its worker
(:func:`rltransfer.validation.resolve`): rltransfer's own families, strategies and encoders are known
everywhere, and so is what the config's ``imports`` register; the local pool's spawned workers also import the
running script again (its top level, not what it does under ``if __name__ == "__main__":``), and Ray's workers
never do. A family, strategy or encoder that the user's code registers otherwise (in the script's main block, in
an interactive session, or by a module the script imports there) is unknown to the workers, and every run of the
grid failed on it after the pre-training: :func:`check_workers_know` refuses it before anything trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rltransfer.config import load_config
from rltransfer.errors import ConfigError
from rltransfer.execution.backends import check_started
from rltransfer.validation import Setup, check_encoder_type, check_strategies, resolve

MAIN = "__main__"
"""The module of what the running script (or an interactive session) defines itself."""


def user_defined(setup: Setup) -> list[tuple[str, str | None]]:
    """What the config names that neither rltransfer nor a module the config imports (or one below it) defines:
    its family (the family's build), strategies, encoder; each with the module that defines it (:data:`MAIN`:
    the running script or session; None: one that does not say)."""
    from rltransfer.agents import encoder_types
    from rltransfer.strategies import known_strategies

    config = setup.config
    known = ["rltransfer", *config.imports]
    strategies = known_strategies()
    found: list[tuple[str, object]] = [(f"family '{setup.family.name}'", setup.family.build)]
    found += [(f"strategy '{name}'", strategies[name].plan) for name in dict.fromkeys(config.transfer.strategies)]
    found.append((f"encoder '{config.agent.encoder.type}'", encoder_types().get(config.agent.encoder.type)))
    out = []
    for what, obj in found:
        module = getattr(obj, "__module__", None)
        if not (isinstance(module, str) and any(module == k or module.startswith(f"{k}.") for k in known)):
            out.append((what, module))
    return out


def resolve_names(config: Mapping[str, Any]) -> str:
    """Resolve the config's family, tasks, strategies and encoder as a run resolves them, in this process: the
    error a run would meet ("" where none)."""
    try:
        setup = resolve(load_config(dict(config)))
        check_strategies(setup.config)
        check_encoder_type(setup.config)
    except ConfigError as err:
        return str(err)
    return ""


def resolved_afresh(config: Mapping[str, Any]) -> str:
    """:func:`resolve_names` in a fresh interpreter on this one's path, as a Ray worker resolves a run's config
    (it imports rltransfer and the config's ``imports``, not the running script)."""
    code = "import json, sys; from rltransfer.execution.known_names import resolve_names; "
    code += "print(resolve_names(json.load(sys.stdin)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(config), capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    return done.stdout.strip()


def check_workers_know(setup: Setup, pool: ProcessPoolExecutor | None) -> None:
    """Refuse, before anything trains, a grid whose workers would not know a family, strategy or encoder of the
    user's own (each of its runs would fail on it, after the pre-training). Costs nothing where the config names
    only what rltransfer and the config's ``imports`` define; else one resolution of the config in a worker of
    the local pool, or (Ray) in a fresh interpreter, where the refusal is the run's own error."""
    found = user_defined(setup)
    if not found:
        return
    config = setup.config
    in_main = [what for what, module in found if module == MAIN]
    modules = sorted({m for _, m in found if m not in (MAIN, None)})
    name_them = f"name {', '.join(repr(m) for m in modules)} under the config's 'imports:'" if modules else ""
    if config.runner.backend == "ray":
        if in_main:
            raise ConfigError(
                f"runner.backend 'ray': Ray's workers do not import the script that defines {', '.join(in_main)}; "
                "define it in a module and name the module under the config's 'imports:'"
            )
        why = resolved_afresh(config.to_dict())
        if why:
            raise ConfigError(
                f"runner.backend 'ray': Ray's workers import rltransfer and the config's 'imports:' alone, and would "
                f"not resolve the config ({why}), which names {_defined(found)}: "
                f"{name_them or 'register it in a module the config imports'}"
            )
        return
    if pool is None:  # one worker: the runs train in this process
        return
    check_started(pool)
    why = pool.submit(resolve_names, config.to_dict()).result()
    if why:
        fixes = (
            [f"import {', '.join(repr(m) for m in modules)} at the script's top level, or {name_them}"]
            if modules
            else []
        )
        if in_main or not modules:
            fixes.append("define it at the script's top level, or in a module named under the config's 'imports:'")
        raise ConfigError(
            f"the grid's worker processes would not resolve the config ({why}), which names {_defined(found)}: a "
            "worker imports rltransfer, the config's 'imports:' and the running script again (its top level, not "
            "what it does under 'if __name__ == \"__main__\":', nor an interactive session's definitions); "
            f"{'; '.join(fixes)}; or set runner.workers: 1"
        )


def _defined(found: list[tuple[str, str | None]]) -> str:
    """``found`` as told: each name with where it is defined."""
    where = {MAIN: "this script", None: "code that names no module"}
    return ", ".join(f"the {what} that {where.get(m) or f'module {m!r}'} defines" for what, m in found)
