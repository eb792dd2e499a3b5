"""The ``rltransfer`` command line, its arguments parsed (families, pretrain, transfer, experiment, report, publish,
verify, evaluate, restore, migrate); what each command does is in :mod:`rltransfer.commands`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from rltransfer import commands
from rltransfer.config import DEFAULT_STRATEGIES, MAX_SEED
from rltransfer.errors import Interrupted, UserInputError, WorkerDied

EPILOG = """examples:
  rltransfer experiment configs/quickstart.yaml            # pretrain -> transfer grid -> report
  rltransfer experiment configs/cartpole.yaml --set transfer.seeds=20 --set runner.workers=2
  rltransfer families cartpole
  rltransfer pretrain configs/quickstart.yaml --set pretrain.timesteps=20000
  rltransfer transfer configs/quickstart.yaml --bundle runs/quickstart/pretrain/bundle \\
      --target very-long-heavy --strategy finetune --seed 0
  rltransfer report runs/quickstart
  rltransfer publish runs/quickstart docs/results/quickstart
  rltransfer verify docs/results/quickstart --runs 2
"""


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key; VALUE is YAML (--set transfer.seeds=20 --set "
        "'transfer.strategies=[scratch,finetune]')",
    )  # fmt: skip


def _workers(value: str) -> str | int:
    """``auto`` or a positive count (argparse reports anything else, exit 2)."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a whole number >= 1, got {value!r}")
    return int(value)


def _seed(value: str) -> int:
    """A seed: a whole number from 0 to :data:`MAX_SEED` (argparse reports anything else, exit 2)."""
    if not value.isdigit() or int(value) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_SEED}, got {value!r}")
    return int(value)


class _Version(argparse.Action):
    """``--version``: rltransfer's version and checkout, and the versions of what computes its results (what a
    bug report needs); read only when asked (git runs for the checkout)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from rltransfer.revision import code_revision, package_versions

        versions = package_versions()
        rev = code_revision()
        where = f"checkout {rev}" if rev else "installed, no checkout"
        libs = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "rltransfer")
        print(f"rltransfer {versions['rltransfer']} ({where})\n{libs}")  # on stdout, as argparse's own version
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltransfer",
        description="Multi-task pre-training and transfer for SB3 + Gymnasium, compared against scratch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="rltransfer's version and checkout, and its libraries'")
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import MODULE first (it registers families, strategies or encoders); with a config, its workers too",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "experiment", help="the main job: pre-train, transfer grid over seeds, comparison and report",
        epilog="examples:\n  rltransfer experiment configs/quickstart.yaml\n"
        "  rltransfer experiment configs/cartpole.yaml --set transfer.seeds=20 --set runner.workers=2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("config", help="experiment config (YAML)")
    _add_set(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=commands.cmd_experiment)

    p = sub.add_parser(
        "report", help="re-render the report from the results on disk (also of a partial experiment)",
        epilog="examples:\n  rltransfer report runs/quickstart\n"
        "  rltransfer report --index docs/results --update README.md docs/getting-started.md docs/results/README.md \\\n"
        "    docs/results/*/README.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument(
        "run_dir", nargs="?", default=None,
        help="an experiment's directory (runs/<name>), or a published one (runs.jsonl.gz)",
    )  # fmt: skip
    p.add_argument(
        "--index", metavar="RESULTS_DIR", default=None,
        help="instead: the tables of every publication under RESULTS_DIR, from their summary files",
    )  # fmt: skip
    p.add_argument("--update", nargs="+", metavar="FILE", default=[], help="with --index: rewrite the tables in FILE")
    p.add_argument(
        "--check", action="store_true", help="with --update: exit 1 where FILE's tables are not the generated ones"
    )
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser(
        "migrate", help="bring an experiment directory of an older layout to this rltransfer's (results untouched)",
        epilog="example:\n  rltransfer migrate runs/cartpole-physics", formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("run_dir", help="an experiment's directory (runs/<name>)")
    p.set_defaults(func=commands.cmd_migrate)

    p = sub.add_parser(
        "publish", help="an experiment's per-run data (runs.jsonl.gz) and the report rendered from it, in a directory",
        epilog="example:\n  rltransfer publish runs/quickstart docs/results/quickstart\n"
        "  rltransfer report docs/results/quickstart      # re-renders it from runs.jsonl.gz alone",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("run_dir", help="an experiment's directory (runs/<name>) with its report")
    p.add_argument("dest", help="the publication's directory (created; a README there is kept)")
    p.set_defaults(func=commands.cmd_publish)

    p = sub.add_parser(
        "restore", help="a publication back into an experiment directory, to extend it or make its grid again",
        description="Make the experiment directory of a publication (its config, manifest, every run's result and the "
        "bundles it ships) where its config's experiment writes (<output_dir>/<name>), so that 'rltransfer "
        "experiment' on its config extends it: more strategies, seeds or targets, the published runs and "
        "pre-trainings re-used. With --without-runs, the experiment makes every run again at this code instead.",
        epilog="example:\n  rltransfer restore docs/results/lunarlander                # -> runs/lunarlander-wind\n"
        "  rltransfer experiment docs/results/lunarlander/config.yaml --set 'transfer.strategies=[scratch,finetune,adapter]'\n"
        "  rltransfer publish runs/lunarlander-wind docs/results/lunarlander",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("published", help="a published directory (rltransfer publish; holds runs.jsonl.gz)")
    p.add_argument(
        "--output-dir", default=None, help="instead of the config's output_dir (then --set it for the experiment)"
    )
    p.add_argument(
        "--without-runs", action="store_true",
        help="restore no run (the pre-trainings, config and manifest only): the experiment then makes the "
        "publication's whole grid again at this code, from its own pre-trainings",
    )  # fmt: skip
    p.set_defaults(func=commands.cmd_restore)

    p = sub.add_parser(
        "verify", help="re-run published runs at the current code; exit 0 if every curve is the same",
        description="Re-run published runs at the current code and compare each curve with the published one.\n\n"
        "exit status:\n"
        "  0  every curve is the same\n"
        "  1  a run made on this kind of CPU (or on one not recorded) differs: the code or the libraries changed it\n"
        "  2  bad input\n"
        "  3  only runs made on another kind of CPU differ: torch and MKL round differently there, so exact\n"
        "     equality is not expected (--record keeps this machine's re-runs, and later checks on this kind of\n"
        "     CPU compare with them exactly)",
        epilog="examples:\n  rltransfer verify docs/results/cartpole --runs 2          # 2 runs, from the shipped bundles\n"
        "  rltransfer verify docs/results/quickstart --pretrain      # every run, pre-trainings trained again\n"
        "  rltransfer verify docs/results/quickstart --runs 2 --targets very-long-heavy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("published", help="a published directory (rltransfer publish; holds runs.jsonl.gz)")
    p.add_argument(
        "--runs", type=int, default=None, help="check this many runs, drawn with --sample-seed (default: all)"
    )
    p.add_argument("--targets", nargs="+", default=None, help="only runs of these targets")
    p.add_argument("--sample-seed", type=_seed, default=0, help="seed of the draw of --runs (default 0)")
    p.add_argument("--workers", type=_workers, default="auto", help="runs side by side (default: the cores)")
    p.add_argument(
        "--pretrain", action="store_true",
        help="train the pre-trainings again too (default: start from the bundles the publication ships, if any)",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="keep the pre-trainings and runs here (default: a temporary directory)")
    p.add_argument(
        "--record", action="store_true",
        help="keep the re-runs of runs made on another kind of CPU in the publication (reproductions/<kind>.jsonl.gz): "
        "later checks on this kind of CPU compare with them exactly (a re-run recorded already is kept: it is the reference)",
    )  # fmt: skip
    p.set_defaults(func=commands.cmd_verify)

    p = sub.add_parser(
        "evaluate", help="evaluate a saved target agent (its model.zip alone) with SB3's evaluate_policy",
        epilog="examples:\n  rltransfer evaluate runs/quickstart/runs/very-long-heavy/finetune/seed-0/model.zip\n"
        "  rltransfer evaluate runs/quickstart/runs/very-long-heavy/finetune/seed-0 --target medium --episodes 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("model", help="a target run's model.zip, or its directory")
    p.add_argument("--target", default=None, help="a task of the model's family (default: the one it was trained on)")
    p.add_argument("--episodes", type=int, default=10, help="episodes (default 10)")
    p.add_argument("--seed", type=_seed, default=0, help="episode i is reset with seed + i (default 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: the deterministic policy)")
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser(
        "families", help="list families, their parameters, tasks and splits; --check tests one",
        epilog="examples:\n  rltransfer families cartpole\n  rltransfer families --check configs/families/cheetah.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("name", nargs="?", help="one family, or a YAML file declaring one (default: all)")
    how = p.add_mutually_exclusive_group()  # the checks print their own lines, in no JSON
    how.add_argument(
        "--check", action="store_true",
        help="Gymnasium's env checker on every task, each parameter's effect, no state shared between tasks",
    )  # fmt: skip
    how.add_argument("--json", action="store_true", help="machine-readable output (not with --check)")
    p.set_defaults(func=commands.cmd_families)

    p = sub.add_parser(
        "pretrain", help="multi-task pre-training on the source tasks; writes a bundle",
        epilog="example:\n  rltransfer pretrain configs/cartpole.yaml --set pretrain.timesteps=50000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("config", help="experiment config (YAML)")
    _add_set(p)
    p.add_argument("--seed", type=_seed, default=0, help="pre-training seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_pretrain)

    p = sub.add_parser(
        "transfer", help="train one target agent from a bundle with one strategy",
        epilog="example:\n  rltransfer transfer configs/quickstart.yaml --bundle runs/quickstart/pretrain/bundle "
        "--target very-long-heavy --strategy finetune --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("config", help="experiment config (YAML): hyperparameters, head_init, strategy_params")
    p.add_argument("--bundle", required=True, help="bundle directory written by 'rltransfer pretrain'")
    p.add_argument("--target", required=True, help="target task name of the config's family")
    p.add_argument(
        "--strategy", required=True, metavar="NAME",
        help=f"a registered strategy ({', '.join(DEFAULT_STRATEGIES)}, ...; or one an --import registers)",
    )  # fmt: skip
    p.add_argument("--seed", type=_seed, default=0, help="run seed (default 0)")
    p.add_argument("--timesteps", type=int, default=None, help="target steps (default: transfer.timesteps)")
    p.add_argument(
        "--out", default=None, help="output directory (default: runs/<name>/runs/<target>/<strategy>/seed-<k>)"
    )
    _add_set(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_transfer)
    return parser


def _task_error(err: Exception) -> bool:
    """Whether ``err`` is a family's ``TaskError`` (a task or parameter it does not allow): bad input. Looked up
    where it was raised, not imported here: the envs load torch, and a command that never loaded them (a
    config error, ``--help``) answers without."""
    family = sys.modules.get("rltransfer.envs.family")
    return family is not None and isinstance(err, family.TaskError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.imports:
            from rltransfer.validation import import_modules

            import_modules(args.imports, key="--import")
            if hasattr(args, "overrides"):  # the config's workers import them too
                args.overrides = [*args.overrides, f"imports={json.dumps(args.imports)}"]
        return int(args.func(args))
    except Interrupted as err:
        print(f"rltransfer: {err}", file=sys.stderr)
        return err.exit_code
    except WorkerDied as err:
        print(f"rltransfer: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of the output went (| head): stop quietly, as a command killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit writes nowhere
        return 141
    except Exception as err:
        if not isinstance(err, UserInputError) and not _task_error(err):
            raise
        print(f"rltransfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rltransfer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
