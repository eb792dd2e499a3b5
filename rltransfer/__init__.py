"""rltransfer: multi-task pre-training, transfer, and honest sample-efficiency comparisons.

Python API::

    import rltransfer
    result = rltransfer.pretrain("configs/quickstart.yaml")
    bundle = rltransfer.load_bundle(result.bundle_path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rltransfer.bundle import Bundle
    from rltransfer.pretrain import PretrainResult


def pretrain(*args: Any, **kwargs: Any) -> PretrainResult:
    """See :func:`rltransfer.pretrain.pretrain`."""
    from rltransfer.pretrain import pretrain as _pretrain

    return _pretrain(*args, **kwargs)


def load_bundle(path: Any) -> Bundle:
    """See :func:`rltransfer.bundle.load_bundle`."""
    from rltransfer.bundle import load_bundle as _load

    return _load(path)


def load_config(*args: Any, **kwargs: Any):
    """See :func:`rltransfer.config.load_config`."""
    from rltransfer.config import load_config as _load

    return _load(*args, **kwargs)


__all__ = ["load_bundle", "load_config", "pretrain"]
