"""A family's task as a Gymnasium vector env, both ways side by side: ``gym.make_vec`` of its id (the family's
vector build, :mod:`rltransfer.envs.gym_vector`) against Gymnasium's ``SyncVectorEnv`` of its envs
(``vectorization_mode="sync"``), the same random actions, in alternating rounds.

    python benchmarks/vector_env_step.py [--family cartpole] [--task very-long-heavy] [--envs 64] [--steps 2000]

Prints each way's env steps per second (one process, one core) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import rltransfer.envs  # noqa: F401  (registers the families' Gymnasium ids)
from rltransfer.envs import gym_id


def rate(family: str, task: str, envs: int, actions: np.ndarray, mode: str | None) -> tuple[str, float]:
    """The vector env's class name and its env steps per second over ``actions``."""
    vec = gym.make_vec(gym_id(family), num_envs=envs, task=task, vectorization_mode=mode)
    vec.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        vec.step(a)
    seconds = time.perf_counter() - start
    vec.close()
    return type(vec.unwrapped).__name__, len(actions) * envs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="cartpole")
    parser.add_argument("--task", default="very-long-heavy")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    space = gym.make_vec(gym_id(args.family), num_envs=args.envs, task=args.task).action_space
    space.seed(0)
    actions = np.stack([space.sample() for _ in range(args.steps)])
    best: dict[str, tuple[str, float]] = {}
    for r in range(args.rounds):
        for mode in (None, "sync") if r % 2 == 0 else ("sync", None):
            name, steps_per_s = rate(args.family, args.task, args.envs, actions, mode)
            print(f"round {r + 1}: {name:<16} {steps_per_s:>12,.0f} env steps/s")
            if steps_per_s > best.get(str(mode), ("", 0.0))[1]:
                best[str(mode)] = (name, steps_per_s)
    (fast, f), (sync, s) = best["None"], best["sync"]
    print(
        f"best: {fast} {f:,.0f}, {sync} {s:,.0f} env steps/s: {f / s:.1f}x ({args.family} {args.task}, {args.envs} envs)"
    )


if __name__ == "__main__":
    main()
