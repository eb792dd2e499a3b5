"""Where an experiment directory keeps what: the one owner of its paths.

::

    <run_dir>/config.yaml, manifest.json        the resolved config, the experiment's manifest
    <run_dir>/envs.json                          what the family's envs did when its results were made
    <run_dir>/pretrain/[seed-P/]bundle/          pre-training seed P's bundle (seed 0 at pretrain/ itself)
    <run_dir>/runs/<target>/<strategy>/seed-S/   one run: result.json, model.zip, lineage.json
    <run_dir>/report/                            report.md, summary.json, summary.csv, pictures
    <run_dir>/tb/                                TensorBoard (tensorboard --logdir <run_dir>/tb): runs named
        pretrain/seed-P, <target>/<strategy>/seed-S and <target>/iqm/<strategy> (each strategy's IQM)
    <run_dir>/restored-from/                     restored from a publication that keeps re-runs made on other
        kinds of CPU: its runs.jsonl.gz, manifest.json and reproductions/, which publishing carries on
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rltransfer.errors import UserInputError
from rltransfer.records.env_behaviour import ENVS_FILE
from rltransfer.records.experiment_manifest import MANIFEST_FILE

BUNDLE_DIR = "bundle"
CONFIG_FILE = "config.yaml"
TB_DIR = "tb"
RESTORED_DIR = "restored-from"
LOCK_FILE = ".lock"
TOP_NAMES = (CONFIG_FILE, MANIFEST_FILE, ENVS_FILE, "pretrain", "runs", "report", TB_DIR, RESTORED_DIR)
"""What an experiment directory holds at its top (the tree above; and its hidden lock), and nothing else."""


def check_experiment_top(run_dir: Path) -> None:
    """Refuse, as an experiment's directory, one without its manifest that holds other files than an experiment
    writes, or a ``config.yaml`` not in the form an experiment writes it (a directory of one's own, whose
    ``config.yaml`` the experiment would replace). One that holds only what an experiment writes is one an earlier
    start left, or a standalone pre-training's or run's."""
    if not run_dir.is_dir() or (run_dir / MANIFEST_FILE).is_file():
        return
    # hidden names aside: the lock, and temp files a killed writer left (removed under the lock)
    other = sorted(p.name for p in run_dir.iterdir() if p.name not in TOP_NAMES and not p.name.startswith("."))
    if other:
        raise UserInputError(
            f"'{run_dir}' is not an experiment directory (no {MANIFEST_FILE}) and holds files an experiment does not "
            f"write ({', '.join(other[:5])}{', ...' if len(other) > 5 else ''}), beside which it would write its "
            f"{CONFIG_FILE}, {MANIFEST_FILE} and results: set another output_dir or name"
        )
    config = run_dir / CONFIG_FILE
    if config.is_file() and not _as_written(config):
        raise UserInputError(
            f"'{config}' is not a config an experiment wrote (a config of one's own?): the experiment writes its "
            f"resolved config there, which would replace it, comments and all; set another output_dir or name, or "
            f"move the file out of '{run_dir}'"
        )


def _as_written(config: Path) -> bool:
    """Whether ``config`` is in the form an experiment writes its config in (PyYAML's dump of a mapping: no
    comments), as an earlier start that stopped before its manifest, or a publication's copy, left it."""
    try:
        text = config.read_text()
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and text == yaml.safe_dump(data, sort_keys=False)


def experiment_holding(path: Path) -> Path | None:
    """The experiment directory (or publication: both hold the config beside the experiment's manifest) that
    ``path`` is or lies in, or None."""
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
