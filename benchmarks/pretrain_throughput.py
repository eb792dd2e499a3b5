"""Multi-task pre-training vs plain SB3 (PPO, DQN or SAC): environment steps per second, side by side.

Same source tasks, same number of envs (DummyVecEnv), same network (a 64-unit encoder, then 64-unit
policy and value layers: PPO's pi/vf, DQN's Q-network layer, SAC's actor and critic layers), same
hyperparameters (SB3's defaults), one torch thread. Plain SB3 sees the raw observations; rltransfer
adds the conditioning, the per-task heads (per-task entropy coefficients for SAC) and the per-task
logging. A third arm gives plain SB3 the fused Adam that rltransfer's policies use, to show what the
multi-task machinery itself costs. Repetitions alternate between the arms to share any drift.

    python benchmarks/pretrain_throughput.py [--algo ppo] [--family cartpole] [--steps 30000] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import MlpEncoder
from rltransfer.agents.encoders import ACTIVATIONS
from rltransfer.callbacks import PerTaskLogger
from rltransfer.config import load_config
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve

HYPER: dict = {}  # SB3 defaults


NET_ARCH = {"ppo": dict(pi=[64], vf=[64]), "dqn": [64], "sac": dict(pi=[64], qf=[64])}
# Each algorithm's SB3 default activation (PPO: tanh; DQN, SAC: ReLU), in both arms.
ACTIVATION = {"ppo": "tanh", "dqn": "relu", "sac": "relu"}


def monitored(family, task) -> gym.Env:
    """One env of ``task``, monitored (as SB3's ``make_vec_env`` wraps each)."""
    return Monitor(family.make(task))


def plain(setup, envs_per_task: int, steps: int, seed: int, fused: bool = False) -> float:
    fns: list[Callable[[], gym.Env]] = [
        partial(monitored, setup.family, t) for t in setup.sources for _ in range(envs_per_task)
    ]
    env = DummyVecEnv(fns)
    algo = setup.config.agent.algo
    model = {"ppo": PPO, "dqn": DQN, "sac": SAC}[algo](
        "MlpPolicy", env, seed=seed, device="cpu", **HYPER,
        policy_kwargs=dict(features_extractor_class=MlpEncoder,
                           features_extractor_kwargs=dict(hidden=[64], activation=ACTIVATION[algo]),
                           net_arch=NET_ARCH[algo], activation_fn=ACTIVATIONS[ACTIVATION[algo]],
                           optimizer_kwargs=dict(fused=True) if fused else {}),
    )  # fmt: skip
    t = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - t)


def multitask(setup, envs_per_task: int, steps: int, seed: int) -> float:
    env = source_env(setup, envs_per_task)
    model = build_model(
        setup.config.agent, env, architecture(setup.config.agent, [t.name for t in setup.sources]), seed
    )
    t = time.perf_counter()
    model.learn(steps, callback=PerTaskLogger(env))
    return model.num_timesteps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algo", default="ppo", choices=["ppo", "dqn", "sac"])
    ap.add_argument("--family", default="cartpole")
    ap.add_argument("--envs-per-task", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(
        {"family": args.family, "agent": {"algo": args.algo, "hyperparams": HYPER,
                                          "encoder": {"hidden": [64], "activation": ACTIVATION[args.algo]}}}
    )  # fmt: skip
    setup = resolve(cfg)
    n_envs = len(setup.sources) * args.envs_per_task
    arms = {
        "plain": lambda rep: plain(setup, args.envs_per_task, args.steps, rep),
        "plain_fused": lambda rep: plain(setup, args.envs_per_task, args.steps, rep, fused=True),
        "multitask": lambda rep: multitask(setup, args.envs_per_task, args.steps, rep),
    }
    res: dict[str, list[float]] = {k: [] for k in arms}
    for rep in range(args.reps):
        for name, arm in arms.items():
            res[name].append(arm(rep))
        print(f"rep {rep}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in res.items()) + " steps/s")
    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"{args.algo} on {args.family}: {len(setup.sources)} tasks x {args.envs_per_task} envs = {n_envs} envs, {args.steps} steps"
    )
    print(
        f"median steps/s: plain SB3 {med['plain']:.0f}; plain SB3 with fused Adam {med['plain_fused']:.0f}; "
        f"multi-task {med['multitask']:.0f}"
    )
    print(
        f"ratio multi-task / plain SB3: {med['multitask'] / med['plain']:.3f}; "
        f"multi-task / plain SB3 with the same fused Adam: {med['multitask'] / med['plain_fused']:.3f}"
    )


if __name__ == "__main__":
    main()
