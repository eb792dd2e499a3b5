"""``rltransfer verify``: re-run published runs at the current code and compare them with the publication.

A publication (:mod:`rltransfer.reporting.publication`) holds every run's evaluation curve. Training is
deterministic for a seed, so on the same library versions the current code must reproduce each curve
exactly: each run is executed again as the grid ran it, from the bundle the publication ships (or, with
``pretrain`` or where none ships, from its pre-training trained again from the publication's config,
whose weights' checksum is compared with the one the run recorded), and every evaluation's return is
compared. A figure that moved says so, with the first evaluation that differs.

Exact equality holds on the same kind of CPU only (:mod:`rltransfer.records.machine`): a run that differs
and was made on another (its result's ``machine``, or for results that predate it, the publication
manifest's) is told apart from one that moved on this kind of machine, which only a change of code or
libraries explains. Where the publication keeps a re-run of that run made on this kind of CPU (``--record``
on an earlier check), the run is compared with that instead, exactly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from rltransfer.bundle import read_manifest
from rltransfer.config import load_config
from rltransfer.errors import UserInputError
from rltransfer.execution.backends import run_local
from rltransfer.execution.batching import batches
from rltransfer.execution.job import SB3, RunJob
from rltransfer.hardware import this_machine
from rltransfer.pretraining_stage import pretrain_seed
from rltransfer.records.experiment_manifest import ExperimentManifest
from rltransfer.records.machine import Machine
from rltransfer.records.run_result import RESULT_FILE, FailedRun, FinishedRun, read_result
from rltransfer.reporting.publication import (
    RUNS_FILE,
    is_publication,
    read_reproductions,
    read_runs,
    record_reproductions,
    shipped_bundles,
)
from rltransfer.revision import package_versions
from rltransfer.store import layout
from rltransfer.store.keys import ExperimentKeys, experiment_keys, run_hash
from rltransfer.store.layout import bundle_dir
from rltransfer.strategies import configured_plan
from rltransfer.validation import Setup, validate

Reproductions = dict[tuple[str, str | None], FinishedRun]


def _uses_bundle(job: RunJob) -> bool:
    """Whether ``job``'s run takes anything from its bundle (``scratch`` does not: its bits do not depend on
    which pre-training its experiment made, though its result names the bundle it was built beside)."""
    _, plan = configured_plan(job.config, job.strategy)
    return plan is None or plan.uses_bundle


def _reproduction(reproduced: Reproductions, key: str, bundle_sha256: str | None) -> FinishedRun | None:
    """The recorded re-run of run ``key`` from the bundle ``bundle_sha256``; ``None``: of a run that loads
    nothing, from whichever bundle it was recorded beside."""
    if bundle_sha256 is not None:
        return reproduced.get((key, bundle_sha256))
    return next((r for (k, _), r in sorted(reproduced.items(), key=lambda kv: kv[0][1] or "") if k == key), None)


@dataclass(frozen=True)
class RunCheck:
    """One published run, run again."""

    key: str
    same: bool
    difference: str
    """Empty where the run reproduced; else what differs first."""
    made_on: Machine | None = None
    """The machine the published run was made on, or, where it loads other weights now, its pre-training
    was, where that differs in kind from this one (exact equality is then not expected); None where it is of
    this kind or not recorded."""


def elsewhere(checks: Sequence[RunCheck]) -> bool:
    """Whether every run that differs was made on another kind of machine (and one at least differs): the
    differences say nothing about the code. ``rltransfer verify`` exits 3 then, 1 where a run differs on
    this kind of machine (or one that was not recorded)."""
    differing = [c for c in checks if not c.same]
    return bool(differing) and all(c.made_on is not None for c in differing)


def select(
    results: Sequence[FinishedRun | FailedRun], runs: int | None, targets: Sequence[str] | None, seed: int = 0
) -> list[FinishedRun]:
    """The finished runs to check: of ``targets`` (all where None), ``runs`` of them drawn with ``seed``
    (all where None), in the publication's order."""
    ok = [r for r in results if isinstance(r, FinishedRun) and (not targets or r.target in targets)]
    if targets:
        unknown = sorted(set(targets) - {r.target for r in results})
        if unknown:
            known = ", ".join(sorted({r.target for r in results}))
            raise UserInputError(f"--targets: {', '.join(unknown)} not in the publication (its targets: {known})")
    if runs is None or runs >= len(ok):
        return ok
    picked = np.random.default_rng(seed).choice(len(ok), size=runs, replace=False)
    return [ok[i] for i in sorted(picked)]


def first_difference(published: FinishedRun, now: FinishedRun | FailedRun | None) -> str:
    """Empty where the two results' curves are identical; else the first evaluation that differs."""
    if now is None:
        return "the run failed now: no result written"
    if isinstance(now, FailedRun):
        return f"the run failed now: {now.error}"
    a, b = published.curve, now.curve
    for k, (ta, tb) in enumerate(zip(a.step, b.step)):
        if ta != tb:
            return f"evaluation {k} at step {ta} published, at step {tb} now"
        if a.returns[k] != b.returns[k]:
            return f"evaluation {k} (step {ta}): return {a.returns[k]!r} published, {b.returns[k]!r} now"
    if len(a.step) != len(b.step):
        return f"{len(a.step)} evaluations published, {len(b.step)} now"
    return ""


def version_differences(published: dict[str, str]) -> list[str]:
    """The libraries whose versions differ between the publication and this installation."""
    here = package_versions()
    return [
        f"{name}: {published.get(name, '?')} published, {here.get(name, '?')} here"
        for name in sorted(set(published) | set(here))
        if published.get(name) != here.get(name)
    ]


def verify(
    published: str | Path,
    runs: int | None = None,
    targets: Sequence[str] | None = None,
    sample_seed: int = 0,
    workers: int = 1,
    work_dir: str | Path | None = None,
    echo: bool = True,
    pretrain: bool = False,
    record: bool = False,
) -> list[RunCheck]:
    """Run ``published``'s runs again (``runs`` of them, drawn with ``sample_seed``; of ``targets``) at the
    current code and compare each curve with the published one.

    :param pretrain: train the runs' pre-trainings again too (and compare their weights with the ones the
        runs loaded); without it, the runs start from the bundles the publication ships, and pre-train
        only where it ships none.
    :param work_dir: where the pre-trainings and runs are written (a temporary directory by default).
    :param record: keep the re-runs of runs made on another kind of CPU in the publication
        (:func:`~rltransfer.reporting.publication.record_reproductions`): later checks on this kind of CPU
        compare with them exactly. A run whose re-run on this kind is recorded already keeps it: that is the
        reference, and a re-run that differs from it is the code's change (exit 1), not a new reference.
    """
    published = Path(published)
    if not is_publication(published):
        raise UserInputError(
            f"'{published}' is not a publication: no {RUNS_FILE} (make one with 'rltransfer publish RUN_DIR DEST')"
        )
    config = yaml.safe_load((published / "config.yaml").read_text())
    where = Path(work_dir) / str(config.get("name", "")) if work_dir is not None else None
    if where is not None and where.is_dir() and any(where.iterdir()):
        raise UserInputError(
            f"'{where}' holds files already (an experiment of the same name?): verify writes its pre-trainings and "
            f"runs there and would replace them; give a directory without '{where.name}' in it (--out)"
        )
    chosen = select(read_runs(published), runs, targets, sample_seed)
    with tempfile.TemporaryDirectory(prefix="rltransfer-verify-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        setup = validate(load_config({**config, "output_dir": str(base)}))  # once; runs and pre-trainings resolve
        cfg = setup.config
        keys = experiment_keys(cfg)
        chash = keys.experiment
        seeds = sorted({r.pretrain_seed for r in chosen})
        bundles = _shipped(published, chosen, seeds, echo) if not pretrain else None
        if bundles is None:
            bundles = _pretrain(setup, keys, seeds, chosen, echo)
        jobs = [_job(cfg, chash, r, bundles) for r in chosen]
        manifest = ExperimentManifest.read(published)
        reproduced = read_reproductions(published, this_machine())
        trained_on = {p: read_manifest(b).machine for p, b in shipped_bundles(published).items()}
        checks, reruns = _run(jobs, chosen, bundles, workers, echo, manifest.machine, reproduced, trained_on)
    if record:
        _record(published, reruns, echo)
    if echo:
        _summary(checks, manifest)
    return checks


def _record(published: Path, reruns: Sequence[FinishedRun], echo: bool) -> None:
    """``--record``: keep the re-runs of runs made on another kind of CPU in the publication."""
    if not reruns:
        if echo:
            print(
                "nothing to record: the runs checked were made on this kind of CPU, or their re-runs on it are "
                "recorded already (a recorded re-run stays the reference: a check that differs from it is the "
                "code's, and does not replace it)"
            )
        return
    path = record_reproductions(published, this_machine(), reruns)
    if echo:
        print(f"recorded {len(reruns)} re-run(s) made on this kind of CPU ({this_machine()}) in {path}")


def _summary(checks: Sequence[RunCheck], manifest: ExperimentManifest) -> None:
    """How many runs reproduced, and what may explain the others: versions, machines."""
    same = sum(c.same for c in checks)
    print(f"{same} of {len(checks)} run(s) reproduced exactly")
    if same == len(checks):
        return
    for line in version_differences(manifest.versions):
        print(f"  versions differ: {line}")
    others = sorted({str(c.made_on) for c in checks if c.made_on is not None})
    if others:
        n, d = sum(c.made_on is not None for c in checks), len(checks) - same
        print(
            f"  {n} of {d} differing run(s) made on another kind of CPU ({'; '.join(others)}; this one: "
            f"{this_machine()}): torch and MKL compute there with other vectorised kernels, whose last bits "
            "differ, so their curves are not expected to be the same here ('--record' keeps this machine's "
            "re-runs, to compare with exactly from now on)"
        )


def recorded_sha(chosen: Sequence[FinishedRun], seed: int) -> str | None:
    """The weights' checksum the chosen runs of pre-training ``seed`` recorded."""
    return next((r.bundle_sha256 for r in chosen if r.bundle_sha256 and r.pretrain_seed == seed), None)


def _shipped(published: Path, chosen, seeds: Sequence[int], echo: bool) -> dict[int, tuple[Path, str]] | None:
    """The publication's bundles of pre-trainings ``seeds``: seed -> (bundle, its weights' sha256); None
    where one of them does not ship."""

    shipped = shipped_bundles(published)
    if not set(seeds) <= set(shipped):
        if echo and seeds:
            print("no bundles ship with this publication: its pre-trainings are trained again")
        return None
    out = {p: (shipped[p], read_manifest(shipped[p]).weights.sha256) for p in seeds}
    if echo and seeds:
        print(
            f"from the shipped bundles of pre-training seed(s) {', '.join(map(str, seeds))} (--pretrain trains them again)"
        )
    return out


def _pretrain(
    setup: Setup, keys: ExperimentKeys, seeds: Sequence[int], chosen, echo: bool
) -> dict[int, tuple[Path, str]]:
    """Train the pre-trainings ``seeds`` of the publication's config again: seed -> (bundle, its weights'
    sha256)."""

    cfg, out = setup.config, {}
    for p in seeds:
        if echo:
            print(f"pre-training seed {p} again ({cfg.pretrain.timesteps:,} steps)...")
        pretrain_seed(setup, keys, p)
        path = bundle_dir(cfg.run_dir, p)
        sha, recorded = read_manifest(path).weights.sha256, recorded_sha(chosen, p)
        out[p] = (path, sha)
        if echo and recorded:
            same = "the same weights" if sha == recorded else f"DIFFERENT weights: sha256 {sha[:12]} now"
            print(f"  pre-training seed {p}: {same} (published {recorded[:12]})")
    return out


def _job(cfg, chash: str, result: FinishedRun, bundles: dict[int, tuple[Path, str]]) -> RunJob:
    config, p = cfg.to_dict(), result.pretrain_seed
    engine = result.engine or SB3  # a run of the batched engine re-runs as a batch of one: the same run
    return RunJob(
        config=config,
        run_hash=run_hash(chash, config, result.strategy, result.seed, p, result.target, engine),
        engine=engine,
        bundle=str(bundles[p][0]),
        target={"name": result.target, "params": dict(result.target_params)},
        split=result.split,
        strategy=result.strategy,
        seed=result.seed,
        pretrain_seed=p,
        threshold=result.threshold,
        random_return=result.random_return,
        out_dir=str(layout.run_out(cfg.run_dir, result.target, result.strategy, result.seed)),
    )


def _made_elsewhere(
    made_on: Machine | None, pretrained_on: Machine | None, here: Machine
) -> tuple[Machine | None, str]:
    """The other kind of CPU that explains a run's other bits, not a failure, and how: the run's own
    (``made_on``), or, where the run loads other weights now, its pre-training's (``pretrained_on``: a run made
    here from a bundle trained elsewhere, checked with ``--pretrain``); ``(None, "")`` where neither."""
    for machine, how in ((made_on, "made"), (pretrained_on, "its pre-training made")):
        if machine is not None and not machine.same_kind(here):
            return machine, how
    return None, ""


def _run(
    jobs,
    chosen,
    bundles,
    workers: int,
    echo: bool,
    machine: Machine | None,
    reproduced: Reproductions,
    trained_on: dict[int, Machine | None],
) -> tuple[list[RunCheck], list[FinishedRun]]:
    """Run ``jobs`` (of the published runs ``chosen``) and compare each with its reference: the published
    run, or where that was made on another kind of CPU, its re-run on this kind kept in ``reproduced``
    (:func:`~rltransfer.reporting.publication.read_reproductions`) if there is one. ``machine``: the
    publication's, for runs that do not record their own; ``trained_on``: the machine each pre-training the
    publication ships was trained on. Returns the checks and the re-runs of runs made (or pre-trained) on
    another kind of CPU that have no re-run on this kind recorded yet (what ``--record`` keeps)."""

    by_key = {r.key: r for r in chosen}
    here = this_machine()
    checks, elsewhere_runs = [], []
    # A batched run is the same in any batch: the batched runs of a cell run again as one batch.
    for job, _ in run_local(batches(jobs, workers), workers):
        published = by_key[job.key]
        now = read_result(Path(job.out_dir) / RESULT_FILE)
        loads = _uses_bundle(job)
        sha, was = bundles[job.pretrain_seed][1], published.bundle_sha256
        other_weights = loads and was is not None and was != sha  # its pre-training, trained again, differs
        pretrained_on = trained_on.get(job.pretrain_seed) if other_weights else None
        other, by = _made_elsewhere(published.machine or machine, pretrained_on, here)
        if not isinstance(now, FinishedRun):
            other = None
        reference = None
        if isinstance(now, FinishedRun) and other:
            reference = _reproduction(reproduced, job.key, now.bundle_sha256 if loads else None)
        if other is not None and isinstance(now, FinishedRun) and reference is None:
            elsewhere_runs.append(now)  # a recorded re-run stays the reference: --record never replaces it
        if reference is not None:  # compared with this kind of CPU's own bits: a difference is the code's
            difference = first_difference(reference, now)
            note = f" (re-run on this kind of CPU at {reference.code_revision or 'an unrecorded revision'})"
            checks.append(RunCheck(job.key, not difference, difference + note if difference else ""))
            if echo:
                print(
                    f"{'same   ' if not difference else 'DIFFERS'} {job.key}{': ' + difference if difference else ''}{note}"
                )
            continue
        difference = first_difference(published, now)
        if difference and other_weights:
            difference += f" (its pre-training differs too: bundle sha256 {sha[:12]} now, {was[:12]} published)"
        if difference and other is not None:
            difference += f" ({by} on {other})"
        checks.append(RunCheck(job.key, not difference, difference, other if difference else None))
        if echo:
            print(f"{'same   ' if not difference else 'DIFFERS'} {job.key}" + (f": {difference}" if difference else ""))
    order = {r.key: i for i, r in enumerate(chosen)}
    return sorted(checks, key=lambda c: order[c.key]), elsewhere_runs
