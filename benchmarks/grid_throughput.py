"""Grid throughput of the batched engine against one SB3 process per seed, side by side in one run.

The same runs both ways, through the grid's own code (jobs, workers, evaluation, results written): the
seeds of one (target, strategy) cell of a publication, from the bundles it ships, with its config. First
as today, one SB3 ``learn`` per seed (``runner.batch_seeds: false``), then as batches
(``runner.batch_seeds: true``: each worker takes a batch of seeds). Prints, for each way, the grid's wall
time and its env steps per second per core (evaluation included, as in a real grid), and their ratio.

    python benchmarks/grid_throughput.py [--publication docs/results/cartpole] [--target very-long-heavy]
        [--strategy scratch] [--seeds 10] [--workers 2] [--timesteps N]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

from rltransfer.config import load_config
from rltransfer.execution.backends import run_local
from rltransfer.execution.batching import batches
from rltransfer.execution.job import BATCHED, SB3
from rltransfer.records.bundle_manifest import read_manifest
from rltransfer.reporting.publication import read_runs, shipped_bundles
from rltransfer.reporting.verification import _job
from rltransfer.store.keys import experiment_keys, run_hash
from rltransfer.validation import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publication", default="docs/results/cartpole")
    ap.add_argument("--target", default="very-long-heavy")
    ap.add_argument("--strategy", default="scratch")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timesteps", type=int, default=None, help="each run's budget (default: the config's)")
    args = ap.parse_args()
    pub = Path(args.publication)
    runs = [r for r in read_runs(pub) if r.target == args.target and r.strategy == args.strategy]
    runs = sorted(runs, key=lambda r: r.seed)[: args.seeds]
    if len(runs) < args.seeds:
        raise SystemExit(f"{pub} publishes {len(runs)} runs of {args.target}/{args.strategy}, not {args.seeds}")
    config = yaml.safe_load((pub / "config.yaml").read_text())
    shipped = shipped_bundles(pub)
    bundles = {p: (path, read_manifest(path).weights.sha256) for p, path in shipped.items()}
    times = {}
    with tempfile.TemporaryDirectory(prefix="rltransfer-throughput-") as tmp:
        for engine in (SB3, BATCHED):
            overrides = {"output_dir": str(Path(tmp) / engine)}
            if args.timesteps:
                overrides["transfer"] = {**config["transfer"], "timesteps": args.timesteps}
            cfg = validate(load_config({**config, **overrides})).config
            chash = experiment_keys(cfg).experiment
            jobs = []
            for r in runs:
                job = _job(cfg, chash, r, bundles)
                key = run_hash(chash, cfg.to_dict(), r.strategy, r.seed, r.pretrain_seed, r.target, engine)
                jobs.append(replace(job, engine=engine, config_hash=key, threshold=r.threshold))
            units = batches(jobs, args.workers) if engine == BATCHED else [[j] for j in jobs]
            start = time.perf_counter()
            statuses = [summary["status"] for _, summary in run_local(units, args.workers)]
            times[engine] = time.perf_counter() - start
            if set(statuses) != {"ok"}:
                raise SystemExit(f"{engine}: runs failed: {statuses}")
            steps = len(jobs) * cfg.transfer.timesteps
            print(
                f"{engine:8s} {len(jobs)} runs of {cfg.transfer.timesteps} steps ({args.target}/{args.strategy}), "
                f"{len(units)} unit(s) on {args.workers} worker(s): grid {times[engine]:.1f} s, "
                f"{steps / times[engine] / args.workers:.0f} env steps/s per core",
                flush=True,
            )
    print(
        f"batched / sb3: {times[SB3] / times[BATCHED]:.2f}x the throughput ({platform.processor() or platform.machine()})"
    )


if __name__ == "__main__":
    main()
