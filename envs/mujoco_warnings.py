"""MuJoCo's warnings as Python warnings.

Left to itself, MuJoCo reports a warning (``mju_warning``) by printing it to stderr and appending it to
``MUJOCO_LOG.TXT`` in the current directory, each time it meets it: Gymnasium's MuJoCo models, compiled by
MuJoCo 4, warn that their ``settotalmass`` attribute is deprecated every time an env is built, which is
hundreds of times in an experiment (the same two lines over and over, among its progress and its table) and a
log file growing in the user's directory. Routed through :mod:`warnings` (MuJoCo's own hook,
``mujoco.set_mju_user_warning``), each warning is given once a process, goes nowhere else, and is silenced
as any other: ``warnings.filterwarnings("ignore", category=rltransfer.envs.mujoco_warnings.MuJoCoWarning)``.

rltransfer routes them where it builds a task's env and MuJoCo is loaded (a declared family: from its first
env, whose id's entry point it loads first), and leaves a handler of one's own in place. An env that loads
MuJoCo itself as it is built (the first env of a family whose ``build`` makes a MuJoCo id) warns as MuJoCo does.
"""

from __future__ import annotations

import contextlib
import sys
import warnings


class MuJoCoWarning(UserWarning):
    """A warning of MuJoCo's (``mju_warning``), in its own words."""


def route_mujoco_warnings() -> None:
    """Route MuJoCo's warnings through :func:`warnings.warn` (:class:`MuJoCoWarning`), where MuJoCo is loaded
    in this process and no handler is set (one of one's own, or this one)."""
    mujoco = sys.modules.get("mujoco")
    if mujoco is not None and hasattr(mujoco, "set_mju_user_warning") and mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_warn)


def load_entry_point(env_id: str) -> None:
    """Import the module of a registered Gymnasium id's entry point (``gym.make`` would import it first
    thing), so that a MuJoCo env's warnings are routed from its first build; an id that is not registered,
    or a module that fails to import, is left to ``gym.make`` to report."""
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    spec = gym.registry.get(env_id.rpartition(":")[2])
    if spec is not None and isinstance(spec.entry_point, str):
        with contextlib.suppress(Exception):  # gym.make raises it again, in its own words
            load_env_creator(spec.entry_point)


_SEEN: set[str] = set()
"""The warnings given in this process: each is given once (Python's own once-a-location memory is reset by
every ``warnings.catch_warnings`` block, which SB3 and Gymnasium enter often)."""


def _warn(message: str) -> None:
    if message in _SEEN:
        return
    _SEEN.add(message)
    try:
        warnings.warn(message, MuJoCoWarning, stacklevel=2)
    except Exception:  # warnings made errors: no exception may cross MuJoCo's C code, so it is printed
        print(f"WARNING: {message}", file=sys.stderr)
