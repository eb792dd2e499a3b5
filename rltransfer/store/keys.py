"""The keys of finished work: what each artifact depends on, hashed in one place. An experiment's hash
(its directory holds only its results), a pre-training's (re-used by any experiment of the same
pre-training), a run's (re-used by a re-run of its experiment) and a reuse key for runs that load nothing
from a bundle (re-used by any experiment under the same ``output_dir``)."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from rltransfer.config import ExperimentConfig
from rltransfer.revision import package_versions


@dataclass(frozen=True)
class ExperimentKeys:
    """An experiment's keys, computed once (:func:`experiment_keys`) and passed down."""

    experiment: str
    """:func:`experiment_hash`: its directory holds only this experiment's results."""
    pretraining: str
    """:func:`pretraining_hash`: its bundles are any experiment's of the same pre-training."""


def experiment_keys(cfg: ExperimentConfig) -> ExperimentKeys:
    return ExperimentKeys(experiment_hash(cfg), pretraining_hash(cfg))


def experiment_hash(cfg: ExperimentConfig | Mapping[str, Any]) -> str:
    """What makes results comparable: everything that changes what a run computes.

    Left out: the name, where results go, how runs execute, and the size of the grid (which
    strategies, how many seeds, which target tasks): a run's result does not depend on the other runs,
    and a pre-training not on the targets, so ``--set transfer.seeds=20``, one more strategy or one more
    target re-uses every bundle and every finished run. (A target given by a parameter mapping with a
    ``name`` puts its parameters in its runs' hash, :func:`run_hash`.) And the thresholds
    (``evaluation.thresholds``): a threshold scores a run's returns, it does not change them, so a
    changed threshold re-scores every finished run (the report does) instead of re-running it. They
    are hashed as if none were set, so a config without thresholds keeps its hash. And the strategies'
    parameters (``transfer.strategy_params``): each changes only its own strategy's runs, so it is
    part of those runs' hash (:func:`run_hash`), not of the experiment's. And the pre-training gate
    (``pretrain.min_source_score``, ``pretrain.max_seeds``): it chooses among bundles, which it does
    not change, so every bundle is re-used; a run that starts from a bundle other than the one it
    would start from without a gate says so in its own hash.
    """
    data = comparable_config(cfg)
    data.pop("target_tasks")
    return digest(data, 16)


def pretraining_hash(cfg: ExperimentConfig | Mapping[str, Any]) -> str:
    """What one pre-training seed computes from: the family, sources and conditioning, the agent with the
    hyperparameters it pre-trains with (``agent.hyperparams`` under ``pretrain.hyperparams``), the
    pre-training's budget, environments and source evaluation (its episodes, and
    ``evaluation.deterministic``). Not the transfer side (budget, environments, head initialisation), the
    transfer evaluation's schedule or episodes, how many pre-training seeds the grid wants, nor a
    hyperparameter that ``pretrain.hyperparams`` overrides: an experiment that differs from another only
    there copies the other's bundles (:func:`~rltransfer.store.reuse.find_pretraining`) instead of training
    them again."""
    data = comparable_config(cfg)
    data.pop("target_tasks")
    data.pop("transfer")
    data["evaluation"] = {"deterministic": data["evaluation"]["deterministic"]}
    pre = data["pretrain"]
    pre.pop("seeds", None)
    data["agent"]["hyperparams"] = {**data["agent"]["hyperparams"], **pre.pop("hyperparams", {})}
    return digest({"pretraining": data}, 16)


def comparable_config(cfg: ExperimentConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as hashes see it: without what never changes a result (name, output_dir, runner, imports,
    declared families other than the experiment's, the grid's strategies and seeds, strategies' parameters,
    thresholds, the pre-training gate)."""
    data = copy.deepcopy(dict(cfg)) if isinstance(cfg, Mapping) else cfg.to_dict()
    for key in ("name", "output_dir", "runner", "imports"):
        data.pop(key, None)
    # Of the declared families, the one the experiment uses, by what it declares (none: no key, so a
    # config of a shipped family keeps the hash it had before families could be declared).
    used = [f for f in data.pop("families", None) or [] if f.get("name") == data.get("family")]
    if used:
        data["family_spec"] = used[0]
    for key in ("min_source_score", "max_seeds"):
        data["pretrain"].pop(key, None)
    data["transfer"] = {k: v for k, v in data["transfer"].items() if k not in ("strategies", "seeds")}
    data["transfer"]["strategy_params"] = {}
    data["evaluation"]["thresholds"] = {}
    return data


def hashed_differences(
    old: ExperimentConfig | Mapping[str, Any], new: ExperimentConfig | Mapping[str, Any]
) -> list[str]:
    """The keys, dotted, whose values differ between two configs as :func:`experiment_hash` sees them, each as
    ``"key: NEW here, OLD there"`` (``unset`` where one has no such key)."""

    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, Mapping) and data:
            return {k: v for key, value in data.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix[:-1]: data}

    a, b = (flat({k: v for k, v in comparable_config(c).items() if k != "target_tasks"}) for c in (old, new))
    unset = object()
    return [
        f"{key}: {'unset' if b.get(key, unset) is unset else json.dumps(b[key])} here, "
        f"{'unset' if a.get(key, unset) is unset else json.dumps(a[key])} there"
        for key in dict.fromkeys([*b, *a])
        if a.get(key, unset) != b.get(key, unset)
    ]


def run_hash(
    chash: str,
    config: Mapping[str, Any],
    strategy: str,
    seed: int = 0,
    pretrain_seed: int | None = None,
    target: str | None = None,
    engine: str = "sb3",
) -> str:
    """The config hash of one ``strategy`` run: the experiment's, and its own parameters when the
    config sets any (``transfer.strategy_params``). So ``--set transfer.strategy_params.kickstart.beta=3``
    re-runs the kickstart runs and re-uses every other one.

    Transfer seed ``seed`` starts from pre-training ``seed mod pretrain.seeds``; where the gate
    (``pretrain.min_source_score``) put another one in its place (``pretrain_seed``), the hash of a run
    that loads anything from it names that pre-training, so the run is not mistaken for the one before.

    With ``agent.normalize``, a run that loads no encoder (``scratch``) starts fresh observation
    statistics (earlier versions started them from the bundle's). Such a run's hash says so, so that
    a run directory written before re-runs it instead of re-using it; every other run keeps its hash.

    A ``target`` the config gives as a parameter mapping with its own ``name`` puts that mapping in the
    hash (the experiment's leaves the targets out): the same name with other parameters is another run.
    A target named by the family, or a mapping without a name (named after its parameters), needs nothing.
    A run of the batched engine (``engine`` ``batched``, :mod:`rltransfer.execution.batching`) says so: its
    random streams are not SB3's, so it is another run than the one SB3's own ``learn`` makes."""
    from rltransfer.strategies import configured_plan

    params, plan = configured_plan(config, strategy)
    key = dict(params or {})
    if config["agent"].get("normalize") and plan is not None and not plan.uses_bundle_obs_stats:
        key["obs_stats"] = "fresh"
    replaced = pretrain_seed is not None and pretrain_seed != seed % int(config["pretrain"]["seeds"])
    if replaced and (plan is None or plan.uses_bundle):
        key["pretrain_seed"] = pretrain_seed
    spec = _named_target(config, target) if target is not None else None
    if spec is not None:
        key["target"] = spec
    if engine != "sb3":
        key["engine"] = engine
    return f"{chash}-{digest(key, 8)}" if key else chash


def reuse_key(
    config: Mapping[str, Any], strategy: str, seed: int, target: Mapping[str, Any], engine: str = "sb3"
) -> str | None:
    """The key under which a run of ``strategy`` may be re-used by another experiment, or ``None``
    when the run loads anything from its bundle (its result then depends on the pre-training): the
    target, the seed, the agent, the transfer budget and the evaluation, and the package versions.

    :param target: ``{"name": ..., "params": {...}}`` as in :class:`~rltransfer.execution.job.RunJob`.
    """
    from rltransfer.strategies import configured_plan

    params, plan = configured_plan(config, strategy)
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
    if engine != "sb3":  # other random streams: another run (runs of SB3's own learn keep their key)
        data["run"]["engine"] = engine
    return digest(data, 24)


_OPTIONAL_PACKAGES = ("minigrid", "box2d", "box2d-py", "gymnasium-robotics")


@functools.cache
def _versions() -> dict[str, str]:
    out = package_versions()  # once per process: every job's key takes them in
    for pkg in _OPTIONAL_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _named_target(config: Mapping[str, Any], target: str) -> dict[str, Any] | None:
    for spec in config.get("target_tasks") or ():
        if isinstance(spec, Mapping) and spec.get("name") == target:
            return dict(spec)
    return None


def digest(data: Any, n: int) -> str:
    """The first ``n`` hex digits of the SHA-256 of ``data``'s canonical JSON."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
