"""Finished work re-used across experiment directories under one ``output_dir``.

Two kinds of work do not depend on what makes one experiment differ from another of the same setup:

- a **pre-training** depends on its seed and the pre-training side of the config only
  (:func:`~rltransfer.store.keys.pretraining_hash`: not on the name, the targets, the grid, the transfer
  budget, head initialisation or evaluation schedule), and is deterministic: another experiment of the
  same pre-training (a renamed experiment, a strategy sweep's next value, a sweep of the transfer side)
  copies its bundle and TensorBoard log (:func:`find_pretraining`, :func:`copy_pretraining`) instead of
  training it again;
- a **run that loads nothing from its bundle** (``scratch``) depends on the target, the seed, the agent,
  the transfer budget and the evaluation, not on the pre-training: it records a *reuse key*
  (:func:`~rltransfer.store.keys.reuse_key`), and an experiment with another pre-training (a sweep over ``pretrain.timesteps``)
  copies a finished run with the same key (:func:`find_reusable`, :func:`copy_run`); on MiniGrid that
  is 30 runs, about 40 minutes on two cores.

What is copied names where it came from (``copied_from``). The keys are strict (a run's takes the
package versions in too), and hold no env's code: work is copied only from a directory whose envs did what
this experiment's do (:func:`same_envs`), so an edited env of one's own is not met with the old env's work. ``runner.reuse_other_experiments: false`` turns the copying off.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from rltransfer.atomic import write_json_atomic
from rltransfer.bundle import load_bundle, read_manifest
from rltransfer.errors import BundleError
from rltransfer.execution.job import RunJob
from rltransfer.records.env_behaviour import EnvBehaviour
from rltransfer.records.run_result import RESULT_FILE, CopiedFrom, FinishedRun, read_result
from rltransfer.store import layout
from rltransfer.store.migration import LAYOUT_VERSION, layout_version


def _elsewhere(output_root: Path, own_dir: Path, own_path: Path) -> Iterator[Path]:
    """``own_path``'s place (relative to the experiment directory ``own_dir``) in every other experiment
    directory under ``output_root``, in name order."""
    if not output_root.is_dir():
        return
    rel = own_path.relative_to(own_dir)
    own = own_dir.resolve()
    for exp in sorted(output_root.iterdir()):
        if exp.is_dir() and exp.resolve() != own:
            yield exp / rel


def same_envs(other_dir: Path, own_dir: Path) -> bool:
    """Whether experiment directory ``other_dir`` made its results with the envs ``own_dir``'s experiment
    meets (their ``envs.json``, :mod:`rltransfer.records.env_behaviour`, agree on the tasks both met): its
    work is copied only then. A directory without the record (one written before it was kept) is taken to."""
    own, other = EnvBehaviour.read(own_dir), EnvBehaviour.read(other_dir)
    return own is None or other is None or not own.differences(other)


def passed_over(output_root: Path, own_dir: Path) -> dict[str, list[str]]:
    """The other experiments under ``output_root`` that met the family of ``own_dir``'s experiment with envs
    that did otherwise (an env edited between them), by name, with what differs: none of their work is copied."""
    own = EnvBehaviour.read(own_dir)
    if own is None or not output_root.is_dir():
        return {}
    out = {}
    for exp in sorted(p for p in output_root.iterdir() if p.is_dir() and p.resolve() != own_dir.resolve()):
        other = EnvBehaviour.read(exp)
        changed = own.differences(other) if other is not None and other.family == own.family else []
        if changed:
            out[exp.name] = changed
    return out


def find_reusable(job: RunJob, output_root: Path, own_dir: Path) -> Path | None:
    """A finished run directory of another experiment under ``output_root`` with ``job``'s reuse key, made
    with the same envs."""
    if not job.reuse_key:
        return None
    for candidate in _elsewhere(output_root, own_dir, Path(job.out_dir)):
        r = read_result(candidate / RESULT_FILE)
        if isinstance(r, FinishedRun) and r.reuse_key == job.reuse_key and same_envs(candidate.parents[3], own_dir):
            return candidate
    return None


def copy_run(source: Path, job: RunJob) -> FinishedRun:
    """Copy the finished run directory ``source`` (model, TensorBoard log, lineage, result) to
    ``job.out_dir``; the result carries ``job``'s run hash and pre-training seed, is scored against
    ``job``'s threshold, and names its origin. Returns it."""
    out = Path(job.out_dir)
    r = read_result(source / RESULT_FILE)
    if not isinstance(r, FinishedRun):
        raise FileNotFoundError(f"no finished run's result in {source}")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(RESULT_FILE))
    if job.tb_dir:  # its TensorBoard log, from the other experiment's tree to this one's
        exp = source.parents[3]
        copy_tree(layout.tb_root(exp) / source.relative_to(exp / "runs"), Path(job.tb_dir))
    origin = r.copied_from or CopiedFrom(run_dir=str(source), run_hash=r.run_hash)
    data = {**r.to_json(), "run_hash": job.run_hash, "pretrain_seed": job.pretrain_seed}
    data.pop("bundle_sha256", None)  # the run loaded nothing from a bundle
    result = FinishedRun.model_validate({**data, "copied_from": origin.model_dump()})
    if r.threshold != job.threshold or r.random_return != job.random_return:
        result = result.rescored(job.threshold, job.random_return)
    result.write(out / RESULT_FILE)
    return result


COPIED_FILE = "copied_from.json"


def find_pretraining(output_root: Path, own_pretrain: Path, own_dir: Path, chash: str, phash: str) -> Path | None:
    """Another experiment's pre-training directory at ``own_pretrain``'s place (relative to ``own_dir``)
    whose bundle is intact and was trained with pre-training hash ``phash``
    (:func:`~rltransfer.store.keys.pretraining_hash`) or for experiment hash ``chash`` (in a directory of
    the current layout: an older one's bundles may record an earlier version's hashes), with the same envs."""

    depth = len(own_pretrain.relative_to(own_dir).parts)
    for candidate in _elsewhere(output_root, own_dir, own_pretrain):
        if not (candidate / "bundle" / "bundle.json").is_file():
            continue
        if layout_version(candidate.parents[depth - 1]) != LAYOUT_VERSION:
            continue
        if not same_envs(candidate.parents[depth - 1], own_dir):
            continue
        try:  # the manifest alone first; the weights' checksums only where the hash matches
            manifest = read_manifest(candidate / "bundle")
            if manifest.experiment_hash == chash or manifest.pretrain_hash == phash:
                load_bundle(candidate / "bundle")
                return candidate
        except BundleError:
            continue
    return None


def copy_tree(source: Path, dest: Path) -> None:
    """``source`` (a TensorBoard log, say) copied to ``dest``, replacing it; nothing where ``source`` is not."""
    if not source.is_dir():
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest)


def copy_pretraining(source: Path, dest: Path) -> None:
    """Copy a pre-training's ``bundle/`` and ``tb/`` (not the other seeds' directories below seed 0's) to
    ``dest`` and record where they came from in ``dest/copied_from.json`` (first: a copy broken off leaves a
    damaged bundle, which is trained again, and training removes the record)."""
    dest.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest / COPIED_FILE, {"copied_from": copied_from(source) or str(source)})
    for part in ("bundle", "tb"):
        if (dest / part).exists():
            shutil.rmtree(dest / part)
        if (source / part).is_dir():
            shutil.copytree(source / part, dest / part)


def copied_from(pretrain_dir: Path) -> str | None:
    """Where a pre-training directory's bundle was copied from, or ``None`` if it was trained here."""
    try:
        origin = json.loads((pretrain_dir / COPIED_FILE).read_text())["copied_from"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(origin)
