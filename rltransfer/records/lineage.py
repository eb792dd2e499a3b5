"""A target agent's ``lineage.json``: which bundle it came from, what became of each component (loaded,
frozen, adapted, fresh), and how its heads were chosen.

One typed record with one owner: :mod:`rltransfer.transferring` builds it, this module writes and reads
it and renders its load report (the terminal's table and TensorBoard's text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rltransfer.atomic import atomic_write_bytes
from rltransfer.records.base import Record as _Record

LINEAGE_FILE = "lineage.json"


class ComponentLoad(_Record):
    """What became of one component of the target agent."""

    component: str
    status: str
    """``loaded``, ``frozen``, ``adapted`` or ``fresh`` (with the trunk side frozen, where one is)."""
    loaded: bool
    """Whether any of its tensors came from the bundle."""
    source: str
    """Where its tensors came from: the bundle's checksum, the source head chosen, or why it is fresh."""
    lr_mult: float | None = None
    """Its learning-rate multiplier (0: frozen)."""
    shapes: dict[str, list[int]]


class ProbeRecord(_Record):
    """What a head-choosing probe found (``transfer.head_init: probe``)."""

    source: str
    returns: dict[str, float]
    steps: int
    episodes: int
    nearest_by_context: str


class Lineage(_Record):
    """The content of ``lineage.json``."""

    bundle: str
    bundle_sha256: str
    bundle_timesteps: int
    family: str
    target: dict[str, Any]
    """The target task: its name and parameters."""
    split: str
    nearest_source: str
    """The source whose head the target starts from (the probe's choice where one ran)."""
    strategy: str
    strategy_params: dict[str, Any]
    trains: bool
    head_init: str
    seed: int
    timesteps: int | None = None
    """The target training's budget (the probe's steps included)."""
    components: list[ComponentLoad]
    teacher: str | None = None
    """``kickstart``: the source head the target agent is distilled from."""
    probe: ProbeRecord | None = None

    def components_status(self) -> dict[str, str]:
        return {c.component: c.status for c in self.components}

    def write(self, out_dir: Path) -> None:
        atomic_write_bytes(Path(out_dir) / LINEAGE_FILE, json.dumps(self.to_json(), indent=2).encode())

    @classmethod
    def read(cls, out_dir: Path) -> Lineage:
        return cls.model_validate_json((Path(out_dir) / LINEAGE_FILE).read_bytes())


def _lr(c: ComponentLoad) -> str:
    mult = 1.0 if c.lr_mult is None else c.lr_mult
    return "-" if mult == 0.0 else f"x{mult:g}"


def format_report(lineage: Lineage) -> str:
    """The loading report as a small table: component, status, learning-rate multiplier, source."""
    lines = [f"{'component':<10} {'status':<8} {'lr':<6} source"]
    for c in lineage.components:
        lines.append(f"{c.component:<10} {c.status:<8} {_lr(c):<6} {c.source or '-'}")
    return "\n".join(lines)


def markdown_report(lineage: Lineage) -> str:
    """The loading report as Markdown (TensorBoard's text tab)."""
    rows = ["| component | status | lr | source | tensors |", "|---|---|---|---|---|"]
    for c in lineage.components:
        shapes = ", ".join(f"{k.split('.', 1)[1] if '.' in k else k} {tuple(v)}" for k, v in list(c.shapes.items())[:6])
        rows.append(f"| {c.component} | {c.status} | {_lr(c)} | {c.source or '-'} | {shapes} |")
    return (
        f"strategy **{lineage.strategy}** on target **{lineage.target['name']}** ({lineage.split}), "
        f"seed {lineage.seed}, bundle `{lineage.bundle}` (sha256 {lineage.bundle_sha256[:12]})\n\n" + "\n".join(rows)
    )
