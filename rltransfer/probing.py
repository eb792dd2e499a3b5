"""Choosing a target's source head by trying every source head on the target (``head_init: probe``).

Nearness by context is a guess: the source whose parameters are closest need not be the one whose
policy works best on the target (on CartPole's very-long-heavy target, gravity makes heavy-gravity
the nearest source while only the long-pole head balances the pole). A probe runs each source head,
unchanged, for a few episodes on the target, evaluated as the experiment evaluates (the policy's
mode, or sampled actions where ``evaluation.deterministic`` is false), and keeps the best. Its environment steps
are target steps: the run is charged for them (see :func:`rltransfer.transferring.transfer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy

from rltransfer.bundle import Bundle
from rltransfer.envs import Family, MultiTaskVecEnv, Task
from rltransfer.evaluation import sampling_rng
from rltransfer.normalization import with_obs_stats

PROBE_SEED = 7_000_001
"""Reset seed of a run's probe episodes: ``PROBE_SEED + seed`` (apart from the evaluation's)."""


@dataclass(frozen=True)
class Probe:
    """What a probe found."""

    source: str
    """The source task whose head did best (ties go to the earlier of ``order``)."""
    returns: dict[str, float]
    """Mean return of each probed head."""
    steps: int
    """Target environment steps the probe took."""
    episodes: int


def probe_sources(
    bundle: Bundle,
    family: Family,
    task: Task,
    onehot_index: int | None,
    order: Sequence[str],
    episodes: int,
    seed: int,
    deterministic: bool = True,
) -> Probe:
    """Run each source head of ``order`` (the bundle's policy, untouched) for ``episodes``
    episodes on ``task``, conditioned as the bundle's sources were.

    :param order: the heads to try, most preferred first (nearest by context, say).
    :param deterministic: the policy's mode; otherwise sampled actions, seeded by ``seed``.
    """
    names = bundle.task_names
    returns: dict[str, float] = {}
    steps = 0
    for name in order:
        mt_env = MultiTaskVecEnv(
            family, [task], bundle.conditioning, 1, onehot_indices=[onehot_index], n_sources=len(names),
            n_heads=len(names), head_ids=[names.index(name)],
        )  # fmt: skip
        env = with_obs_stats(mt_env, bundle.manifest.obs_normalization, training=False)
        env.seed(PROBE_SEED + seed)
        with sampling_rng(PROBE_SEED, seed):
            rewards, lengths = evaluate_policy(
                bundle.policy, env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
            )
        env.close()
        returns[name] = float(np.mean(rewards))
        steps += int(np.sum(lengths))
    best = max(order, key=lambda n: returns[n])  # max keeps the first of equal values
    return Probe(best, returns, steps, episodes)
