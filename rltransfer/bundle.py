"""Bundles: pre-trained components in safetensors plus a JSON manifest; validated on load.

Layout of a bundle directory::

    components.safetensors   every component's tensors under stable names (encoder., trunk., heads.<task>.)
    bundle.json              the manifest: format version, family, tasks, spaces, conditioning,
                             architecture, observation statistics, steps, versions, the code revision
                             (rltransfer.revision), weights checksum
    model.zip                the SB3 model, for resuming pre-training only (pickle: trusted sources only)

Nothing is unpickled when a bundle is loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from stable_baselines3.common.policies import BasePolicy

from rltransfer.agent_factory import policy_kwargs
from rltransfer.agents import ALGORITHMS, bundle_component, component_state, policy_state, transferable
from rltransfer.errors import BundleError
from rltransfer.hardware import this_machine
from rltransfer.records.bundle_manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    Architecture,
    BundleManifest,
    SourceTask,
    manifest_checksum,
    read_manifest,
)
from rltransfer.revision import code_revision, package_versions
from rltransfer.spaces_json import space_from_json, space_to_json

MODEL_FILE = "model.zip"
__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "Bundle",
    "load_bundle",
    "manifest_checksum",
    "read_manifest",
    "save_bundle",
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_bundle(path: str | Path, policy: BasePolicy, manifest: dict[str, Any]) -> Path:
    """Write ``policy``'s components and ``manifest`` (plus checksum and versions) to ``path``.

    :param manifest: the :class:`~rltransfer.records.bundle_manifest.BundleManifest` fields of the pre-training
        (family, conditioning, source_tasks, architecture, obs_normalization, timesteps, ...); format
        version, spaces, versions, code revision, weights and checksum are filled in here.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = component_state(policy)
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".weights.", suffix=".tmp")
    os.close(fd)
    try:
        # One metadata key: safetensors writes a map's keys in a random order, and a bundle's
        # bytes (and so its checksum) must not depend on the process that wrote it.
        save_file(tensors, tmp, metadata={"format": f"rltransfer/{FORMAT_VERSION}"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path / WEIGHTS_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    full = BundleManifest.model_validate(
        {
            "format_version": FORMAT_VERSION,
            **manifest,
            "spaces": {
                "observation": space_to_json(transferable(policy).dict_space),
                "action": space_to_json(policy.action_space),
            },
            "versions": package_versions(),
            "code_revision": code_revision(),
            "machine": this_machine().model_dump(),
            "weights": {
                "file": WEIGHTS_FILE,
                "sha256": sha256_file(path / WEIGHTS_FILE),
                "tensors": {k: list(v.shape) for k, v in tensors.items()},
            },
        }
    ).sealed()
    full.write(path)
    return path


@dataclass
class Bundle:
    """A loaded, validated bundle: its manifest, tensors, and the rebuilt pre-trained policy."""

    path: Path
    manifest: BundleManifest
    tensors: dict[str, torch.Tensor]
    policy: BasePolicy

    @property
    def checksum(self) -> str:
        return self.manifest.weights.sha256

    @property
    def family(self) -> str:
        return self.manifest.family

    @property
    def algo(self) -> str:
        """The algorithm it was pre-trained with (``ppo``, ``dqn``, ``sac``)."""
        return self.manifest.algo

    @property
    def conditioning(self) -> str:
        return self.manifest.conditioning

    @property
    def source_tasks(self) -> list[SourceTask]:
        return self.manifest.source_tasks

    @property
    def task_names(self) -> list[str]:
        return self.manifest.task_names

    @property
    def architecture(self) -> Architecture:
        return self.manifest.architecture

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        """The rebuilt components: ``encoder``, ``trunk`` and ``heads`` (every task's, stacked; for
        SAC, a ModuleList of the actor's and the critic's)."""
        return {c: transferable(self.policy).component_module(c) for c in ("encoder", "trunk", "heads")}

    def component_names(self) -> list[str]:
        return list(dict.fromkeys(bundle_component(k) for k in self.tensors))

    def policy_kwargs(self, task_names: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
        """``policy_kwargs`` for :class:`~rltransfer.agents.MultiTaskActorCriticPolicy` with this
        bundle's architecture (``task_names``: the new agent's heads; default the bundle's)."""
        arch = self.architecture.for_tasks(task_names) if task_names else self.architecture
        return {**policy_kwargs(arch), **overrides}

    def encoder_kwargs(self) -> dict[str, Any]:
        """``policy_kwargs`` entries that put this bundle's encoder into any SB3 policy
        (``PPO("MultiInputPolicy", env, policy_kwargs=bundle.encoder_kwargs())``); copy the
        weights with ``model.policy.features_extractor.load_state_dict(bundle.components["encoder"].state_dict())``."""
        kwargs = policy_kwargs(self.architecture)
        return {k: kwargs[k] for k in ("features_extractor_class", "features_extractor_kwargs")}

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.path)!r}, family={self.family!r}, tasks={self.task_names}, "
            f"conditioning={self.conditioning!r}, sha256={self.checksum[:12]})"
        )


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate a bundle, and rebuild its policy with the stored weights.

    :raises BundleError: naming the problem: missing file, bad JSON, format version,
        checksum mismatch, or tensors whose names or shapes do not fit the architecture.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise BundleError(f"bundle: expected a bundle directory (a str or a Path), got {path!r}")
    path = Path(path)
    manifest = read_manifest(path)
    wpath = path / WEIGHTS_FILE
    if not wpath.is_file():
        raise BundleError(f"bundle '{path}': missing {WEIGHTS_FILE}")
    expected = manifest.weights.sha256
    actual = sha256_file(wpath)
    if actual != expected:
        raise BundleError(
            f"bundle '{path}': {WEIGHTS_FILE} checksum mismatch (manifest {str(expected)[:12]}..., "
            f"file {actual[:12]}...): the weights were modified or truncated"
        )
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as err:
        raise BundleError(f"bundle '{path}': {WEIGHTS_FILE} unreadable: {err}") from None
    try:
        obs_space = space_from_json(manifest.spaces["observation"])
        act_space = space_from_json(manifest.spaces["action"])
        kwargs = policy_kwargs(manifest.architecture)
    except (KeyError, TypeError) as err:
        raise BundleError(f"bundle '{path}': {MANIFEST_FILE} architecture or spaces malformed: {err}") from None
    algo = manifest.algo
    if algo not in ALGORITHMS:
        raise BundleError(f"bundle '{path}': algorithm '{algo}' unknown; this rltransfer reads {', '.join(ALGORITHMS)}")
    policy = ALGORITHMS[algo].policy_class(obs_space, act_space, lambda _: 0.0, **kwargs)
    load_state(policy, tensors, where=f"bundle '{path}'")
    policy.set_training_mode(False)
    return Bundle(path, manifest, tensors, policy)


def load_state(policy: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy bundle tensors into ``policy``: every name must exist and every shape match."""
    own = {k: v for k, v in component_state(policy).items()}
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise BundleError(
            f"{where}: weights do not fit the architecture; missing: {missing[:5] or 'none'}, "
            f"unexpected: {unexpected[:5] or 'none'}"
        )
    wrong = [
        f"component '{bundle_component(k)}' tensor '{k}' has shape {tuple(t.shape)}, "
        f"the architecture needs {tuple(own[k].shape)}"
        for k, t in sorted(tensors.items())
        if tuple(t.shape) != tuple(own[k].shape)
    ]
    if wrong:
        raise BundleError(
            f"{where}: " + "; ".join(wrong[:4]) + (f" (+{len(wrong) - 4} more)" if len(wrong) > 4 else "")
        )
    policy.load_state_dict(policy_state(policy, tensors), strict=False)
