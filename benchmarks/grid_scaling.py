"""Wall time of the quick-start transfer grid with 1 and with 2 workers, and the share of each
run's wall time spent in evaluation.

Pre-training runs once; each measurement starts from a copy of that bundle (reused because the
experiment hash ignores the name and the output directory), so only the grid is compared.

    python benchmarks/grid_scaling.py [--config configs/quickstart.yaml] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import rltransfer
from rltransfer.store.keys import experiment_hash


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rltransfer-bench-"))
    start = time.perf_counter()
    base = rltransfer.load_config(args.config, [f"output_dir={root}", "name=pre"])
    # The experiment hash ignores name, output directory and runner: one bundle serves every run below.
    rltransfer.pretrain(base, out_dir=root / "bundle-src", extra_manifest={"experiment_hash": experiment_hash(base)})
    print(f"pre-training: {time.perf_counter() - start:.1f} s")
    times = {}
    for workers in args.workers:
        name = f"w{workers}"
        pre = root / name / "pretrain"
        pre.mkdir(parents=True)
        overrides = [f"output_dir={root}", f"name={name}", f"runner.workers={workers}"]
        cfg = rltransfer.load_config(args.config, overrides)
        shutil.copytree(root / "bundle-src", pre, dirs_exist_ok=True)
        start = time.perf_counter()
        rltransfer.run_experiment(cfg, progress=False, echo=False)
        manifest = json.loads((root / name / "manifest.json").read_text())
        times[workers] = manifest["grid_seconds"]  # the runs alone: not pre-training, not the report
        runs = [r for r in manifest["runs"].values() if r.get("wall_seconds")]
        share = sum(r["eval_seconds"] for r in runs) / sum(r["wall_seconds"] for r in runs)
        per: dict[str, list[float]] = {}
        for key, r in manifest["runs"].items():
            per.setdefault(key.split("/")[1], []).append(r["eval_seconds"] / r["wall_seconds"])
        detail = ", ".join(f"{s} {sum(v) / len(v):.0%}" for s, v in per.items())
        print(
            f"{workers} worker(s): grid {times[workers]:.1f} s (whole command {time.perf_counter() - start:.1f} s); evaluation {share:.0%} of run wall time ({detail})"
        )
    if 1 in times and 2 in times:
        print(f"speed-up with 2 workers: {times[1] / times[2]:.2f}x")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
