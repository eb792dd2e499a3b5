"""The cost of one batched call of the seeds' policies, folded against ``vmap`` (the same call, the same
policies: the published CartPole config's, 10 seeds).

    python benchmarks/stacked_call.py [--seeds 10] [--publication docs/results/cartpole] [--target very-long-heavy]

Prints the milliseconds of a forward pass (no gradient) for one rollout step (each seed's 8 envs) and for a
256-sample minibatch, and of a minibatch's forward and backward pass, each way.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import cast

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from rltransfer.agents.batched_ppo import BatchedPPO, _net
from rltransfer.bundle import load_bundle
from rltransfer.transferring import build_target_agent
from rltransfer.validation import setup_of


def _ms(fn: Callable[[], object], n: int) -> float:
    for _ in range(10):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publication", default="docs/results/cartpole")
    ap.add_argument("--target", default="very-long-heavy")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    setup = setup_of(f"{args.publication}/config.yaml")
    bundle = load_bundle(f"{args.publication}/bundles/pretrain-seed-0")
    task = setup.family.task(args.target)
    models = [
        cast(PPO, build_target_agent(setup.config, setup, bundle, task, "scratch", s)[0]) for s in range(args.seeds)
    ]
    engine = BatchedPPO(models)
    obs = engine._obs([cast(VecEnv, m.env).reset() for m in models])  # each built with its env
    folded = engine.stack._fold
    print(f"{args.seeds} seeds, {type(models[0].policy).__name__}: ms per call, folded vs vmap")
    for batch in (obs[next(iter(obs))].shape[1], 256):
        rows = {k: v[:, :1].expand(v.shape[0], batch, *v.shape[2:]).contiguous() for k, v in obs.items()}

        def forward(rows: dict = rows) -> object:
            with torch.no_grad():
                return engine.stack.call(_net, rows)

        def both(rows: dict = rows) -> None:
            params, values = engine.stack.call(_net, rows)
            (params[0].sum() + values.sum()).backward()

        times = {}
        for way, plan in (("folded", folded), ("vmap", None)):
            engine.stack._fold = plan
            times[way] = (_ms(forward, 300), _ms(both, 100))
        engine.stack._fold = folded
        print(
            f"{batch:4d} samples a seed: forward {times['folded'][0]:.2f} vs {times['vmap'][0]:.2f}; "
            f"forward and backward {times['folded'][1]:.2f} vs {times['vmap'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
