"""Atomic file writes: a temp file in the same directory, fsync, then a rename.

A crash or ``kill -9`` leaves either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rltransfer.errors import UserInputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temps(directory: Path) -> int:
    """Delete the temp files a killed writer left under ``directory`` (``kill -9`` between the temp file
    and its rename); return how many. Only for a directory no one else is writing to."""
    stale = list(directory.rglob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented, key-sorted JSON (the same bytes for the same content), atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def check_writable(directory: Path) -> None:
    """Create ``directory`` and write a file in it, or refuse (:class:`UserInputError`, naming the directory and
    why): before any training, so that a run never trains to find it cannot keep what it made."""
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"output directory '{directory}' is a file: name a directory (new, or one of its own)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserInputError(f"output directory '{directory}' is not writable: {err.strerror or err}") from None
