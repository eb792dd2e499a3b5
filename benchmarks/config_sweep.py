"""Sweep one config key: one ``rltransfer experiment`` per value (the chosen strategies against scratch,
the config's seeds and budget), then one table per target of what each value measured.

    python benchmarks/config_sweep.py configs/pendulum.yaml conditioning none onehot context
    python benchmarks/config_sweep.py configs/acrobot.yaml pretrain.timesteps 250000 500000 --targets heavy-long

Any dotted key ``rltransfer experiment --set`` takes can be swept: a pre-training setting (``conditioning``,
``source_tasks``, ``pretrain.timesteps``, ``agent.heads``) gives each value its own pre-training; a
strategy's parameter (``transfer.strategy_params.lr_scaled.lr_scale``; ``strategy_sweep.py`` is that case)
re-uses one. Each value is its own experiment, ``runs/<name>-sweep-<key>-<value>/``; re-running resumes
every finished run. The value that equals the config's own gives the published rows again (the experiment
hash leaves out the name and the strategy list), which makes it the reproduction check of the sweep.
Where a value leaves the scratch runs' inputs alone (a pre-training setting), the scratch runs one experiment
finished are copied into the next (``runner.reuse_other_experiments``), so the baseline trains once per sweep;
where it leaves the pre-training alone (a strategy's parameter), the pre-training is copied too.
Extra ``--set`` overrides go to every experiment.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rltransfer.baselines import threshold
from rltransfer.config import ExperimentConfig, load_config
from rltransfer.store.keys import experiment_hash
from rltransfer.validation import Setup, resolve

BASELINE = "scratch"


def _ci(row: dict, key: str) -> str:
    lo, hi = row.get(f"{key}_ci") or (None, None)
    value = row.get(key)
    if value is None:
        return "-"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None else f"{value:.2f}"


def _ttt(row: dict) -> str:
    return f"{row['ttt_median']:,.0f}" if row.get("ttt_median") is not None else "censored"


def _speedup(row: dict) -> str:
    if row.get("speedup_to_threshold"):
        return f"{row['speedup_to_threshold']:.1f}x"
    return row.get("speedup_note") or "-"


def _slug(raw: str) -> str:
    """A value as part of a directory name: ``[a, b]`` -> ``a-b``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-") or "empty"


def _sources(run_dir: Path) -> str:
    """How many source tasks the pre-trained agent solves ("5/6"): the bundle's own evaluation against
    each source's threshold (the config's, else the family's), as ``rltransfer pretrain`` prints it."""
    bundle = run_dir / "pretrain" / "bundle" / "bundle.json"
    if not bundle.is_file():
        return "-"
    evaluation = json.loads(bundle.read_text()).get("evaluation") or {}
    setup = resolve(load_config(run_dir / "config.yaml"))
    return f"{len(solved_sources(evaluation, setup))}/{len(evaluation)}"


def solved_sources(evaluation: dict, setup: Setup) -> list[str]:
    """The source tasks whose mean return in a bundle's ``evaluation`` reaches their threshold."""
    thresholds = setup.config.evaluation.thresholds
    return [
        t.name for t in setup.sources
        if t.name in evaluation and evaluation[t.name]["mean_return"] >= threshold(setup.family, t, thresholds)
    ]  # fmt: skip


def run_sweep(
    config: str,
    key: str,
    values: Sequence[str],
    strategies: Sequence[str],
    targets: Sequence[str] | None,
    sets: Sequence[str],
    name_of: Callable[[ExperimentConfig, str], str],
) -> tuple[ExperimentConfig, list[tuple[str, Path, dict]]]:
    """Run (or resume) one experiment per value; return the base config and each value's summary."""
    base = load_config(config, sets)
    done = []
    for raw in values:
        name = name_of(base, raw)
        over = [*sets, f"name={name}", f"transfer.strategies=[{','.join([BASELINE, *strategies])}]", f"{key}={raw}"]
        if targets:
            over.append(f"target_tasks=[{','.join(targets)}]")
        cmd = [sys.executable, "-m", "rltransfer.cli", "experiment", config, "--no-progress"]
        for s in over:
            cmd += ["--set", s]
        print("$ rltransfer", " ".join(cmd[3:]), flush=True)
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"the experiment for {key}={raw} failed (its output: rltransfer experiment ... above)")
        run_dir = Path(base.output_dir) / name
        done.append((raw, run_dir, json.loads((run_dir / "report" / "summary.json").read_text())))
    return base, done


def print_tables(
    base: ExperimentConfig, key: str, done: list[tuple[str, Path, dict]], strategies: Sequence[str]
) -> None:
    """One Markdown table per target: scratch's median and each strategy's row, for every value."""
    targets = list(dict.fromkeys(r["target"] for _, _, s in done for r in s["rows"]))
    sources = [_sources(run_dir) for _, run_dir, _ in done]  # once per value, not per row
    for target in targets:
        print(
            f"\n{target}: {base.transfer.seeds} seeds, budget {base.transfer.timesteps:,}\n"
            f"| {key} | sources solved | scratch median TTT | strategy | P(0) | reached | median TTT | speed-up | "
            "AUC ratio [CI] | final IQM [CI] | P(improve) [CI] | flags |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        )
        for (raw, _, summary), solved in zip(done, sources):
            rows = {r["strategy"]: r for r in summary["rows"] if r["target"] == target}
            scratch = rows[BASELINE]
            for strategy in strategies:
                r = rows[strategy]
                flags = ", ".join(f for f in ("significant", "negative_transfer") if r.get(f))
                print(
                    f"| {raw} | {solved} | {_ttt(scratch)} ({scratch['reached']}/{scratch['seeds']}) | "
                    f"{strategy} | {r['p0_iqm']:.2f} | {r['reached']}/{r['seeds']} | {_ttt(r)} | {_speedup(r)} | "
                    f"{_ci(r, 'auc_ratio')} | {_ci(r, 'final_iqm')} | {_ci(r, 'p_improve')} | {flags} |"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("key", help="dotted config key, as --set takes it")
    ap.add_argument("values", nargs="+", help="values of the key (YAML)")
    ap.add_argument("--strategies", nargs="+", default=["zero_shot", "finetune"], help="besides scratch")
    ap.add_argument("--targets", nargs="+", default=None, help="default: the config's target tasks")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every value")
    ap.add_argument(
        "--reference",
        metavar="DIR",
        help="a report of the config's own value (a directory with summary.json, say docs/results/<family>): "
        "its rows are listed too, instead of running that value again",
    )
    args = ap.parse_args()
    strategies = [s for s in args.strategies if s != BASELINE]
    reference = _reference(args) if args.reference else []
    base, done = run_sweep(
        args.config, args.key, args.values, strategies, args.targets, args.set,
        lambda cfg, raw: f"{cfg.name}-sweep-{args.key}-{_slug(raw)}",
    )  # fmt: skip
    print_tables(base, args.key, reference + done, strategies)


def _reference(args: argparse.Namespace) -> list[tuple[str, Path, dict]]:
    """The rows of ``--reference``, checked to be of this very config (its experiment hash)."""
    ref = Path(args.reference)
    path = ref / "summary.json" if ref.is_dir() else ref
    if not path.is_file():
        sys.exit(f"--reference {ref}: no summary.json there")
    summary = json.loads(path.read_text())
    cfg = load_config(args.config, [*args.set, *([f"target_tasks=[{','.join(args.targets)}]"] if args.targets else [])])
    if summary.get("config_hash") != experiment_hash(cfg):
        sys.exit(f"--reference {ref}: its experiment is not this config's ({args.config} with the --set overrides)")
    return [(f"{_lookup(cfg.to_dict(), args.key)} ({ref})", ref, summary)]


def _lookup(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data[part]
    return data


if __name__ == "__main__":
    main()
