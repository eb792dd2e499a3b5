"""How far the batched engine's PPO update (one seed, K = 1) drifts from SB3's ``PPO.train`` over consecutive
updates, against how far SB3's own update drifts from a copy of itself whose weights were moved by rounding.

    python benchmarks/update_drift.py [--config docs/results/minigrid/config.yaml] [--task lavagap-7]
        [--updates 4] [--nudge 1e-6] [--set KEY=VALUE ...]

Three models of the config's agent for one task, built alike (seed 0, as pre-training builds a single-task
model): SB3's, the batched engine's and a copy of SB3's with every weight moved by ``--nudge`` times a normal
draw. Each update, SB3's model collects a rollout, the other two take a copy of it, and all three update with
the same minibatch order. Printed after each: the largest difference of any weight between the batched and
SB3's model, and between the nudged copy and SB3's. Where the first stays at or below the second, the
batched update is SB3's up to rounding, amplified as training amplifies any rounding; a first that outgrows
the second would be another update. (One update is a test: ``tests/test_batched.py``.)
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from update_throughput import build, setup  # noqa: E402

import rltransfer  # noqa: E402
from rltransfer.agents.batched_ppo import BatchedPPO  # noqa: E402


def largest_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="docs/results/minigrid/config.yaml")
    ap.add_argument("--task", default="lavagap-7")
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--nudge", type=float, default=1e-6)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    activation = rltransfer.load_config(args.config, args.set).agent.encoder.activation
    resolved = setup(args.config, args.task, activation, args.set)
    sb3, mine, nudged = (build(resolved, args.task, 1)[0] for _ in range(3))
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in nudged.policy.parameters():
            p.add_(args.nudge * torch.randn(p.shape, generator=g))
    budget = 10**9
    _, callback = sb3._setup_learn(budget, None)
    for m in (mine, nudged):
        m._setup_learn(budget, None)
    batch = BatchedPPO([mine])
    for update in range(1, args.updates + 1):
        sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, sb3.n_steps)
        sb3._update_current_progress_remaining(sb3.num_timesteps, budget)
        for m in (mine, nudged):
            m.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
            m._current_progress_remaining, m.num_timesteps = sb3._current_progress_remaining, sb3.num_timesteps
        for train in (sb3.train, nudged.train):
            np.random.seed(update)  # SB3 draws its minibatch order from numpy's global RNG
            train()
        np.random.seed(update)
        batch.minibatch_rngs = [np.random.mtrand._rand]
        batch._train([0])
        print(
            f"update {update}: batched vs SB3 {largest_difference(mine.policy, sb3.policy):.2e}, "
            f"nudged SB3 vs SB3 {largest_difference(nudged.policy, sb3.policy):.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
