"""Config hashes: which finished results a config may re-use (an experiment's, and each run's)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from rltransfer.config import ExperimentConfig


def experiment_hash(cfg: ExperimentConfig) -> str:
    """What makes results comparable: everything that changes what a run computes.

    Left out: the name, where results go, how runs execute, and the size of the grid (which
    strategies, how many seeds): a run's result does not depend on the other runs, so
    ``--set transfer.seeds=20`` or one more strategy re-uses every finished run. And the thresholds
    (``evaluation.thresholds``): a threshold scores a run's returns, it does not change them, so a
    changed threshold re-scores every finished run (the report does) instead of re-running it. They
    are hashed as if none were set, so a config without thresholds keeps its hash. And the strategies'
    parameters (``transfer.strategy_params``): each changes only its own strategy's runs, so it is
    part of those runs' hash (:func:`run_hash`), not of the experiment's. And the pre-training gate
    (``pretrain.min_source_score``, ``pretrain.max_seeds``): it chooses among bundles, which it does
    not change, so every bundle is re-used; a run that starts from a bundle other than the one it
    would start from without a gate says so in its own hash.
    """
    data = cfg.to_dict()
    for key in ("name", "output_dir", "runner"):
        data.pop(key)
    for key in ("min_source_score", "max_seeds"):
        data["pretrain"].pop(key)
    data["transfer"] = {k: v for k, v in data["transfer"].items() if k not in ("strategies", "seeds")}
    data["transfer"]["strategy_params"] = {}
    data["evaluation"]["thresholds"] = {}
    return _digest(data, 16)


def run_hash(
    chash: str, config: Mapping[str, Any], strategy: str, seed: int = 0, pretrain_seed: int | None = None
) -> str:
    """The config hash of one ``strategy`` run: the experiment's, and its own parameters when the
    config sets any (``transfer.strategy_params``). So ``--set transfer.strategy_params.kickstart.beta=3``
    re-runs the kickstart runs and re-uses every other one.

    Transfer seed ``seed`` starts from pre-training ``seed mod pretrain.seeds``; where the gate
    (``pretrain.min_source_score``) put another one in its place (``pretrain_seed``), the hash of a run
    that loads anything from it names that pre-training, so the run is not mistaken for the one before.

    With ``agent.normalize``, a run that loads no encoder (``scratch``) starts fresh observation
    statistics (earlier versions started them from the bundle's). Such a run's hash says so, so that
    a run directory written before re-runs it instead of re-using it; every other run keeps its hash."""
    from rltransfer.strategies import plan_of

    params = (config["transfer"].get("strategy_params") or {}).get(strategy)
    key = dict(params or {})
    plan = plan_of(strategy, params)
    if config["agent"].get("normalize") and plan is not None and not plan.uses_bundle_obs_stats:
        key["obs_stats"] = "fresh"
    replaced = pretrain_seed is not None and pretrain_seed != seed % int(config["pretrain"]["seeds"])
    if replaced and (plan is None or plan.uses_bundle):
        key["pretrain_seed"] = pretrain_seed
    return f"{chash}-{_digest(key, 8)}" if key else chash


def _digest(data: Any, n: int) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
