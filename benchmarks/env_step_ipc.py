"""What an env step costs against a round trip to another process: whether stepping a batch's envs in other
processes (SB3's ``SubprocVecEnv``, Gymnasium's ``AsyncVectorEnv``) could pay.

    python benchmarks/env_step_ipc.py [--env-id LunarLander-v3] [--steps 4000] [--envs 1 40]

Prints the microseconds of one step of the env (random actions, reset at each episode's end), and of one round
trip through a pipe to a spawned process that answers each message with what a step of that many envs returns
(observations, rewards, ends, infos; no env stepped): the cost of the messages alone.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from multiprocessing.connection import Connection

import gymnasium as gym
import numpy as np


def _answer(conn: Connection, obs_dim: int) -> None:
    """Answer every message (``n`` actions) with results shaped as ``n`` envs' step, until ``None``."""
    while (actions := conn.recv()) is not None:
        n = len(actions)
        conn.send((np.zeros((n, obs_dim), np.float32), np.zeros(n), np.zeros(n, bool), [{} for _ in range(n)]))


def step_us(env_id: str, steps: int) -> tuple[float, int]:
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    return (time.perf_counter() - start) / steps * 1e6, obs_dim


def round_trip_us(n_envs: int, obs_dim: int, trips: int) -> float:
    ours, theirs = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_answer, args=(theirs, obs_dim))
    proc.start()
    actions = np.zeros(n_envs, np.int64)
    ours.send(actions)
    ours.recv()  # the process is up
    start = time.perf_counter()
    for _ in range(trips):
        ours.send(actions)
        ours.recv()
    elapsed = time.perf_counter() - start
    ours.send(None)
    proc.join()
    return elapsed / trips * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-id", default="LunarLander-v3")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 40], help="envs a message carries")
    args = ap.parse_args()
    us, obs_dim = step_us(args.env_id, args.steps)
    print(f"{args.env_id}: one step {us:.0f} us")
    for n in args.envs:
        print(
            f"a round trip to another process, {n} env(s)' actions and results: {round_trip_us(n, obs_dim, 2000):.0f} us"
        )


if __name__ == "__main__":
    main()
