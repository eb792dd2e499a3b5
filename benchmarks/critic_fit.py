"""How well each strategy's critic fits a target: PPO's ``train/value_loss`` and
``train/explained_variance`` from the runs' TensorBoard logs, averaged over a window of target steps
in each run, then the median over runs.

    python benchmarks/critic_fit.py runs/cartpole-physics very-long-heavy heads_only finetune --from 5000 --to 15000

Reads ``<run_dir>/runs/<target>/<strategy>/seed-*/tb`` as ``rltransfer experiment`` writes them.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = ("train/value_loss", "train/explained_variance")


def window_mean(tb: Path, tag: str, start: int, stop: int) -> float | None:
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return None
    values = [e.value for e in acc.Scalars(tag) if start <= e.step <= stop]
    return sum(values) / len(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("target")
    ap.add_argument("strategies", nargs="+")
    ap.add_argument("--from", dest="start", type=int, default=5000, help="first target step of the window")
    ap.add_argument("--to", dest="stop", type=int, default=15000, help="last target step of the window")
    args = ap.parse_args()
    print(
        f"| strategy | runs | {' | '.join(TAGS)} (median over runs of the mean over steps {args.start:,}-{args.stop:,}) |"
    )
    print("|---|---|" + "---|" * len(TAGS))
    for strategy in args.strategies:
        tbs = sorted((args.run_dir / "runs" / args.target / strategy).glob("seed-*/tb"))
        if not tbs:
            raise SystemExit(f"no runs of '{strategy}' on '{args.target}' under {args.run_dir}")
        cells = []
        for tag in TAGS:
            means = [m for m in (window_mean(tb, tag, args.start, args.stop) for tb in tbs) if m is not None]
            cells.append(f"{statistics.median(means):.3f}" if means else "-")
        print(f"| {strategy} | {len(tbs)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
