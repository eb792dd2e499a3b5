"""The index of a results directory, generated from its publications' summary files.

``rltransfer report --index docs/results`` prints two Markdown tables: every publication with its status
(current rules with per-run data, or the revision it was published at and why it was not run again) and
the headline table, one row a target of each top-level publication, its verdict as the report wrote it.
``--update FILE`` rewrites the tables between their markers in FILE (the README, the results page), so
prose quotes only what a summary holds; a test keeps the committed tables equal to the generated ones. A
block ``output of <publication>`` holds what ``rltransfer experiment`` printed at the end of that run
(each target's verdict and the compact table): the README's quick-start output. A block ``table of
<publication>`` holds the README's rows of that publication's targets, for its own page.

A publication is a directory with a ``summary.json``. One without per-run data (``runs.jsonl.gz``)
says on the first line of its README which revision it was published at and why it was not run again::

    Status: old rule, published at `5f13e2e`, not re-run: <why>.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltransfer.errors import UserInputError
from rltransfer.reporting.publication import RUNS_FILE

STATUS_RE = re.compile(r"^Status: old rule, published at `([0-9a-f]{7,40})`, not re-run: (.+)$")


@dataclass(frozen=True)
class Publication:
    """One published directory, as the index reads it."""

    path: Path
    summary: dict[str, Any]
    current: bool
    """Per-run data ships (``runs.jsonl.gz``): its claims follow the current rules and re-render."""
    revision: str
    why: str
    """Why it was not run again (old-rule publications only)."""


def _revision(summary: dict[str, Any]) -> str:
    runs = summary.get("code_revisions", {}).get("runs", {})
    return ", ".join(f"`{r[:7]}`" for r in sorted(runs)) or "?"


def read_publication(path: Path) -> Publication:
    """The publication in ``path``; an old-rule one must state its status on its README's first line."""
    summary = json.loads((path / "summary.json").read_text())
    if (path / RUNS_FILE).is_file():
        return Publication(path, summary, True, _revision(summary), "")
    readme = path / "README.md"
    first = readme.read_text().splitlines()[0] if readme.is_file() else ""
    m = STATUS_RE.match(first)
    if not m:
        raise UserInputError(
            f"'{path}' has no per-run data ({RUNS_FILE}) and its README's first line does not say its status; "
            "expected: Status: old rule, published at `<revision>`, not re-run: <why>."
        )
    return Publication(path, summary, False, f"`{m.group(1)}`", m.group(2).rstrip("."))


def publications(root: Path) -> list[Publication]:
    """Every publication under ``root`` (a directory with summary.json), in path order."""
    root = Path(root)
    found = sorted(p.parent for p in root.rglob("summary.json"))
    if not found:
        raise UserInputError(f"'{root}': no publication (no summary.json) under it")
    return [read_publication(p) for p in found]


def _link(pub: Publication, relative_to: Path, name: str) -> str:
    target = pub.path / ("README.md" if (pub.path / "README.md").is_file() else "report.md")
    return f"[{name}]({Path(os.path.relpath(target, relative_to)).as_posix()})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def headline_table(pubs: list[Publication], root: Path, relative_to: Path) -> str:
    """One row a target of each top-level publication under ``root``: its verdict, as the report wrote it."""
    top = [p for p in pubs if p.path.parent == Path(root)]
    top.sort(key=lambda p: (not p.current, p.path.name))
    lines = [
        "| results | target | split | verdict (as the report wrote it) | claims | revision |",
        "|---|---|---|---|---|---|",
    ]
    for pub in top:
        splits = {r["target"]: r["split"] for r in pub.summary["rows"]}
        for target in pub.summary["targets"]:
            verdict = pub.summary["verdicts"][target]
            claims = "current rules" if pub.current else "old rule: not a test"
            lines.append(
                f"| {_link(pub, relative_to, pub.path.name)} | {target} | {splits.get(target, '?')} | "
                f"{_cell(verdict)} | {claims} | {pub.revision} |"
            )
    return "\n".join(lines)


def _speed(row: Mapping[str, Any]) -> str:
    if row.get("speedup_to_threshold") is not None:
        return f"{row['speedup_to_threshold']:.1f}x"
    return row.get("speedup_note") or "-"


def _ratio(row: Mapping[str, Any]) -> str:
    if row.get("auc_ratio") is None:  # scratch's AUC IQM is not above 0: a ratio to it means nothing
        return "- (scratch's AUC IQM <= 0)"
    lo, hi = row["auc_ratio_ci"]
    return f"{row['auc_ratio']:.2f} [{lo:.2f}, {hi:.2f}]"


def _best_row(pub: Publication, target: str) -> str:
    """The cells of a target's row in the short tables: its best strategy as the verdict names it (significantly
    better than scratch), with the figures behind it, how many pre-trainings it rests on where they are fewer
    than a headline claim's, "a smoke test" where its independent runs (or scratch's) are fewer than a claim's,
    as the report says, and the target's other claims."""
    from rltransfer.stats.significance import HEADLINE_PRETRAININGS, SMOKE_UNITS, TOO_FEW, pretrainings_text
    from rltransfer.stats.summary import best

    rows = [r for r in pub.summary["rows"] if r["target"] == target]
    split = rows[0]["split"] if rows else "?"
    b = best(rows)
    negative = [r["strategy"] for r in rows if r.get("negative_transfer")]
    few = [r["strategy"] for r in rows if r.get("claim") == TOO_FEW]
    other = [f"NEGATIVE TRANSFER: {', '.join(negative)}"] if negative else []
    other += [f"too few independent runs: {', '.join(few)}"] if few else []
    if b is None:
        cells = "none significant | - | - | - | -"
    else:
        pre = b.get("pretrainings")
        name = f"{b['strategy']} ({pretrainings_text(pre)})" if pre and pre < HEADLINE_PRETRAININGS else b["strategy"]
        smoke = " (a smoke test)" if min(b["n_eff"], b["n_eff_scratch"]) < SMOKE_UNITS else ""
        cells = (
            f"{name} | {_cell(_speed(b))} | {_ratio(b)} | "
            f"{b['p_adjusted']:.2g} | {b['n_eff']} vs {b['n_eff_scratch']}{smoke}"
        )
    return f"{target} ({split}) | {cells} | {'; '.join(other) or '-'}"


_SHORT_HEADER = "best strategy | speed-up to threshold | AUC ratio [95% CI] | p (Holm) | n_eff | other claims |"


def _seeds(pub: Publication) -> int:
    return max((r["seeds"] for r in pub.summary["rows"] if r.get("seeds")), default=0)


def short_table(pubs: list[Publication], root: Path, relative_to: Path) -> str:
    """The README's table: one row a target of each top-level publication under the current rules
    (:func:`_best_row`); under it, the seeds each publication ran, which a headline claim takes
    :data:`~rltransfer.stats.significance.HEADLINE_SEEDS` of."""
    from rltransfer.stats.significance import HEADLINE_SEEDS

    top = sorted((p for p in pubs if p.current and p.path.parent == Path(root)), key=lambda p: p.path.name)
    lines = [f"| results | target (split) | {_SHORT_HEADER}", "|---|---|---|---|---|---|---|---|"]
    for pub in top:
        for target in pub.summary["targets"]:
            lines.append(f"| {_link(pub, relative_to, pub.path.name)} | {_best_row(pub, target)} |")
    by_seeds: dict[int, list[str]] = {}
    for pub in top:
        by_seeds.setdefault(_seeds(pub), []).append(pub.path.name)
    said = "; ".join(f"{n} in {', '.join(names)}" for n, names in sorted(by_seeds.items(), reverse=True) if n)
    if said:
        lines += ["", f"Seeds a side (a headline claim takes {HEADLINE_SEEDS}): {said}."]
    return "\n".join(lines)


def publication_table(pub: Publication) -> str:
    """A publication's own page's table: the README's rows of its targets (:func:`short_table`), with the
    seeds a side it ran and the revision its runs were made at under it."""
    from rltransfer.stats.significance import HEADLINE_SEEDS

    lines = [f"| target (split) | {_SHORT_HEADER}", "|---|---|---|---|---|---|---|"]
    lines += [f"| {_best_row(pub, target)} |" for target in pub.summary["targets"]]
    seeds = _seeds(pub)
    lines += [
        "",
        f"Seeds a side: {seeds} (a headline claim takes {HEADLINE_SEEDS}); runs made at {pub.revision}; "
        "the report: [report.md](report.md).",
    ]
    return "\n".join(lines)


def status_table(pubs: list[Publication], root: Path, relative_to: Path) -> str:
    """Every publication: whether its claims follow the current rules, and the revision it reproduces at."""
    lines = ["| publication | claims | per-run data | revision | why |", "|---|---|---|---|---|"]
    for pub in pubs:
        name = pub.path.relative_to(root).as_posix() + "/"
        if pub.current:
            row = f"current rules | {RUNS_FILE} | {pub.revision} | `rltransfer verify` re-runs its runs"
        else:
            row = f"old rule | none | {pub.revision} | {_cell(pub.why)}"
        lines.append(f"| {_link(pub, relative_to, name)} | {row} |")
    return "\n".join(lines)


def terminal_output(pub: Publication) -> str:
    """What ``rltransfer experiment`` printed at the end of the run a publication holds."""
    from rltransfer.reporting.report import terminal_summary

    return f"```text{terminal_summary(pub.summary)}\n```"


def tables(root: Path, relative_to: Path) -> dict[str, str]:
    """The generated tables of ``root``, their links relative to ``relative_to``: the short headline table
    (current rules only), the headline and status tables, the terminal output of each current
    publication (``output of <name>``) and each current top-level publication's own table, for its page
    (``table of <name>``)."""
    pubs = publications(root)
    out = {
        "short headline table": short_table(pubs, Path(root), relative_to),
        "headline table": headline_table(pubs, Path(root), relative_to),
        "status table": status_table(pubs, Path(root), relative_to),
    }
    for pub in pubs:
        if pub.current:
            out[f"output of {pub.path.relative_to(root).as_posix()}"] = terminal_output(pub)
            if pub.path.parent == Path(root):
                out[f"table of {pub.path.name}"] = publication_table(pub)
    return out


def _marker(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated by 'rltransfer report --index': {name}; edit the summaries, not this -->",
        f"<!-- end of the generated {name} -->",
    )


def updated(text: str, generated: dict[str, str]) -> str:
    """``text`` with every generated block replaced by its table now."""
    for name, table in generated.items():
        start, end = _marker(name)
        pattern = re.compile(re.escape(start) + r"\n(?:.*?\n)?" + re.escape(end), re.S)
        block = f"{start}\n{table}\n{end}"
        text = pattern.sub(block.replace("\\", "\\\\"), text)  # the block as it is: its backslashes escaped
    return text


def update(root: Path, files: list[Path], check: bool = False) -> list[Path]:
    """Rewrite the generated blocks of ``files`` from the publications under ``root``; the files that
    changed (with ``check``, that would change: nothing is written)."""
    changed = []
    for f in files:
        f = Path(f)
        if not f.is_file():
            raise UserInputError(f"--update: '{f}' is not a file")
        text = f.read_text()
        if "<!-- generated by 'rltransfer report --index'" not in text:
            raise UserInputError(f"--update: '{f}' has no generated block (a line '{_marker('headline table')[0]}')")
        new = updated(text, tables(root, f.parent))
        if new != text:
            changed.append(f)
            if not check:
                f.write_text(new)
    return changed
