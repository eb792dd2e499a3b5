"""An experiment's pre-training stage: the bundles its grid starts from.

Each pre-training seed the experiment needs is re-used where its run directory already holds a readable
bundle of this config, copied where another experiment under ``output_dir`` has the same pre-training
(``runner.reuse_other_experiments``), and trained otherwise (one after another, or side by side on the
grid's worker pool); then the source gate (:mod:`rltransfer.source_gate`) judges each, and a rejected seed's
place goes to the next seed not yet tried. :func:`kept_bundles` is the stage as
:func:`~rltransfer.experiment.run_experiment` runs it; ``rltransfer verify --pretrain`` trains a seed again
with :func:`pretrain_seed`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from rltransfer.baselines import thresholds_and_baselines
from rltransfer.bundle import load_bundle, read_manifest
from rltransfer.config import ExperimentConfig, load_config
from rltransfer.errors import BundleError, GateError, WorkerDied
from rltransfer.execution.backends import stop_workers
from rltransfer.interruption import Interruption
from rltransfer.pretraining import format_evaluation, pretrain
from rltransfer.records.experiment_manifest import ExperimentManifest
from rltransfer.source_gate import (
    Pretraining,
    passes,
    rejection_message,
    source_scores,
    steps_per_kept,
    unlearnt_warning,
)
from rltransfer.store import layout
from rltransfer.store.keys import ExperimentKeys
from rltransfer.store.reuse import copied_from, copy_pretraining, copy_tree, find_pretraining
from rltransfer.validation import Setup, resolve


def _has_bundle(cfg: ExperimentConfig, keys: ExperimentKeys, seed: int, echo: bool = False) -> bool:
    """Whether pre-training seed ``seed`` left a readable bundle of this config: trained for experiment hash
    ``chash``, or copied from an experiment of the same pre-training
    (:func:`~rltransfer.store.keys.pretraining_hash`). A damaged one is trained again, and said so on
    stderr."""

    path = layout.bundle_dir(cfg.run_dir, seed)
    if not path.is_dir():
        return False
    try:
        manifest = load_bundle(path).manifest
    except BundleError as err:
        if echo:
            print(f"pre-training seed {seed}: its bundle is damaged ({err}); it is trained again", file=sys.stderr)
        return False
    return manifest.experiment_hash == keys.experiment or manifest.pretrain_hash == keys.pretraining


def pretrain_seed(
    config: Setup | Mapping[str, Any], keys: ExperimentKeys, seed: int, progress: bool = False, echo: bool = False
):
    """Pre-train seed ``seed`` of an experiment into its place in its run directory: in this process from
    its :class:`Setup`, or in a worker from the config's dict (validated by the experiment: resolved only)."""

    setup = config if isinstance(config, Setup) else resolve(load_config(config))
    cfg = setup.config
    return pretrain(
        setup,
        seed=seed,
        progress=progress,
        echo=echo,
        extra_manifest={"experiment_hash": keys.experiment, "pretrain_hash": keys.pretraining},
        tb_dir=layout.pretrain_tb(cfg.run_dir, seed),
        in_experiment=True,
    ).evaluation


def ensure_bundles(
    setup: Setup,
    keys: ExperimentKeys,
    echo: bool,
    progress: bool,
    pool: ProcessPoolExecutor | None = None,
) -> list[Pretraining]:
    """Every pre-training seed the experiment tries, each reused where its bundle exists for this
    config and trained otherwise, and whether it is kept (:mod:`rltransfer.source_gate`).

    Seeds ``0..pretrain.seeds-1`` first, each in its own place; with a gate, a rejected one's place
    goes to the next seed not yet tried, up to ``pretrain.max_seeds`` seeds in all (the same seeds in
    the same places however many train at a time). With a worker pool and more than one seed to train,
    the seeds train side by side, one per worker. Each seeds itself and uses one thread, so the bundles
    are byte for byte the ones trained one by one.
    """

    cfg = setup.config
    limit = cfg.pretrain.seeds_to_try
    baselines = thresholds_and_baselines(setup.family, setup.sources, cfg.evaluation.thresholds)
    judged: list[Pretraining] = []
    open_slots = list(range(cfg.pretrain.seeds))
    while open_slots and len(judged) < limit:
        batch = list(range(len(judged), min(len(judged) + len(open_slots), limit)))
        todo = [p for p in batch if not _has_bundle(cfg, keys, p, echo)]
        if cfg.runner.reuse_other_experiments:
            todo = [p for p in todo if not _copy_pretraining(cfg, keys, p, echo)]
        _pretrain_seeds(setup, keys, todo, echo, progress, pool)
        tried = [(slot, _judge(cfg, p, slot, baselines, echo)) for slot, p in zip(open_slots, batch)]
        judged += [pre for _, pre in tried]
        open_slots = sorted([slot for slot, pre in tried if not pre.kept] + open_slots[len(batch) :])
    return judged


def _pretrain_seeds(
    setup: Setup,
    keys: ExperimentKeys,
    seeds: list[int],
    echo: bool,
    progress: bool,
    pool: ProcessPoolExecutor | None,
) -> None:
    """Train the pre-trainings ``seeds``: one after another, or side by side on the pool's workers."""

    cfg, n_sources = setup.config, len(setup.sources)
    if pool is None or len(seeds) < 2:
        for p in seeds:
            if echo:
                print(f"pre-training seed {p} on {n_sources} source tasks ({cfg.pretrain.timesteps:,} steps)...")
            pretrain_seed(setup, keys, p, progress=progress, echo=echo)
        return
    if echo:
        print(
            f"pre-training seeds {', '.join(map(str, seeds))} side by side on {n_sources} source tasks "
            f"({cfg.pretrain.timesteps:,} steps each)..."
        )
    futures = [(p, pool.submit(pretrain_seed, cfg.to_dict(), keys, p)) for p in seeds]
    for p, future in futures:
        try:
            evaluation = future.result()
        except BrokenProcessPool:
            raise WorkerDied(
                f"a worker process died while pre-training seeds {', '.join(map(str, seeds))} side by side (killed "
                "for memory, or a crash in native code: its own error, if any, is above); the pre-trainings that "
                f"finished are kept in '{cfg.run_dir}': re-run the same command to resume, or set runner.workers: 1 "
                "to pre-train in this process, one seed at a time"
            ) from None
        if echo:
            print(f"pre-training seed {p}:\n{format_evaluation(evaluation, setup)}")


def _judge(
    cfg: ExperimentConfig, seed: int, slot: int, baselines: Mapping[str, Mapping[str, float]], echo: bool
) -> Pretraining:
    """Pre-training ``seed``, tried for place ``slot``, as the gate judges its source scores."""

    manifest = read_manifest(layout.bundle_dir(cfg.run_dir, seed))  # checked whole by _has_bundle or just written
    scores = source_scores(manifest.evaluation or {}, baselines)
    gate = cfg.pretrain.min_source_score
    kept = passes(scores, gate)
    warning = unlearnt_warning(seed, scores)
    if echo and warning and kept:  # a rejected one is reported below
        print(warning, file=sys.stderr)
    origin = copied_from(layout.pretrain_dir(cfg.run_dir, seed))
    judged = Pretraining(seed, manifest.timesteps, scores, slot if kept else None, origin, manifest.code_revision)
    if echo and not kept:
        name, score = judged.weakest
        print(f"pre-training seed {seed} rejected (pretrain.min_source_score={gate:g}): {name} scored {score:.2f}")
    return judged


def _pretrain_interruptibly(
    setup: Setup, keys: ExperimentKeys, echo: bool, progress: bool, pool: ProcessPoolExecutor | None,
    interruption: Interruption,
) -> list[Pretraining]:  # fmt: skip
    """:func:`ensure_bundles`, stopped by Ctrl-C or SIGTERM as the grid is (:mod:`rltransfer.interruption`):
    the pre-trainings in progress (the pool's workers too) end, and the finished bundles are kept."""

    cfg = setup.config

    def stop() -> None:
        if pool is not None:
            stop_workers(pool)

    def said(how: str) -> str:
        return (
            f"interrupted{how} while pre-training: the finished pre-trainings are kept in '{cfg.run_dir}'; re-run "
            "the same command to resume (a pre-training in progress starts again)"
        )

    with interruption.during(stop, said):
        return ensure_bundles(setup, keys, echo, progress, pool)


def _copy_pretraining(cfg: ExperimentConfig, keys: ExperimentKeys, seed: int, echo: bool) -> bool:
    """Copy pre-training ``seed`` from another experiment of the same pre-training under ``output_dir`` (its
    :func:`~rltransfer.store.keys.pretraining_hash`, or the same experiment hash), if one has it."""

    dest = layout.pretrain_dir(cfg.run_dir, seed)
    phash = keys.pretraining
    source = find_pretraining(cfg.run_dir.parent, dest, cfg.run_dir, keys.experiment, phash)
    if source is None:
        return False
    copy_pretraining(source, dest)
    depth = len(dest.relative_to(cfg.run_dir).parts)  # the other experiment's pre-training is at the same place
    copy_tree(layout.pretrain_tb(source.parents[depth - 1], seed), layout.pretrain_tb(cfg.run_dir, seed))
    if echo:
        print(f"pre-training seed {seed}: copied from '{source}' (the same pre-training, hash {phash})")
    return True


def bundles_of(cfg: ExperimentConfig, pretrainings: Sequence[Pretraining]) -> list[tuple[int, Path]]:
    """The kept pre-trainings' seeds and bundles by place: transfer seed i starts from the (i mod n)-th."""

    kept = sorted((p for p in pretrainings if p.kept), key=lambda p: p.slot if p.slot is not None else -1)
    return [(p.seed, layout.bundle_dir(cfg.run_dir, p.seed)) for p in kept]


def kept_bundles(
    setup: Setup,
    keys: ExperimentKeys,
    echo: bool,
    progress: bool,
    pool: ProcessPoolExecutor | None,
    manifest: ExperimentManifest,
    interruption: Interruption,
) -> list[tuple[int, Path]]:
    """The pre-trainings (each trained, re-used or copied, and judged by the gate), recorded in the
    manifest; the kept ones' seeds and bundles by place. Raises :class:`GateError` where too few pass."""
    cfg = setup.config
    try:
        pretrainings = _pretrain_interruptibly(setup, keys, echo, progress, pool, interruption)
    except WorkerDied:
        manifest.end("a pre-training's worker died")
        manifest.write(cfg.run_dir)
        raise
    manifest.pretrainings = pretrainings
    manifest.pretrain_steps = steps_per_kept(pretrainings)
    bundles = bundles_of(cfg, pretrainings)
    if len(bundles) < cfg.pretrain.seeds:
        manifest.end("pre-trainings rejected")
        manifest.write(cfg.run_dir)
        gate = cfg.pretrain.min_source_score or 0.0
        raise GateError(rejection_message(pretrainings, cfg.pretrain.seeds, gate, cfg.pretrain.seeds_to_try))
    return bundles
