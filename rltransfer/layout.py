"""Where an experiment directory keeps what: the one owner of its paths.

::

    <run_dir>/config.yaml, manifest.json        the resolved config, the experiment's manifest
    <run_dir>/pretrain/[seed-P/]bundle/          pre-training seed P's bundle (seed 0 at pretrain/ itself)
    <run_dir>/runs/<target>/<strategy>/seed-S/   one run: result.json, model.zip, tb/
    <run_dir>/report/                            report.md, summary.json, summary.csv, pictures
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_DIR = "bundle"


def pretrain_dir(run_dir: Path, seed: int) -> Path:
    """Where pre-training seed ``seed`` writes ``bundle/`` and ``tb/``."""
    return Path(run_dir) / "pretrain" / (f"seed-{seed}" if seed else "")


def bundle_dir(run_dir: Path, seed: int) -> Path:
    """Pre-training seed ``seed``'s bundle."""
    return pretrain_dir(run_dir, seed) / BUNDLE_DIR
