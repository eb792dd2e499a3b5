"""A bundle's ``bundle.json``: what a pre-training stored beside its weights, and the architecture that
rebuilds every component from them.

One typed record with one owner: this module reads (validating format, checksum and every field) and
writes it; :func:`rltransfer.bundle.save_bundle` fills it in, a :class:`~rltransfer.bundle.Bundle` carries
it. Fields are written in the order they are declared, and a field a manifest does not hold stays absent,
so a manifest read and written back is the same bytes (its checksum, ``manifest_sha256``, covers the
canonical JSON of everything else).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rltransfer.atomic import atomic_write_bytes
from rltransfer.errors import BundleError
from rltransfer.records.base import Record as _Record
from rltransfer.records.base import first_problem
from rltransfer.records.machine import Machine
from rltransfer.records.observation_stats import ObservationStats

FORMAT_VERSION = 1
MANIFEST_FILE = "bundle.json"
WEIGHTS_FILE = "components.safetensors"
"""The bundle's tensors (safetensors), named by component; the manifest holds their sha256."""
REQUIRED_KEYS = (
    "format_version", "family", "conditioning", "source_tasks", "architecture", "spaces",
    "obs_normalization", "timesteps", "versions", "weights",
)  # fmt: skip


class TaskDims(_Record):
    """Per source task, where their spaces differ: the observation length (its input stem) and the
    number of actions (its head)."""

    obs_dims: list[int]
    action_dims: list[int]


class Architecture(_Record):
    """What rebuilds every component of a multi-task policy (JSON-able)."""

    algo: str = "ppo"
    encoder: dict[str, Any]
    """``type`` (a registered encoder) and its keyword arguments."""
    trunk: dict[str, Any]
    """The algorithm's trunk layers (``pi``/``vf`` for PPO, ``pi``/``qf`` for SAC, ``q`` for DQN)."""
    heads: str
    """``per_task`` or ``shared``."""
    task_names: list[str]
    task_spaces: TaskDims | None = None

    def for_tasks(self, names: list[str]) -> Architecture:
        """The same architecture with other heads (a target agent's)."""
        return self.model_copy(update={"task_names": list(names)})


class SourceTask(_Record):
    name: str
    params: dict[str, Any]
    context: list[float] | None = None


class Weights(_Record):
    file: str
    sha256: str
    tensors: dict[str, list[int]]
    """Every tensor's shape, by name."""


class BundleManifest(_Record):
    """The content of ``bundle.json``."""

    format_version: int
    family: str
    family_spec: dict[str, Any] | None = None
    """A family declared as data: its declaration, so the bundle is read without the config."""
    conditioning: str
    source_tasks: list[SourceTask]
    algo: str = "ppo"
    architecture: Architecture
    obs_normalization: ObservationStats | None
    """The observation statistics of ``agent.normalize`` (``None``: not normalised)."""
    timesteps: int
    seed: int | None = None
    hyperparams: dict[str, Any] | None = None
    config_hash: str | None = None
    """The hash of the pre-training's resolved config."""
    evaluation: dict[str, dict[str, float]] | None = None
    """Per source task, the final evaluation: ``mean_return``, ``std_return``."""
    ent_coefs: dict[str, float] | None = None
    """SAC: each task's entropy coefficient at the end of pre-training."""
    experiment_hash: str | None = None
    pretrain_hash: str | None = None
    """What a pre-training depends on (:func:`~rltransfer.store.keys.pretraining_hash`): it is re-used under it."""
    spaces: dict[str, dict[str, Any]]
    versions: dict[str, str]
    code_revision: str | None = None
    machine: Machine | None = None
    """The CPU it was trained on (:mod:`rltransfer.records.machine`; absent in bundles written before
    2026-12-03)."""
    weights: Weights
    manifest_sha256: str | None = None

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.source_tasks]

    def sealed(self) -> BundleManifest:
        """The manifest with its checksum."""
        return self.model_copy(update={"manifest_sha256": manifest_checksum(self.to_json())})

    def write(self, path: Path) -> None:
        """Write ``bundle.json`` into the bundle directory ``path``."""
        atomic_write_bytes(Path(path) / MANIFEST_FILE, json.dumps(self.to_json(), indent=2).encode())


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own ``manifest_sha256`` entry."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(path: Path) -> BundleManifest:
    """A bundle's validated ``bundle.json`` alone (format, required keys, checksum, every field), without
    its weights.

    :raises BundleError: naming what is wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle '{path}': no such directory")
    mpath = path / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"bundle '{path}': missing {MANIFEST_FILE}")
    try:
        data = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} lacks {', '.join(missing)}")
    if data["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"bundle '{path}': format version {data['format_version']!r} unsupported; "
            f"this rltransfer reads version {FORMAT_VERSION}"
        )
    if data.get("manifest_sha256") != manifest_checksum(data):
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} was edited after it was written (checksum mismatch)")
    try:
        return BundleManifest.model_validate(data)
    except ValidationError as err:
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} malformed at {first_problem(err)}") from None
