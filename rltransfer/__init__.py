"""rltransfer: multi-task pre-training, transfer, and honest sample-efficiency comparisons.

Python API::

    import rltransfer
    result = rltransfer.pretrain("configs/quickstart.yaml")
    bundle = rltransfer.load_bundle(result.bundle_path)
    run = rltransfer.transfer("configs/quickstart.yaml", bundle, target="very-long-heavy", strategy="finetune")

The heavy modules (torch, SB3) load on first use, so ``rltransfer.config`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rltransfer.bundle import Bundle
    from rltransfer.config import ExperimentConfig
    from rltransfer.experiment import ExperimentResult
    from rltransfer.pretraining import PretrainResult
    from rltransfer.transferring import TransferResult


def pretrain(*args: Any, **kwargs: Any) -> PretrainResult:
    """Multi-task pre-training; see :func:`rltransfer.pretraining.pretrain`."""
    from rltransfer.pretraining import pretrain as _pretrain

    return _pretrain(*args, **kwargs)


def transfer(*args: Any, **kwargs: Any) -> TransferResult:
    """One target agent from a bundle with a strategy; see :func:`rltransfer.transferring.transfer`."""
    from rltransfer.transferring import transfer as _transfer

    return _transfer(*args, **kwargs)


def run_experiment(*args: Any, **kwargs: Any) -> ExperimentResult:
    """The main job: pretrain, transfer grid, report; see :func:`rltransfer.experiment.run_experiment`."""
    from rltransfer.experiment import run_experiment as _run

    return _run(*args, **kwargs)


def make_target_env(*args: Any, **kwargs: Any):
    """A task's env conditioned as a bundle expects; see :func:`rltransfer.transferring.make_target_env`."""
    from rltransfer.transferring import make_target_env as _make

    return _make(*args, **kwargs)


def wrap_target_env(*args: Any, **kwargs: Any):
    """A plain env with a saved target agent's observation entries; see :func:`rltransfer.target_env.wrap_target_env`."""
    from rltransfer.target_env import wrap_target_env as _wrap

    return _wrap(*args, **kwargs)


def load_bundle(path: Any) -> Bundle:
    """Load and validate a bundle; see :func:`rltransfer.bundle.load_bundle`."""
    from rltransfer.bundle import load_bundle as _load

    return _load(path)


def load_config(*args: Any, **kwargs: Any) -> ExperimentConfig:
    """Validate a config; see :func:`rltransfer.config.load_config`."""
    from rltransfer.config import load_config as _load

    return _load(*args, **kwargs)


__all__ = [
    "load_bundle", "load_config", "make_target_env", "pretrain", "run_experiment", "transfer", "wrap_target_env",
]  # fmt: skip
