"""Where the config goes: every call of rltransfer code (in the driver process) that is handed the experiment
config, as an ``ExperimentConfig`` or its dict, from ``run_experiment`` to the report.

The config's own methods (``cfg.run_dir``, ``cfg.to_dict()``) do not count. Consecutive calls in one module
make one *stay*; the script prints how many stays there were, in how many
modules, and how often each module was entered (a config resolved once and passed down enters each module it
needs once or twice). Runs a tiny CartPole experiment (one worker, in a temporary directory).

    python benchmarks/config_walk.py [--config CONFIG] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rltransfer
from rltransfer.config import ExperimentConfig

TINY = {
    "name": "walk",
    "family": "cartpole",
    "source_tasks": ["short", "long"],
    "target_tasks": ["very-long-heavy"],
    "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}},
    "pretrain": {"timesteps": 256, "envs_per_task": 1, "eval_episodes": 2},
    "transfer": {"timesteps": 256, "seeds": 2, "strategies": ["scratch", "finetune"]},
    "evaluation": {"every": 128, "episodes": 2},
    "runner": {"workers": 1},
}
CONFIG_KEYS = {"family", "pretrain", "transfer", "evaluation"}


def _is_config(value: Any) -> bool:
    return isinstance(value, ExperimentConfig) or (isinstance(value, Mapping) and set(value) >= CONFIG_KEYS)


def walk(config: Mapping[str, Any] | str, overrides: list[str]) -> list[str]:
    """The modules of the calls handed the config, in call order."""
    root = str(Path(rltransfer.__file__).parent)
    seen: list[str] = []

    def profile(frame, event, _arg):
        if event != "call" or not frame.f_code.co_filename.startswith(root):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        # The config's own methods (run_dir, to_dict) answer about it: they are not a step of the walk.
        args = [frame.f_locals.get(n) for n in names if n != "self"]
        if any(_is_config(a) for a in args):
            seen.append(str(Path(code.co_filename).relative_to(Path(root).parent)))

    sys.setprofile(profile)
    try:
        rltransfer.run_experiment(config, overrides, progress=False, echo=False)
    finally:
        sys.setprofile(None)
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="an experiment config (default: a tiny CartPole one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rltransfer-walk-") as tmp:
        config: Mapping[str, Any] | str = args.config or TINY
        calls = walk(config, [*args.overrides, f"output_dir={tmp}"])
    stays = [m for i, m in enumerate(calls) if i == 0 or calls[i - 1] != m]
    entered = Counter(stays)
    print(f"{len(calls)} calls handed the config; {len(stays)} stays in {len(entered)} modules")
    for module, n in entered.most_common():
        print(f"  {n:3d}  {module}")


if __name__ == "__main__":
    main()
