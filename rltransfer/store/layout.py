"""Where an experiment directory keeps what: the one owner of its paths.

::

    <run_dir>/config.yaml, manifest.json        the resolved config, the experiment's manifest
    <run_dir>/pretrain/[seed-P/]bundle/          pre-training seed P's bundle (seed 0 at pretrain/ itself)
    <run_dir>/runs/<target>/<strategy>/seed-S/   one run: result.json, model.zip, lineage.json
    <run_dir>/report/                            report.md, summary.json, summary.csv, pictures
    <run_dir>/tb/                                TensorBoard (tensorboard --logdir <run_dir>/tb): runs named
        pretrain/seed-P, <target>/<strategy>/seed-S and <target>/iqm/<strategy> (each strategy's IQM)
"""

from __future__ import annotations

from pathlib import Path

from rltransfer.errors import UserInputError

BUNDLE_DIR = "bundle"
CONFIG_FILE = "config.yaml"


def experiment_holding(path: Path) -> Path | None:
    """The experiment directory (or publication: both hold the config beside the experiment's manifest) that
    ``path`` is or lies in, or None."""
    from rltransfer.records.experiment_manifest import MANIFEST_FILE

    path = Path(path).absolute()
    return next(
        (p for p in (path, *path.parents) if (p / MANIFEST_FILE).is_file() and (p / CONFIG_FILE).is_file()), None
    )


def check_not_experiment_top(out: Path, writes: str, option: str) -> None:
    """Refuse ``out`` where it is an experiment directory (or a publication) itself: what a standalone pre-training
    or run ``writes`` would land among its files and in its TensorBoard tree."""
    if experiment_holding(out) == Path(out).absolute():
        raise UserInputError(
            f"'{out}' is an experiment directory (or a publication): {writes} would land among its files and in its "
            f"TensorBoard tree; write to a directory of its own ({option})"
        )


def pretrain_dir(run_dir: Path, seed: int) -> Path:
    """Where pre-training seed ``seed`` writes ``bundle/`` and ``tb/``."""
    return Path(run_dir) / "pretrain" / (f"seed-{seed}" if seed else "")


def bundle_dir(run_dir: Path, seed: int) -> Path:
    """Pre-training seed ``seed``'s bundle."""
    return pretrain_dir(run_dir, seed) / BUNDLE_DIR


def run_key(target: str, strategy: str, seed: int) -> str:
    """A run's name in the grid, ``<target>/<strategy>/seed-S``: its directory under ``runs/``."""
    return f"{target}/{strategy}/seed-{seed}"


def run_out(run_dir: Path, target: str, strategy: str, seed: int) -> Path:
    """Where one run writes ``result.json``, ``model.zip`` and ``lineage.json``."""
    return Path(run_dir) / "runs" / run_key(target, strategy, seed)


TB_DIR = "tb"


def tb_root(run_dir: Path) -> Path:
    """The experiment's TensorBoard log directory: every run, pre-training and aggregate below it, each a
    TensorBoard run named by its path there."""
    return Path(run_dir) / TB_DIR


def pretrain_tb(run_dir: Path, seed: int) -> Path:
    return tb_root(run_dir) / "pretrain" / f"seed-{seed}"


def run_tb(run_dir: Path, target: str, strategy: str, seed: int) -> Path:
    return tb_root(run_dir) / run_key(target, strategy, seed)


def iqm_tb(run_dir: Path, target: str, strategy: str) -> Path:
    """A strategy's IQM curve on a target (the report writes it)."""
    return tb_root(run_dir) / target / "iqm" / strategy
