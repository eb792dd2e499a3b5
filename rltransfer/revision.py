"""Which code computed a result: the git commit of the rltransfer checkout that runs, and the versions of the
libraries it runs on.

Run hashes leave the code out on purpose (a grid resumes across commits, and a pre-training or a
scratch run is re-used by later experiments); results record the revision instead, and the report
lists every revision its runs and bundles came from, so a mixed or uncommitted provenance shows.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout's root where rltransfer runs from its source tree (an editable install)."""


@functools.cache
def code_revision() -> str | None:
    """The commit (12 hex digits) of the checkout rltransfer runs from, ``+dirty`` where tracked files
    differ from it; ``None`` for an installed copy (no checkout of its own) or without git."""
    if not (ROOT / ".git").exists() or not (ROOT / "rltransfer" / "revision.py").is_file():
        return None
    try:
        rev = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def package_versions() -> dict[str, str]:
    """Python's version and those of the libraries that compute a result (every bundle and manifest records
    them; ``rltransfer --version`` prints them)."""
    out = {"python": platform.python_version()}
    for pkg in ("rltransfer", "stable-baselines3", "torch", "gymnasium", "numpy", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out
