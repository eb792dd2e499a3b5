"""``rltransfer publish RUN_DIR DEST``: an experiment directory's results made a publication
(:mod:`rltransfer.reporting.publication`): its config and manifest, every run's result in ``runs.jsonl.gz``, the
bundles where small, and the report rendered from that runs file, so that the report is the one ``rltransfer
report DEST`` gives, whatever state the experiment directory's own report is in (an experiment stopped after
more runs finished renders none).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from rltransfer.config import ExperimentConfig
from rltransfer.errors import UserInputError
from rltransfer.records.run_result import parse_result
from rltransfer.reporting.publication import (
    BUNDLES_DIR,
    CARRIED,
    RECORDS,
    REPORT_PATTERNS,
    REPRODUCTIONS_DIR,
    RUNS_FILE,
    bundle_seeds,
    carry_reproductions,
    result_paths,
    ship_bundles,
    write_runs,
)
from rltransfer.reporting.report import render
from rltransfer.store import layout

STAGING_DIR = ".publishing"
"""Where :func:`publish` writes a publication inside its destination before moving it in."""
REPLACED_DIR = ".replaced"
"""Where :func:`publish` moves the earlier publication's files while it moves the new ones in."""


def publish(run_dir: str | Path, dest: str | Path) -> Path:
    """Publish the experiment ``run_dir`` to ``dest`` (created if needed): its config and manifest (and what its
    envs did, ``envs.json``, where it has it), every run's result in one runs file, the bundles where small, and
    the report rendered from them.

    Files of an earlier publication in ``dest`` that a publication writes are replaced; others (a
    hand-written README, say) stay; of its re-runs on other kinds of CPU (``reproductions/``), and of those of
    the publication ``run_dir`` was restored from, the re-runs of runs published unchanged stay too
    (:func:`~rltransfer.reporting.publication.carry_reproductions`). Everything is read and checked, and the new
    publication written in ``dest/.publishing/``, before ``dest`` changes: a refusal (an unreadable result, a
    bundle that changed) or a stop while it is written leaves the earlier publication as it was. Then the
    earlier files are moved out and the new ones in, a few renames.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    missing = [n for n in RECORDS if not (run_dir / n).is_file()]
    if missing or not (run_dir / "runs").is_dir():
        raise UserInputError(
            f"'{run_dir}' is not an experiment directory (missing {', '.join(missing) or 'runs/'}); "
            "run 'rltransfer experiment' first"
        )
    _check_destination(run_dir, dest)
    results = []
    for path in result_paths(run_dir):
        try:
            results.append(parse_result(json.loads(path.read_text())))
        except (OSError, ValueError) as err:
            raise UserInputError(f"'{path}': {err}; run the experiment again to redo the run") from None
    staging = dest / STAGING_DIR
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for leftover in (staging, dest / REPLACED_DIR):  # of a publish stopped midway
            shutil.rmtree(leftover, ignore_errors=True)
        staging.mkdir()
        try:
            for name in (*RECORDS, *(n for n in CARRIED if (run_dir / n).is_file())):
                shutil.copyfile(run_dir / name, staging / name)
            _write_where_run(staging / "config.yaml")
            write_runs(results, staging / RUNS_FILE)
            ship_bundles(staging, {p: layout.bundle_dir(run_dir, p) for p in bundle_seeds(results)}, results)
            carry_reproductions([dest, run_dir / layout.RESTORED_DIR], results, staging)
            render(staging)  # from the runs file: the report 'rltransfer report DEST' gives
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _swap_in(staging, dest)
    except OSError as err:
        raise UserInputError(f"cannot publish to '{dest}': {err}") from None
    return dest


def publication_warnings(summary: dict[str, Any]) -> list[str]:
    """What a publication's summary says its reader should be warned of: runs of the grid without a result, and
    runs or kept pre-trainings made with uncommitted changes (their code revision says ``+dirty``: no commit
    makes them again)."""
    out = []
    missing = summary.get("missing_runs") or []
    if missing:
        out.append(
            f"the grid is incomplete: {len(missing)} of its runs have no result (the report says so first); run the "
            "experiment again to finish it, then publish again"
        )
    revisions = summary.get("code_revisions") or {}
    dirty = {what: sum(n for rev, n in by.items() if rev.endswith("+dirty")) for what, by in revisions.items()}
    if any(dirty.values()):
        said = " and ".join(
            f"{n} {'run(s)' if what == 'runs' else 'pre-training(s)'}" for what, n in dirty.items() if n
        )
        out.append(
            f"{said} were made with uncommitted changes (their code revision says +dirty): no commit makes them "
            "again; commit, make them again (rltransfer restore --without-runs) and publish again"
        )
    return out


def _check_destination(run_dir: Path, dest: Path) -> None:
    """Refuse a destination that publishing would damage: the experiment directory itself, a directory inside it
    or holding it, another experiment directory (its config and manifest would be overwritten), a file."""
    here, there = run_dir.resolve(), dest.resolve()
    if there == here:
        raise UserInputError(f"'{dest}' is the experiment directory itself: publish to a directory outside it")
    if here in there.parents:
        raise UserInputError(
            f"'{dest}' is inside the experiment directory '{run_dir}', whose files publishing would replace: "
            "publish to a directory outside it"
        )
    if there in here.parents:
        raise UserInputError(f"'{dest}' holds the experiment directory '{run_dir}': publish to a directory of its own")
    if dest.exists() and not dest.is_dir():
        raise UserInputError(f"'{dest}' is a file: publish to a directory (new, or an earlier publication)")
    if (dest / "runs").is_dir():
        raise UserInputError(
            f"'{dest}' is an experiment directory (it holds runs/), whose config and manifest publishing would "
            "replace: publish to a directory of its own"
        )


def _swap_in(staging: Path, dest: Path) -> None:
    """Replace the publication files in ``dest`` by those written in ``staging`` (renames within ``dest``; a stop
    between them leaves ``dest`` part-replaced, which publishing again from the experiment directory mends)."""
    owned = {
        p
        for pattern in (*REPORT_PATTERNS, *RECORDS, *CARRIED, RUNS_FILE, BUNDLES_DIR, REPRODUCTIONS_DIR)
        for p in dest.glob(pattern)
    }
    replaced = dest / REPLACED_DIR
    replaced.mkdir()
    for old in sorted(owned):  # reproductions/ too: staging holds those of the runs published unchanged
        old.rename(replaced / old.name)
    for new in sorted(staging.iterdir()):
        new.rename(dest / new.name)
    shutil.rmtree(replaced)
    staging.rmdir()


def _write_where_run(config: Path) -> None:
    """The published config with the default ``output_dir`` (``runs``, relative): whoever runs it, or restores
    the publication, writes where they run it, not in the directory the experiment was made in. The
    output directory enters no hash, so the runs are the same runs."""
    data = yaml.safe_load(config.read_text())
    data["output_dir"] = ExperimentConfig.model_fields["output_dir"].default
    config.write_text(yaml.safe_dump(data, sort_keys=False))
