"""What each command of the ``rltransfer`` command line does (:mod:`rltransfer.cli` parses the arguments).

Each ``cmd_*`` takes the parsed arguments and returns the exit status; what a command needs (torch among it) is
imported inside it, so that ``--help``, ``--version`` and a config's errors answer without loading it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from rltransfer.errors import UserInputError


def _family_arg(name: str) -> str:
    """A family's name; a YAML file declaring one is registered first (its name returned)."""
    from pathlib import Path

    if not name.endswith((".yaml", ".yml")):
        return name
    from rltransfer.config import family_spec
    from rltransfer.config_yaml import read_yaml
    from rltransfer.envs import register_declared

    return register_declared(family_spec(read_yaml(Path(name)), name).model_dump()).name


def cmd_families(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from rltransfer.envs import get_family, gym_id, list_families

    names = [_family_arg(args.name)] if args.name else list_families()
    if args.check:
        return _check_families(names)
    described = [
        {**get_family(n).describe(), "gym_id": gym_id(n) if gym_id(n) in gym.registry else None} for n in names
    ]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for fam in described:
        print(f"{fam['name']}: {fam['description']}")
        if fam["gym_id"]:
            print(
                f"  Gymnasium id: {fam['gym_id']} (gym.make('{fam['gym_id']}', task=...) once rltransfer.envs is imported)"
            )
        print("  parameters:")
        for pname, p in fam["parameters"].items():
            print(f"    {pname:<18} default {p['default']:<8g} range [{p['low']:g}, {p['high']:g}]  {p['doc']}")
        print("  tasks:")
        for tname, params in fam["tasks"].items():
            role = "source" if tname in fam["source_tasks"] else fam["target_tasks"].get(tname, "-")
            changed = {k: v for k, v in params.items() if v != fam["parameters"][k]["default"]}
            desc = ", ".join(f"{k}={v:g}" for k, v in changed.items()) or "(defaults)"
            print(f"    {tname:<18} {role:<14} {desc}")
        if fam["threshold_note"]:
            print(f"  threshold: {fam['reward_threshold']} ({fam['threshold_note']})")
        print()
    return 0


def _check_families(names: list[str]) -> int:
    from rltransfer.envs import get_family
    from rltransfer.envs.checks import check_family

    families = [get_family(name) for name in names]  # an unknown name: told before any check's output
    failed = 0
    for name, family in zip(names, families):
        print(f"{name}:")
        for check in check_family(family):
            failed += not check.ok
            print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}" + (f": {check.detail}" if check.detail else ""))
    print(f"{failed} check(s) failed" if failed else "every check passed")
    return 1 if failed else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from rltransfer.config import load_config

    cfg = load_config(args.config, args.overrides)  # before torch loads: a config error is told at once
    from rltransfer.pretraining import pretrain

    result = pretrain(cfg, seed=args.seed, progress=not args.no_progress, echo=True)
    print(f"bundle: {result.bundle_path}\ntensorboard --logdir {result.tb_dir}")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rltransfer.config import load_config

    cfg = load_config(args.config, args.overrides)  # before torch loads: a config error is told at once
    from rltransfer.records.lineage import format_report
    from rltransfer.strategies import get_strategy
    from rltransfer.transferring import transfer

    get_strategy(args.strategy)  # after --import: a strategy it registers is known
    result = transfer(
        cfg, args.bundle, args.target, args.strategy, seed=args.seed, timesteps=args.timesteps,
        out_dir=args.out, progress=not args.no_progress,
    )  # fmt: skip
    out = Path(result.out_dir or ".")  # transfer saves by default: out_dir is set
    print(format_report(result.lineage))
    model = out / "model.zip"
    from rltransfer.agents import get_algorithm

    print(f"model: {model}  (loads with stable_baselines3.{get_algorithm(cfg.agent.algo).base.__name__}.load)")
    imports = "".join(f"--import {shlex.quote(m)} " for m in cfg.imports)
    print(f"evaluate it: rltransfer {imports}evaluate {shlex.quote(str(model))}")
    print(f"tensorboard --logdir {out / 'tb'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from rltransfer.target_env import evaluate

    _import_experiments_modules(args.model)
    task, returns = evaluate(args.model, args.target, args.episodes, args.seed, not args.stochastic)
    policy = "sampled actions" if args.stochastic else "deterministic policy"
    print(
        f"{task}: mean return {np.mean(returns):.2f} +/- {np.std(returns):.2f} over {len(returns)} episode(s) "
        f"({policy}; reset seeds {args.seed}..{args.seed + len(returns) - 1})"
    )
    print("returns: " + ", ".join(f"{r:.2f}" for r in returns))
    return 0


def _import_experiments_modules(path: str) -> None:
    """Import the modules the config of the experiment ``path`` lies in names (``imports``: a family of one's
    own, say), as its workers did: a run of such a family is evaluated without ``--import`` again. One that
    fails to import here is said on stderr and left (the run's family may not need it)."""
    from pathlib import Path

    import yaml

    from rltransfer.errors import ConfigError
    from rltransfer.store.layout import CONFIG_FILE, experiment_holding
    from rltransfer.validation import import_modules

    experiment = experiment_holding(Path(path))
    if experiment is None:
        return
    try:
        imports = (yaml.safe_load((experiment / CONFIG_FILE).read_text()) or {}).get("imports") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return  # its config unreadable: the family is looked up as it stands
    for module in imports:
        try:
            import_modules([str(module)])
        except ConfigError as err:
            print(f"warning: '{experiment / CONFIG_FILE}', the run's experiment, imports '{module}', which failed "
                  f"here ({str(err).split('failed: ', 1)[-1]}): --import MODULE imports it", file=sys.stderr)  # fmt: skip


def cmd_experiment(args: argparse.Namespace) -> int:
    from rltransfer.config import load_config

    cfg = load_config(args.config, args.overrides)  # before torch loads: a config error is told at once
    from rltransfer.experiment import run_experiment

    result = run_experiment(cfg, progress=not args.no_progress, echo=True)
    if result.failed:
        print(f"{len(result.failed)} run(s) failed (listed in the report); the other results are kept", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.index is not None:
        return _report_index(args)
    if args.run_dir is None:
        raise UserInputError("report: give an experiment's directory, or --index RESULTS_DIR")
    if args.update or args.check:
        raise UserInputError("report: --update and --check go with --index RESULTS_DIR")
    from rltransfer.reporting.report import render

    summary = render(Path(args.run_dir), echo=True)
    return 1 if summary["failures"] else 0


def _report_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rltransfer.reporting.results_index import tables, update

    if args.run_dir is not None:
        raise UserInputError("report: give an experiment's directory or --index RESULTS_DIR, not both")
    if not args.update:
        if args.check:
            raise UserInputError("report --index: --check needs --update FILE (the files to check)")
        for name, table in tables(Path(args.index), Path.cwd()).items():
            print(f"{name}:\n\n{table}\n")
        return 0
    changed = update(Path(args.index), [Path(f) for f in args.update], check=args.check)
    for f in changed:
        print(f"{f}: {'differs from the generated tables' if args.check else 'updated'}")
    if args.check and changed:
        print(f"run: rltransfer report --index {args.index} --update {' '.join(args.update)}", file=sys.stderr)
        return 1
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from rltransfer.store.migration import LAYOUT_VERSION, migrate

    done = migrate(args.run_dir)
    for line in done:
        print(line)
    print(f"{args.run_dir}: layout version {LAYOUT_VERSION}" + ("" if done else " already; nothing to do"))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from rltransfer.reporting.publishing import publication_warnings, publish

    dest = publish(args.run_dir, args.dest)
    print(f"published {args.run_dir} to {dest} (report, config, manifest, every run in runs.jsonl.gz)")
    for warning in publication_warnings(json.loads((dest / "summary.json").read_text())):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from rltransfer.reporting.publication import restore

    done = restore(args.published, args.output_dir, runs=not args.without_runs)
    seeds = ", ".join(map(str, done.bundles))
    bundles = f"the bundles of pre-training seed(s) {seeds}" if done.bundles else "no bundle (none ship)"
    where = f" --set output_dir={args.output_dir}" if args.output_dir is not None else ""
    if done.reproduced_on:
        bundles += (
            f", and its re-runs on other kinds of CPU ({', '.join(done.reproduced_on)}; publishing the experiment "
            "again, wherever to, keeps those of the runs it publishes unchanged)"
        )
    config = f"{args.published.rstrip('/')}/config.yaml{where}"
    runs, then = (
        ("no run", f"Make every run again at this code: rltransfer experiment {config}; then rltransfer publish")
        if args.without_runs
        else (f"{done.results} run result(s)", "Extend it (more strategies, seeds or targets; only the new runs "
              f"train): rltransfer experiment {config} --set 'transfer.strategies=[...]'; then publish it again")
    )  # fmt: skip
    print(f"restored {args.published} to {done.run_dir}: config, manifest, {runs}, {bundles}.\n{then}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rltransfer.execution.backends import resolve_workers
    from rltransfer.reporting.verification import elsewhere, verify

    if args.runs is not None and args.runs < 1:
        raise UserInputError(f"--runs must be >= 1, got {args.runs}")
    checks = verify(
        args.published, args.runs, args.targets, args.sample_seed, resolve_workers(args.workers), args.out,
        pretrain=args.pretrain, record=args.record,
    )  # fmt: skip
    if all(c.same for c in checks):
        return 0
    return 3 if elsewhere(checks) else 1
