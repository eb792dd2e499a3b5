"""A publication: an experiment's report with the per-run data it was computed from.

A publication (made by ``rltransfer publish RUN_DIR DEST``, :mod:`rltransfer.reporting.publishing`) holds the
resolved config, the manifest, every run's ``result.json`` (one JSON object a line, gzip-compressed, in
``runs.jsonl.gz``) and the report rendered from them (report.md, summary.json, summary.csv, the pictures).
``rltransfer report DEST`` re-renders the report from that file alone, byte for byte, and anyone can
recompute any figure from it with their own tools.

Where they are small (:data:`MAX_BUNDLE_BYTES` together), the bundles the runs transferred from ship
too, in ``bundles/pretrain-seed-P/`` (weights and manifest; not the pickled model, which only resumes a
pre-training), so that ``rltransfer verify`` re-runs a run without training its pre-training again.

``rltransfer restore PUBLISHED`` goes the other way (:func:`restore`): an experiment directory with the
publication's config, manifest, results and shipped bundles, which ``rltransfer experiment`` then extends
(more strategies, seeds or targets: the published runs and pre-trainings are re-used, only the new runs
train), and ``rltransfer publish`` publishes whole again.

Runs are exact on one kind of CPU (:mod:`rltransfer.records.machine`). ``rltransfer verify --record`` on
another kind keeps that machine's re-runs in ``reproductions/<kind>.jsonl.gz`` (the same format as the
runs file), and later checks on that kind compare with them exactly: a publication is then checked to the
last bit on every kind of CPU it was reproduced on. Publishing again keeps the re-runs of the runs it publishes
unchanged (:func:`carry_reproductions`: an extended experiment keeps its reproductions of the runs it re-used)
and drops the others, over the publication itself or elsewhere: a restored experiment keeps its
publication's re-runs in ``restored-from/`` (:data:`rltransfer.store.layout.RESTORED_DIR`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from rltransfer.errors import UserInputError
from rltransfer.records.bundle_manifest import MANIFEST_FILE, WEIGHTS_FILE, read_manifest
from rltransfer.records.env_behaviour import ENVS_FILE
from rltransfer.records.experiment_manifest import MANIFEST_FILE as EXPERIMENT_MANIFEST
from rltransfer.records.experiment_manifest import ExperimentManifest
from rltransfer.records.machine import Machine
from rltransfer.records.run_result import (
    RESULT_FILE,
    RUNS_FILE,
    FailedRun,
    FinishedRun,
    parse_result,
    read_json_lines,
    write_json_lines,
)
from rltransfer.store import layout
from rltransfer.store.migration import check_layout

RECORDS = ("config.yaml", EXPERIMENT_MANIFEST)
CARRIED = (ENVS_FILE,)
"""What a publication carries of its experiment directory where it is there (one written before it was kept
has none): what the envs did (:mod:`rltransfer.records.env_behaviour`), so that an experiment extending a
restored publication refuses an env changed since."""
REPORT_PATTERNS = ("report.md", "summary.json", "summary.csv", "curves_*.png", "ttt_*.png")
BUNDLES_DIR = "bundles"
BUNDLE_FILES = (WEIGHTS_FILE, MANIFEST_FILE)
"""What of a bundle ships: its weights and manifest (``model.zip`` resumes a pre-training; nothing else
reads it, and it is pickle)."""
REPRODUCTIONS_DIR = "reproductions"
"""Where a publication keeps re-runs made on other kinds of CPU (``rltransfer verify --record``)."""
MAX_BUNDLE_BYTES = 5 * 2**20
"""Bundles ship when together at most this large (CartPole's three: 141 KB in all)."""


def is_publication(path: Path) -> bool:
    """Whether ``path`` is a published directory (its runs in :data:`RUNS_FILE`, no ``runs/``)."""
    return (path / RUNS_FILE).is_file() and not (path / "runs").is_dir()


def result_paths(run_dir: Path) -> Iterator[Path]:
    """Every run's result file of an experiment directory, in a fixed order."""
    return iter(sorted((run_dir / "runs").glob(f"*/*/seed-*/{RESULT_FILE}")))


def write_runs(results: Sequence[FinishedRun | FailedRun], path: Path) -> None:
    """``results`` as one JSON object a line, gzip-compressed with no timestamp (the same results give
    the same bytes)."""
    write_json_lines((r.to_json() for r in results), path)


def read_runs(path: Path) -> list[FinishedRun | FailedRun]:
    """The results of a publication's :data:`RUNS_FILE` (refused, naming the command that migrates it, where
    the publication's layout is older than this rltransfer's)."""
    check_layout(path)
    try:
        return [parse_result(obj) for obj in read_json_lines(path / RUNS_FILE)]
    except (OSError, ValueError) as err:
        raise UserInputError(f"'{path / RUNS_FILE}' is not a readable runs file: {err}") from None


def reproductions_file(dest: Path, machine: Machine) -> Path:
    """Where a publication keeps the re-runs made on ``machine``'s kind of CPU."""
    return Path(dest) / REPRODUCTIONS_DIR / f"{machine.kind}.jsonl.gz"


def read_reproductions(dest: Path, machine: Machine) -> dict[tuple[str, str | None], FinishedRun]:
    """The publication's re-runs made on ``machine``'s kind of CPU, by run key and the weights they loaded
    (``None``: none, as ``scratch``): a run re-run from another bundle is another run."""
    path = reproductions_file(dest, machine)
    return _read_reproductions_file(path) if path.is_file() else {}


def _read_reproductions_file(path: Path) -> dict[tuple[str, str | None], FinishedRun]:
    try:
        runs = [parse_result(obj) for obj in read_json_lines(path)]
    except (OSError, ValueError) as err:
        raise UserInputError(f"'{path}' is not a readable runs file: {err}") from None
    return {(r.key, r.bundle_sha256): r for r in runs if isinstance(r, FinishedRun)}


def _write_reproductions(path: Path, runs: dict[tuple[str, str | None], FinishedRun]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_runs([runs[k] for k in sorted(runs, key=lambda k: (k[0], k[1] or ""))], path)


def record_reproductions(dest: Path, machine: Machine, results: Sequence[FinishedRun]) -> Path:
    """Keep ``results`` (re-runs made on ``machine``) in the publication, replacing earlier re-runs of the same
    runs from the same weights; the file written."""
    kept = read_reproductions(dest, machine)
    kept.update({(r.key, r.bundle_sha256): r for r in results})
    path = reproductions_file(dest, machine)
    _write_reproductions(path, kept)
    return path


def same_run(a: FinishedRun | FailedRun, b: FinishedRun | FailedRun) -> bool:
    """Whether two results record the same run: the same run hash, engine and loaded weights, and the same
    evaluations (steps and returns) to the last bit."""
    return (
        isinstance(a, FinishedRun)
        and isinstance(b, FinishedRun)
        and (a.key, a.run_hash, a.engine, a.bundle_sha256) == (b.key, b.run_hash, b.engine, b.bundle_sha256)
        and (a.curve.step, a.curve.returns) == (b.curve.step, b.curve.returns)
    )


def carry_reproductions(earlier: Sequence[Path], results: Sequence[FinishedRun | FailedRun], into: Path) -> None:
    """Write into ``into`` (a publication being made) the re-runs that the earlier publications ``earlier``
    keep (``reproductions/``; the publication published over, the one the experiment was restored from) of
    runs that ``results`` publish unchanged (:func:`same_run`: the re-run of a run re-used by an extended
    experiment still reproduces it). The re-runs of runs that changed, or are no longer published, are
    dropped."""
    now = {r.key: r for r in results}
    carried: dict[str, dict[tuple[str, str | None], FinishedRun]] = {}
    for source in map(Path, earlier):
        found = sorted(source.glob(f"{REPRODUCTIONS_DIR}/*.jsonl.gz"))
        if not found or not is_publication(source):
            continue
        before = {r.key: r for r in read_runs(source)}
        for path in found:
            carried.setdefault(path.name, {}).update(
                (k, r)
                for k, r in _read_reproductions_file(path).items()
                if k[0] in before and k[0] in now and same_run(before[k[0]], now[k[0]])
            )
    for name, kept in carried.items():
        if kept:
            _write_reproductions(Path(into) / REPRODUCTIONS_DIR / name, kept)


def restore(published: str | Path, output_dir: str | Path | None = None, runs: bool = True) -> Restored:
    """Make ``<output_dir>/<name>`` (the config's ``output_dir`` by default: where its experiment writes;
    new, or empty) the experiment directory of the publication ``published``: its config and manifest, every
    run's ``result.json`` in its place, and the shipped bundles as its pre-trainings. Each result names the
    machine it was made on (the publication's, where the result predates that record: the experiment that
    extends it records its own), and so does each bundle. A pre-training that does not ship is trained again by
    the experiment, and the runs that loaded it run again.

    :param runs: False: no run's result, and a manifest that lists none; the experiment on the config then
        makes every run again at this code, from the publication's own pre-trainings (its grid made again)."""
    published = Path(published)
    if not is_publication(published):
        raise UserInputError(
            f"'{published}' is not a publication: no {RUNS_FILE} (make one with 'rltransfer publish RUN_DIR DEST')"
        )
    if not (published / "config.yaml").is_file():
        raise UserInputError(f"'{published}' has no config.yaml: publish it again with 'rltransfer publish'")
    config = yaml.safe_load((published / "config.yaml").read_text())
    run_dir = Path(output_dir if output_dir is not None else config["output_dir"]) / config["name"]
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserInputError(f"'{run_dir}' exists and is not empty: restore into a new directory")
    results = read_runs(published)  # refuses an older layout, naming 'rltransfer migrate'
    manifest = ExperimentManifest.read(published)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _restore_records(published, run_dir, manifest, runs)
        if not runs:
            results = []
        for r in results:
            if r.machine is None and manifest.machine is not None:
                r = r.model_copy(update={"machine": manifest.machine})
            out = layout.run_out(run_dir, r.target, r.strategy, r.seed)
            out.mkdir(parents=True, exist_ok=True)
            r.write(out / RESULT_FILE)
        shipped = shipped_bundles(published)
        for p, bundle in shipped.items():
            _restore_bundle(bundle, layout.bundle_dir(run_dir, p), manifest.machine)
        reproduced_on = _keep_reproductions(published, run_dir / layout.RESTORED_DIR)
    except OSError as err:
        raise UserInputError(f"cannot restore into '{run_dir}': {err}") from None
    return Restored(run_dir, len(results), sorted(shipped), reproduced_on)


def _restore_records(published: Path, run_dir: Path, manifest: ExperimentManifest, runs: bool) -> None:
    """The publication's config, manifest and what it carries into ``run_dir``; without ``runs``, a manifest
    that lists none."""
    shutil.copyfile(published / "config.yaml", run_dir / "config.yaml")
    for name in CARRIED:
        if (published / name).is_file():
            shutil.copyfile(published / name, run_dir / name)
    if runs:
        shutil.copyfile(published / EXPERIMENT_MANIFEST, run_dir / EXPERIMENT_MANIFEST)
    else:
        manifest.model_copy(update={"runs": {}}).write(run_dir)


def _restore_bundle(bundle: Path, into: Path, machine: Machine | None) -> None:
    """Copy a shipped bundle into ``into``; one that records no machine (made before bundles recorded one) records
    ``machine``, the publication's, where it was trained: an extended publication's manifest records the machine
    that extended it, and its bundles' own record is then what says where they were trained."""
    shutil.copytree(bundle, into)
    manifest = read_manifest(into)
    if manifest.machine is None and machine is not None:
        manifest.model_copy(update={"machine": machine}).sealed().write(into)


def _keep_reproductions(published: Path, into: Path) -> list[str]:
    """Copy the publication's re-runs on other kinds of CPU, with the runs file and manifest they were checked
    against, into ``into`` (what publishing an experiment restored from it carries on); the kinds of CPU."""
    found = sorted(published.glob(f"{REPRODUCTIONS_DIR}/*.jsonl.gz"))
    if found:
        (into / REPRODUCTIONS_DIR).mkdir(parents=True)
        for name in (RUNS_FILE, EXPERIMENT_MANIFEST):
            shutil.copyfile(published / name, into / name)
        for path in found:
            shutil.copyfile(path, into / REPRODUCTIONS_DIR / path.name)
    return [p.name.removesuffix(".jsonl.gz") for p in found]


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` made: the experiment directory, how many results, which pre-trainings."""

    run_dir: Path
    results: int
    bundles: list[int]
    """The pre-training seeds whose shipped bundles were restored."""
    reproduced_on: list[str]
    """The kinds of CPU whose re-runs of the publication were kept (in ``restored-from/``)."""


def bundle_seeds(results: Sequence[FinishedRun | FailedRun]) -> list[int]:
    """The pre-training seeds whose bundles the finished runs loaded."""
    return sorted({r.pretrain_seed for r in results if isinstance(r, FinishedRun) and r.bundle_sha256})


def shipped_bundle(dest: Path, seed: int) -> Path:
    """Where a publication keeps pre-training seed ``seed``'s bundle."""
    return Path(dest) / BUNDLES_DIR / f"pretrain-seed-{seed}"


def shipped_bundles(dest: Path) -> dict[int, Path]:
    """The bundles a publication ships: pre-training seed -> directory (empty where none ship)."""
    found = sorted(Path(dest).glob(f"{BUNDLES_DIR}/pretrain-seed-*"))
    return {int(p.name.rsplit("-", 1)[1]): p for p in found if all((p / f).is_file() for f in BUNDLE_FILES)}


def ship_bundles(dest: Path, bundles: dict[int, Path], results: Sequence[FinishedRun | FailedRun]) -> int:
    """Copy ``bundles`` (pre-training seed -> bundle directory) into the publication ``dest`` when they
    are together at most :data:`MAX_BUNDLE_BYTES`; the bytes copied (0 where they are larger or absent).

    A bundle ships only where its weights' checksum is the one every run of its seed recorded.
    """
    shutil.rmtree(Path(dest) / BUNDLES_DIR, ignore_errors=True)
    if not bundles or not all((b / f).is_file() for b in bundles.values() for f in BUNDLE_FILES):
        return 0
    for p, b in bundles.items():
        sha = read_manifest(b).weights.sha256
        recorded = {
            r.bundle_sha256 for r in results if isinstance(r, FinishedRun) and r.bundle_sha256 and r.pretrain_seed == p
        }
        if recorded != {sha}:
            raise UserInputError(
                f"bundle '{b}' (weights sha256 {sha[:12]}) is not the one its runs loaded "
                f"({', '.join(s[:12] for s in sorted(recorded))}): the bundle changed after the runs"
            )
    size = sum((b / f).stat().st_size for b in bundles.values() for f in BUNDLE_FILES)
    if size > MAX_BUNDLE_BYTES:
        return 0
    for p, b in bundles.items():
        out = shipped_bundle(dest, p)
        out.mkdir(parents=True)
        for f in BUNDLE_FILES:
            shutil.copyfile(b / f, out / f)
    return size
