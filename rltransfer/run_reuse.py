"""Runs that take nothing from a bundle (``scratch``) re-used across experiment directories.

A scratch run depends on the target, the seed, the agent, the transfer budget and the evaluation,
not on the pre-training: a sweep over ``pretrain.timesteps`` or ``pretrain.hyperparams`` would
otherwise train the same scratch baselines again in every directory (on MiniGrid 30 runs, about
40 minutes on two cores). Such a run records a *reuse key* (:func:`reuse_key`); a later experiment
under the same ``output_dir`` copies a finished run with the same key instead of running it, and
the copy's ``result.json`` names where it came from (``copied_from``).

The key is deliberately strict: the whole comparable config but the pre-training section and the
other strategies' parameters, the target's parameters, the seed, and the package versions. Turn
the copying off with ``runner.reuse_runs: false``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rltransfer.atomic import write_json_atomic
from rltransfer.config_hash import comparable_config, digest
from rltransfer.run_job import RESULT_FILE, RunJob, read_result

_OPTIONAL_PACKAGES = ("minigrid", "box2d", "box2d-py", "gymnasium-robotics")


def reuse_key(config: Mapping[str, Any], strategy: str, seed: int, target: Mapping[str, Any]) -> str | None:
    """The key under which a run of ``strategy`` may be re-used by another experiment, or ``None``
    when the run loads anything from its bundle (its result then depends on the pre-training).

    :param target: ``{"name": ..., "params": {...}}`` as in :class:`~rltransfer.run_job.RunJob`.
    """
    from rltransfer.strategies import plan_of

    params = (config["transfer"].get("strategy_params") or {}).get(strategy)
    plan = plan_of(strategy, params)
    if plan is None or plan.uses_bundle:
        return None
    data = comparable_config(config)
    data.pop("target_tasks", None)
    data.pop("pretrain")  # the pre-training does not reach a run that loads nothing
    # head_init and probe_episodes choose among loaded heads; a run loading nothing has none.
    for key in ("head_init", "probe_episodes"):
        data["transfer"].pop(key, None)
    data["transfer"]["strategy_params"] = {strategy: dict(params or {})}
    data["run"] = {"strategy": strategy, "seed": int(seed), "target": dict(target), "versions": _versions()}
    return digest(data, 24)


def _versions() -> dict[str, str]:
    from importlib import metadata

    from rltransfer.bundle import package_versions

    out = package_versions()
    for pkg in _OPTIONAL_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def find_reusable(job: RunJob, output_root: Path, own_dir: Path) -> Path | None:
    """A finished run directory of another experiment under ``output_root`` with ``job``'s reuse key."""
    if not job.reuse_key or not output_root.is_dir():
        return None
    rel = Path(job.out_dir).relative_to(own_dir)
    own = own_dir.resolve()
    for exp in sorted(output_root.iterdir()):
        if not exp.is_dir() or exp.resolve() == own:
            continue
        candidate = exp / rel
        r = read_result(candidate / RESULT_FILE)
        if r is not None and r.get("status") == "ok" and r.get("reuse_key") == job.reuse_key and "curve" in r:
            return candidate
    return None


def copy_run(source: Path, job: RunJob) -> dict[str, Any]:
    """Copy the run directory ``source`` (model, TensorBoard log, lineage, result) to ``job.out_dir``;
    the result carries ``job``'s config hash and pre-training seed and names its origin. Returns it."""
    out = Path(job.out_dir)
    r = read_result(source / RESULT_FILE)
    if r is None:
        raise FileNotFoundError(source / RESULT_FILE)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(RESULT_FILE))
    origin = r.get("copied_from") or {"run_dir": str(source), "config_hash": r.get("config_hash")}
    result = {
        **r,
        "config_hash": job.config_hash,
        "pretrain_seed": job.pretrain_seed,
        "threshold": job.threshold,
        "random_return": job.random_return,
        "copied_from": origin,
    }
    if r.get("threshold") != job.threshold or r.get("random_return") != job.random_return:
        from rltransfer.run_job import rescore

        result = rescore({**result, "random_return": job.random_return}, job.threshold)
    result.pop("bundle_sha256", None)  # the run loaded nothing from a bundle
    write_json_atomic(out / RESULT_FILE, result)
    return result
