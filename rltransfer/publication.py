"""A publication: an experiment's report with the per-run data it was computed from.

``rltransfer publish RUN_DIR DEST`` copies the report (report.md, summary.json, summary.csv, the
pictures), the resolved config, the manifest and every run's ``result.json`` (one JSON object a line,
gzip-compressed, in ``runs.jsonl.gz``) to DEST. ``rltransfer report DEST`` re-renders the report from
that file alone, byte for byte, and anyone can recompute any figure from it with their own tools.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rltransfer.errors import UserInputError
from rltransfer.run_job import RESULT_FILE

RUNS_FILE = "runs.jsonl.gz"
RECORDS = ("config.yaml", "manifest.json")
REPORT_PATTERNS = ("report.md", "summary.json", "summary.csv", "curves_*.png", "ttt_*.png")


def is_publication(path: Path) -> bool:
    """Whether ``path`` is a published directory (its runs in :data:`RUNS_FILE`, no ``runs/``)."""
    return (path / RUNS_FILE).is_file() and not (path / "runs").is_dir()


def result_paths(run_dir: Path) -> Iterator[Path]:
    """Every run's result file of an experiment directory, in a fixed order."""
    return iter(sorted((run_dir / "runs").glob(f"*/*/seed-*/{RESULT_FILE}")))


def write_runs(results: list[dict[str, Any]], path: Path) -> None:
    """``results`` as one JSON object a line, gzip-compressed with no timestamp (the same results give
    the same bytes)."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in results)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(text.encode())
    path.write_bytes(buf.getvalue())


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The results of a publication's :data:`RUNS_FILE`."""
    try:
        with gzip.open(path / RUNS_FILE, "rt") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as err:
        raise UserInputError(f"'{path / RUNS_FILE}' is not a readable runs file: {err}") from None


def publish(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy ``run_dir``'s report, config, manifest and per-run results to ``dest`` (created if needed).

    Files of an earlier publication in ``dest`` that a publication writes are replaced; others (a
    hand-written README, say) stay.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    report = run_dir / "report"
    missing = [n for n in (*RECORDS, "report/summary.json") if not (run_dir / n).is_file()]
    if missing:
        raise UserInputError(
            f"'{run_dir}' is not an experiment directory with a report (missing {', '.join(missing)}); "
            "run 'rltransfer experiment' or 'rltransfer report' on it first"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for pattern in (*REPORT_PATTERNS, *RECORDS, RUNS_FILE):
        for old in dest.glob(pattern):
            old.unlink()
    for pattern in REPORT_PATTERNS:
        for f in sorted(report.glob(pattern)):
            shutil.copyfile(f, dest / f.name)
    for name in RECORDS:
        shutil.copyfile(run_dir / name, dest / name)
    results = [json.loads(p.read_text()) for p in result_paths(run_dir)]
    write_runs(results, dest / RUNS_FILE)
    return dest
