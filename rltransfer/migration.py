"""Experiment directories of older layouts, brought to the current one by ``rltransfer migrate DIR``.

Every experiment directory's ``manifest.json`` records its ``layout_version``; one written before the
version was recorded is version 1. An experiment refuses to resume a directory of an older layout and
names the command that migrates it, instead of carrying compatibility branches in its hot path.

- 1: TensorBoard logs beside each artifact: ``runs/<target>/<strategy>/seed-S/tb``,
  ``pretrain/tb`` and ``pretrain/seed-P/tb``, aggregates in ``aggregate/``.
- 2: one TensorBoard tree, ``tb/`` (:mod:`rltransfer.layout`): ``tb/<target>/<strategy>/seed-S``,
  ``tb/pretrain/seed-P``, ``tb/<target>/iqm/<strategy>`` (written by the report).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rltransfer import layout
from rltransfer.atomic import write_json_atomic
from rltransfer.errors import UserInputError

LAYOUT_VERSION = 2
MANIFEST = "manifest.json"


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def layout_version(run_dir: Path) -> int:
    """The layout of an experiment directory (the current one for a directory without a manifest yet)."""
    manifest = _manifest(Path(run_dir))
    if manifest is None:
        return LAYOUT_VERSION
    return int(manifest.get("layout_version", 1))


def check_layout(run_dir: Path) -> None:
    """Refuse a directory of an older layout, naming the command that migrates it."""
    version = layout_version(run_dir)
    if version < LAYOUT_VERSION:
        raise UserInputError(
            f"'{run_dir}' has layout version {version} (this rltransfer writes {LAYOUT_VERSION}: one TensorBoard "
            f"tree, tb/); migrate it first, its results untouched: rltransfer migrate {run_dir}"
        )
    if version > LAYOUT_VERSION:
        raise UserInputError(
            f"'{run_dir}' has layout version {version}, newer than this rltransfer's ({LAYOUT_VERSION}): upgrade rltransfer"
        )


def _move(source: Path, dest: Path, moved: list[str], root: Path) -> None:
    if not source.is_dir():
        return
    if dest.exists():
        raise UserInputError(f"cannot migrate '{root}': '{dest}' exists already (a half-migrated directory?)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))
    moved.append(f"{source.relative_to(root)} -> {dest.relative_to(root)}")


def migrate(run_dir: str | Path) -> list[str]:
    """Bring the experiment directory ``run_dir`` to :data:`LAYOUT_VERSION`; what was done, one line an
    action (nothing where it is current). Results, bundles and models are not touched."""
    root = Path(run_dir)
    manifest = _manifest(root)
    if manifest is None:
        raise UserInputError(f"'{root}' is not an experiment directory (no readable {MANIFEST})")
    done: list[str] = []
    if int(manifest.get("layout_version", 1)) < 2:
        for tb in sorted(root.glob("runs/*/*/seed-*/tb")):
            target, strategy, seed = tb.parent.parent.parent.name, tb.parent.parent.name, tb.parent.name
            _move(tb, layout.tb_root(root) / target / strategy / seed, done, root)
        for tb in sorted(root.glob("pretrain/seed-*/tb")):
            _move(tb, layout.tb_root(root) / "pretrain" / tb.parent.name, done, root)
        _move(root / "pretrain" / "tb", layout.pretrain_tb(root, 0), done, root)
        if (root / "aggregate").is_dir():
            shutil.rmtree(root / "aggregate")
            done.append("aggregate/ removed (rltransfer report writes the IQM curves again, under tb/)")
        manifest["layout_version"] = 2
        write_json_atomic(root / MANIFEST, manifest)
        done.append("layout_version 2")
    return done
