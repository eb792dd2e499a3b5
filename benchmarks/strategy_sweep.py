"""Sweep one parameter of one strategy on one target: one ``rltransfer experiment`` per value (the
strategy against scratch, the config's seeds and budget), then one table of what each value measured.

    python benchmarks/strategy_sweep.py configs/cartpole.yaml very-long-heavy lr_scaled lr_scale 0.03 0.3 1.0

Each value is its own experiment, ``runs/<name>-sweep-<strategy>-<param>-<value>/`` (its own config
hash, so its own pre-training, which is deterministic: every value fine-tunes the same bundle).
Re-running resumes every finished run. Extra ``--set`` overrides go to every experiment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from rltransfer.config import load_config


def _ci(row: dict, key: str) -> str:
    lo, hi = row.get(f"{key}_ci") or (None, None)
    value = row.get(key)
    if value is None:
        return "-"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None else f"{value:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("target")
    ap.add_argument("strategy")
    ap.add_argument("param")
    ap.add_argument("values", nargs="+", help="values of the parameter (YAML)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every value")
    args = ap.parse_args()
    base = load_config(args.config, args.set)
    rows = []
    for raw in args.values:
        value = yaml.safe_load(raw)
        name = f"{base.name}-sweep-{args.strategy}-{args.param}-{raw}"
        sets = [
            *args.set,
            f"name={name}",
            f"target_tasks=[{args.target}]",
            f"transfer.strategies=[scratch,{args.strategy}]",
            f"transfer.strategy_params.{args.strategy}.{args.param}={raw}",
        ]
        cmd = [sys.executable, "-m", "rltransfer.cli", "experiment", args.config, "--no-progress"]
        for s in sets:
            cmd += ["--set", s]
        print("$ rltransfer", " ".join(cmd[3:]), flush=True)
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            sys.exit(f"the experiment for {args.param}={raw} exited {done.returncode}")
        summary = json.loads((Path(base.output_dir) / name / "report" / "summary.json").read_text())
        row = next(r for r in summary["rows"] if r["strategy"] == args.strategy and r["target"] == args.target)
        rows.append((value, row))
    print(
        f"\n{args.strategy} on {args.target}, {base.transfer.seeds} seeds, budget {base.transfer.timesteps:,}\n"
        f"| {args.param} | reached | median TTT | speed-up | AUC ratio [CI] | final IQM [CI] | P(improve) [CI] |\n"
        "|---|---|---|---|---|---|---|"
    )
    for value, r in rows:
        speedup = f"{r['speedup_to_threshold']:.1f}x" if r.get("speedup_to_threshold") else r.get("speedup_note") or "-"
        ttt = f"{r['ttt_median']:,.0f}" if r.get("ttt_median") is not None else "censored"
        print(
            f"| {value} | {r['reached']}/{r['seeds']} | {ttt} | {speedup} | {_ci(r, 'auc_ratio')} | "
            f"{_ci(r, 'final_iqm')} | {_ci(r, 'p_improve')} |"
        )


if __name__ == "__main__":
    main()
