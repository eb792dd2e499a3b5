"""rltransfer: multi-task pre-training, transfer, and honest sample-efficiency comparisons.

Python API::

    import rltransfer
    result = rltransfer.pretrain("configs/quickstart.yaml")
    bundle = rltransfer.load_bundle(result.bundle_path)
    run = rltransfer.transfer("configs/quickstart.yaml", bundle, target="very-long-heavy", strategy="finetune")

Each name is the function itself (its signature and documentation), loaded on first use (``lazy_loader``,
PEP 562): ``import rltransfer`` and ``rltransfer.config`` load no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
    from rltransfer.bundle import load_bundle as load_bundle
    from rltransfer.config import load_config as load_config
    from rltransfer.experiment import run_experiment as run_experiment
    from rltransfer.pretraining import pretrain as pretrain
    from rltransfer.target_env import wrap_target_env as wrap_target_env
    from rltransfer.transferring import make_target_env as make_target_env
    from rltransfer.transferring import transfer as transfer

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "bundle": ["load_bundle"],
        "config": ["load_config"],
        "experiment": ["run_experiment"],
        "pretraining": ["pretrain"],
        "target_env": ["wrap_target_env"],
        "transferring": ["make_target_env", "transfer"],
    },
)
