"""What a task's scores are measured against: the return that counts as solving it (its threshold) and the
mean return of a uniformly random policy on it, measured once and cached under what determines it (the env's
fingerprint among it), so that a family whose env changed is measured again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.atomic import atomic_write_bytes
from rltransfer.envs import Family, Task, TaskError
from rltransfer.envs.behaviour import rollout
from rltransfer.envs.checks import time_limit
from rltransfer.errors import ConfigError, EndlessEpisode
from rltransfer.evaluation import MAX_PARALLEL, run_episodes

RANDOM_SEED = 2_000_003  # reset seeds of the random-policy baseline
FINGERPRINT_STEPS = 32


def _digest(value: Any, h: Any) -> None:
    """Feed an observation, reward or flag into the hash ``h`` (arrays by their bytes, dicts key by key)."""
    if isinstance(value, Mapping):
        for key in sorted(value):
            h.update(str(key).encode())
            _digest(value[key], h)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _digest(v, h)
    else:
        a = np.asarray(value)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def env_fingerprint(env: gym.Env, seed: int = RANDOM_SEED, steps: int = FINGERPRINT_STEPS) -> str:
    """What ``env`` is, as far as a cached measurement on it cares: its wrappers, its spec and time limits, and
    what it does in its first ``steps`` steps from a reset with ``seed`` under actions drawn from its action
    space seeded alike (:func:`~rltransfer.envs.behaviour.rollout`: observations, rewards, ends). An env whose
    code changed under the same family and parameters (a user's own, edited) has another fingerprint. Resets
    the env."""
    h = hashlib.sha256()
    spec = env.spec
    h.update(repr((str(env), time_limit(env), spec.id if spec else None)).encode())
    run = rollout(env, seed=seed, steps=steps)
    _digest((run.observations, run.rewards, run.ends), h)
    return h.hexdigest()[:20]


def random_return(family: Family, task: Task, episodes: int = 100, cache_dir: str | Path | None = None) -> float:
    """Mean return of a uniformly random policy on ``task``, measured once and cached under what determines it:
    the family, the task's parameters, the protocol, Gymnasium's version and the env's fingerprint
    (:func:`env_fingerprint`; a family whose env changed is measured again)."""
    cache_dir = Path(cache_dir or os.environ.get("RLTRANSFER_CACHE") or Path.home() / ".cache" / "rltransfer")
    probe = family.make(task)
    try:
        fingerprint = env_fingerprint(probe)
    finally:
        probe.close()
    key_data = {
        "family": family.name,
        "params": dict(task.params),
        "episodes": episodes,
        "seed": RANDOM_SEED,
        "gymnasium": gym.__version__,
        "env": fingerprint,
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir / "random_returns" / f"{key}.json"
    if path.is_file():
        try:
            return float(json.loads(path.read_text())["mean_return"])
        except (ValueError, KeyError):
            pass  # a damaged cache entry is measured again
    env = DummyVecEnv([lambda: family.make(task) for _ in range(min(episodes, MAX_PARALLEL))])
    space = env.action_space
    space.seed(RANDOM_SEED)
    try:
        returns = run_episodes(
            env, lambda obs: np.array([space.sample() for _ in range(env.num_envs)]), episodes, RANDOM_SEED
        )
    except EndlessEpisode as err:
        raise EndlessEpisode(f"task '{task.name}' of family '{family.name}', a random policy: {err}") from None
    finally:
        env.close()
    value = float(returns.mean())
    if not np.isfinite(returns).all():  # a reward past the checks' short rollouts; never cached
        raise TaskError(
            f"task '{task.name}' of family '{family.name}', a random policy: an episode's return is "
            f"{returns[~np.isfinite(returns)][0]}: the env returned a NaN or infinite reward"
        )
    entry = {**key_data, "task": task.name, "mean_return": value, "std_return": float(returns.std())}
    atomic_write_bytes(path, json.dumps(entry).encode())  # experiments side by side share the cache
    return value


def threshold(family: Family, task: Task, thresholds: Mapping[str, float]) -> float:
    """The return that counts as solving ``task``: the config's ``evaluation.thresholds`` entry, else the
    family's (or Gymnasium's), which is looked up only where the config gives none."""
    given = thresholds.get(task.name)
    return float(given if given is not None else family.reward_threshold(task))


def thresholds_and_baselines(
    family: Family, tasks: list[Task], thresholds: Mapping[str, float], cache_dir: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """Per task: the threshold (config, family, or Gymnasium) and the measured random return; a threshold not
    above the random return is refused (the score would run backwards, or be undefined)."""
    out = {}
    for task in tasks:
        tau = threshold(family, task, thresholds)
        r = random_return(family, task, cache_dir=cache_dir)
        if not tau > r:
            given = "the config's" if task.name in thresholds else f"family '{family.name}''s"
            raise ConfigError(
                f"config key 'evaluation.thresholds': task '{task.name}': its threshold {tau:g} ({given}) is not above "
                f"a random policy's mean return on it ({r:.4g}): the score (R - R_random) / (threshold - R_random) "
                f"would rank agents backwards; give a threshold above {r:.4g}, as "
                f"'evaluation.thresholds: {{{task.name}: ...}}'"
            )
        out[task.name] = {"threshold": tau, "random_return": r}
    return out
