"""Sweep one parameter of one strategy on one target: one ``rltransfer experiment`` per value (the
strategy against scratch, the config's seeds and budget), then one table of what each value measured.

    python benchmarks/strategy_sweep.py configs/cartpole.yaml very-long-heavy lr_scaled lr_scale 0.03 0.3 1.0

The case of ``config_sweep.py`` for ``transfer.strategy_params.<strategy>.<param>``. Each value is its own
experiment, ``runs/<name>-sweep-<strategy>-<param>-<value>/``; every value has the same experiment hash (a
strategy's parameters are not in it), so the first value pre-trains and trains scratch and the others copy
both (``runner.reuse_other_experiments``): every value fine-tunes the same bundle against the same
baseline. Re-running resumes every finished run.
Extra ``--set`` overrides go to every experiment.
"""

from __future__ import annotations

import argparse

from config_sweep import print_tables, run_sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("target")
    ap.add_argument("strategy")
    ap.add_argument("param")
    ap.add_argument("values", nargs="+", help="values of the parameter (YAML)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every value")
    args = ap.parse_args()
    key = f"transfer.strategy_params.{args.strategy}.{args.param}"
    base, done = run_sweep(
        args.config, key, args.values, [args.strategy], [args.target], args.set,
        lambda cfg, raw: f"{cfg.name}-sweep-{args.strategy}-{args.param}-{raw}",
    )  # fmt: skip
    print_tables(base, args.param, done, [args.strategy])


if __name__ == "__main__":
    main()
