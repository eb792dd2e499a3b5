"""The report of an experiment: report.md, summary.json, summary.csv, curves and Kaplan-Meier pictures,
and the aggregated IQM curves in TensorBoard. Re-rendered from the results on disk alone."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rltransfer.atomic import write_json_atomic
from rltransfer.errors import ConfigError, UserInputError
from rltransfer.records.experiment_manifest import ExperimentManifest
from rltransfer.records.run_result import FailedRun, FinishedRun, read_result
from rltransfer.reporting import figures
from rltransfer.reporting.publication import is_publication, read_runs, result_paths
from rltransfer.reporting.report_text import (
    NOT_RECORDED,
    claims_text,
    markdown_table,
    pretraining_table,
    protocol_text,
    sources_table,
    sources_text,
    text_table,
)
from rltransfer.stats.summary import BASELINE, by_pretraining, target_rows, verdict
from rltransfer.store import layout
from rltransfer.store.keys import experiment_hash, run_hash
from rltransfer.store.migration import check_layout
from rltransfer.strategies import COMMON, get_strategy, strategy_params

CSV_FIELDS = [
    "target", "split", "strategy", "seeds", "failed_runs", "pretrain_steps", "pretrain_steps_amortised", "p0_iqm",
    "jumpstart", "final_iqm", "auc_iqm", "auc_ratio", "reached", "ttt_median", "ttt_restricted_mean",
    "speedup_to_threshold", "speedup_note", "p_improve", "n_eff", "n_eff_scratch", "pretrainings", "p_value",
    "p_adjusted", "p_value_worse", "p_adjusted_worse", "claim", "logrank_p", "negative_transfer", "significant",
]  # fmt: skip


def collect(run_dir: Path) -> tuple[dict[str, Any], list[FinishedRun | FailedRun]]:
    """The experiment's config (as run) and every result file under ``runs/`` (of a publication: its
    runs file), each finished run scored against its target's threshold in the protocol
    (``manifest.json``): a run made under another ``evaluation.thresholds`` is re-scored from its returns
    (``result.json`` keeps the metrics it was written with)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UserInputError(
            f"'{run_dir}' is not an experiment directory: no config.yaml (run 'rltransfer experiment' first)"
        )
    if not is_publication(run_dir):
        check_layout(run_dir)
    config = yaml.safe_load(cfg_path.read_text())
    protocol = ExperimentManifest.read(run_dir).protocol
    tasks = protocol.tasks if protocol is not None else {}
    if is_publication(run_dir):
        stored = read_runs(run_dir)
    else:
        stored = [r for r in map(read_result, result_paths(run_dir)) if r is not None]
    results = []
    for r in stored:
        scale = tasks.get(r.target)
        if isinstance(r, FinishedRun) and scale is not None and scale.threshold != r.threshold:
            r = r.rescored(scale.threshold)
        results.append(r)
    return config, results


def _strategies(config: Mapping[str, Any]) -> list[str]:
    return [BASELINE] + [s for s in config["transfer"]["strategies"] if s != BASELINE]


def in_grid(
    results: Sequence[FinishedRun | FailedRun],
    config: Mapping[str, Any],
    chash: str | None,
    kept: Sequence[int] = (),
    targets: Sequence[str] | None = None,
) -> list[FinishedRun | FailedRun]:
    """The results of this config's grid: other seeds, strategies or targets may share the directory
    (``targets``: the config's, where known), and runs from a pre-training the gate has since replaced
    (``kept``: the pre-trainings transferred from). A run counts under the experiment hash ``chash``."""
    strategies, seeds = _strategies(config), int(config["transfer"]["seeds"])
    kept = list(kept) or list(range(int(config["pretrain"]["seeds"])))

    def current(r: FinishedRun | FailedRun, chash: str) -> bool:
        p = kept[r.seed % len(kept)]
        engine = {"engine": r.engine} if r.engine else {}  # a batched run's key names its engine
        return r.run_hash == run_hash(chash, config, r.strategy, r.seed, p, r.target, **engine)

    return [
        r for r in results
        if r.strategy in strategies and r.seed < seeds
        and (targets is None or r.target in targets) and (chash is None or current(r, chash))
    ]  # fmt: skip


def grid_results(
    manifest: ExperimentManifest, config: Mapping[str, Any], results: Sequence[FinishedRun | FailedRun]
) -> list[FinishedRun | FailedRun]:
    """:func:`in_grid` with what the directory's manifest says: the hash, the kept pre-trainings and the
    targets of the last run (a manifest without a hash: every result of the grid's size)."""
    protocol = manifest.protocol
    targets = list(protocol.tasks) if protocol is not None else None
    chash = experiment_hash(config) if manifest.config_hash else None
    return in_grid(results, config, chash, protocol.pretrain_kept if protocol is not None else (), targets)


def missing_runs(
    manifest: ExperimentManifest, config: Mapping[str, Any], current: Sequence[FinishedRun | FailedRun]
) -> list[str]:
    """The runs of the grid (its targets, strategies and seeds) with no result, finished or failed: a grid
    stopped before its end, or given more seeds, strategies or targets and not run again since."""
    protocol = manifest.protocol
    targets = list(protocol.tasks) if protocol is not None else list(dict.fromkeys(r.target for r in current))
    have = {r.key for r in current}
    seeds = range(int(config["transfer"]["seeds"]))
    planned = (layout.run_key(t, s, k) for t in targets for s in _strategies(config) for k in seeds)
    return [key for key in planned if key not in have]


def incomplete_text(summary: Mapping[str, Any], named: int = 0) -> str | None:
    """What the report says first where runs of the grid have no result, naming the first ``named`` of them
    (None where every run has one)."""
    missing = summary.get("missing_runs") or []
    if not missing:
        return None
    listed = ""
    if named:
        more = len(missing) - named
        listed = ": " + ", ".join(missing[:named]) + (f" and {more} more" if more > 0 else "")
    return (
        f"Incomplete: {len(missing)} run(s) of the grid have no result yet; the tables, verdicts and claims are "
        "of the runs that have one. Running the experiment again (`rltransfer experiment` with its config) runs "
        f"only these{listed}."
    )


def summarise(
    manifest: ExperimentManifest, config: Mapping[str, Any], current: Sequence[FinishedRun | FailedRun]
) -> dict[str, Any]:
    """``summary.json``'s content from the grid's results (:func:`grid_results`)."""
    chash = manifest.config_hash
    budget = int(config["transfer"]["timesteps"])
    strategies = _strategies(config)
    ok = [r for r in current if isinstance(r, FinishedRun)]
    failed = [r for r in current if isinstance(r, FailedRun)]
    by: dict[tuple[str, str], list[FinishedRun]] = defaultdict(list)
    for r in ok:
        by[(r.target, r.strategy)].append(r)
    fails: dict[tuple[str, str], int] = defaultdict(int)
    for f in failed:
        fails[(f.target, f.strategy)] += 1
    targets = list(dict.fromkeys(r.target for r in current))
    pre = manifest.pretrain_steps or 0
    seed_free = seed_free_strategies(config)
    rows = []
    for target in targets:
        split = next(r.split for r in current if r.target == target)
        by_strategy = {s: sorted(by[(target, s)], key=lambda r: r.seed) for s in strategies}
        fails_here = {s: fails[(target, s)] for s in strategies}
        rows_here = target_rows(
            target, split, by_strategy, budget, pre, max(1, len(targets)), fails_here, seed_free=seed_free
        )
        for row in rows_here:
            groups = by_pretraining(by_strategy[row["strategy"]], budget) if row["strategy"] != BASELINE else None
            if groups:  # scratch loads nothing of a pre-training: its runs are not split
                row["by_pretrain"] = groups
            rows.append(row)
    recorded = manifest.protocol.model_dump(mode="json", exclude_unset=True) if manifest.protocol else {}
    protocol = {**recorded, "transfer": transfer_settings(config)}
    copied: dict[str, int] = defaultdict(int)
    for r in ok:
        if r.copied_from is not None:
            copied[str(Path(r.copied_from.run_dir).parents[3])] += 1
    return {
        "experiment": config["name"],
        "family": config["family"],
        "source_tasks": _source_names(config, manifest),
        "config_hash": chash,
        "protocol": protocol,
        "versions": manifest.versions,
        "code_revisions": {
            "runs": _revision_counts([r.code_revision for r in ok]),
            "pretrainings": _revision_counts([p.code_revision for p in manifest.pretrainings if p.kept]),
        },
        "pretrain_steps": pre,
        "pretrainings": [p.to_dict() for p in manifest.pretrainings],
        "targets": targets,
        "verdicts": {t: verdict([r for r in rows if r["target"] == t and "auc_iqm" in r]) for t in targets},
        "failures": [{"run": f.key, "error": f.error} for f in failed],
        "missing_runs": missing_runs(manifest, config, current),
        "rows": rows,
        "copied_runs": dict(copied),
    }


def _revision_counts(revisions: Sequence[str | None]) -> dict[str, int]:
    """How many runs (or pre-trainings) each rltransfer revision produced, most first."""
    counts: dict[str, int] = defaultdict(int)
    for revision in revisions:
        counts[revision or NOT_RECORDED] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def seed_free_strategies(config: Mapping[str, Any]) -> set[str]:
    """The strategies of ``config`` whose runs' seeds touch neither the agent nor its evaluation: those that train
    nothing (``zero_shot``), where evaluation is deterministic and no probe chooses the head (a probe's episodes
    follow the seed). Their runs from one bundle are one agent on any CPU
    (:func:`rltransfer.stats.significance.units`); a strategy this process does not know, or whose plan fails
    here, is not among them (its runs are counted by their scores)."""
    if not config.get("evaluation", {}).get("deterministic", True) or config["transfer"].get("head_init") == "probe":
        return set()
    given_all = config["transfer"].get("strategy_params") or {}
    out = set()
    for name in _strategies(config)[1:]:
        try:
            trains = get_strategy(name).plan(strategy_params(name, given_all.get(name))).train
        except Exception:  # a user's plan that fails here: its runs failed too, and the report says so
            continue
        if not trains:
            out.add(name)
    return out


def transfer_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """How the runs of ``config`` started: the target head's initialisation and each strategy's
    parameters as resolved (defaults updated with ``transfer.strategy_params``; ``load`` and
    ``freeze`` only where the config sets them)."""
    tr = config["transfer"]
    given_all = tr.get("strategy_params") or {}
    params = {}
    for name in _strategies(config)[1:]:
        given = given_all.get(name) or {}
        try:
            resolved = strategy_params(name, given)
        except ConfigError:  # a strategy registered by the script that ran it, not here
            resolved = dict(given)
        shown = {k: v for k, v in resolved.items() if k not in COMMON or k in given}
        if shown:
            params[name] = shown
    out: dict[str, Any] = {"head_init": tr.get("head_init", "nearest"), "strategy_params": params}
    if out["head_init"] == "probe":
        out["probe_episodes"] = int(tr.get("probe_episodes", 1))
    return out


def _source_names(config: Mapping[str, Any], manifest: ExperimentManifest) -> list[str]:
    """The source tasks' names in the config's order (the family's default sources where it names none):
    as the manifest records them, else (a publication made before it did) as the config names them, or the
    declaration of a family it declares (no env built: MuJoCo's, say, need not be installed to re-render),
    else resolved from the config."""
    if manifest.protocol is not None and manifest.protocol.source_tasks:
        return list(manifest.protocol.source_tasks)
    names = config.get("source_tasks")
    if names is None:
        declared = [f for f in config.get("families") or () if isinstance(f, Mapping) and f.get("name") == config.get("family")]  # fmt: skip
        names = declared[0].get("sources") if declared else None
    if names is not None and all(isinstance(n, str) for n in names):
        return list(names)
    from rltransfer.config import load_config
    from rltransfer.validation import resolve

    return [t.name for t in resolve(load_config(dict(config))).sources]


def _target_section(
    summary: Mapping[str, Any],
    target: str,
    current: Sequence[FinishedRun | FailedRun],
    report: Path,
    budget: int,
    bands: dict[str, dict[str, figures.Band]],
) -> list[str]:
    """A target's part of report.md: its verdict, table, claims, pre-trainings and pictures (drawn into
    ``report``; its IQM bands added to ``bands``)."""
    rows = [r for r in summary["rows"] if r["target"] == target]
    split = rows[0]["split"] if rows else "?"
    md = [f"## {target} ({split})", "", f"**{summary['verdicts'][target]}**", "", markdown_table(rows), ""]
    md += [claims_text(rows), ""]
    by_pre = pretraining_table(rows)
    if by_pre:
        md += [
            "By pre-training (runs that share one are not independent: the intervals above resample "
            "pre-trainings first, and the test compares runs within each; here is how much a result owes "
            "to one):",
            "",
            by_pre,
            "",
        ]
    curves = figures.curves_of(current, target)
    if curves:
        bands[target] = figures.iqm_bands(curves)
        figures.plot_curves(report / f"curves_{target}.png", target, bands[target])
        figures.plot_ttt(report / f"ttt_{target}.png", target, current, budget)
        md += [f"![learning curves](curves_{target}.png)", "", f"![time to threshold](ttt_{target}.png)", ""]
    return md


def _closing_sections(summary: Mapping[str, Any]) -> list[str]:
    """report.md after the targets: the pre-trainings, failed runs, runs not run yet and the protocol."""
    md = []
    if summary["pretrainings"]:
        table = sources_table(summary["pretrainings"], summary.get("source_tasks", ()))
        md += ["## Pre-trainings", "", sources_text(summary), "", table, ""]
    if summary["failures"]:
        md += ["## Failed runs", ""] + [f"- `{f['run']}`: {f['error']}" for f in summary["failures"]] + [""]
    if summary["missing_runs"]:
        md += ["## Runs not run yet", ""] + [f"- `{key}`" for key in summary["missing_runs"]] + [""]
    return md + ["## Protocol", "", protocol_text(summary), ""]


def render(run_dir: str | Path, echo: bool = False, tensorboard: bool = True) -> dict[str, Any]:
    """Write ``report/`` (and the TensorBoard aggregates) from the results on disk; return the summary.

    Of a publication (:mod:`rltransfer.reporting.publication`) the report is written in the directory itself,
    from its runs file, and no TensorBoard aggregates.
    """
    run_dir = Path(run_dir)
    config, results = collect(run_dir)
    manifest = ExperimentManifest.read(run_dir)
    current = grid_results(manifest, config, results)
    summary = summarise(manifest, config, current)
    published = is_publication(run_dir)
    tensorboard = tensorboard and not published
    report = run_dir if published else run_dir / "report"
    report.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report / "summary.json", summary)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in summary["rows"]:
        writer.writerow({k: row.get(k) for k in CSV_FIELDS})
    (report / "summary.csv").write_text(buf.getvalue())
    budget = int(config["transfer"]["timesteps"])
    bands: dict[str, dict[str, figures.Band]] = {}
    md = [f"# {summary['experiment']}: transfer on family `{summary['family']}`", ""]
    incomplete = incomplete_text(summary)
    if incomplete:
        md += [f"**{incomplete}** (They are listed under [Runs not run yet](#runs-not-run-yet).)", ""]
    for target in summary["targets"]:
        md += _target_section(summary, target, current, report, budget, bands)
    md += _closing_sections(summary)
    (report / "report.md").write_text("\n".join(md))
    if tensorboard:
        figures.write_tensorboard_aggregates(run_dir, bands)
    if echo:
        print(terminal_summary(summary))
        print(f"\nreport: {report / 'report.md'}")
    return summary


def terminal_summary(summary: Mapping[str, Any]) -> str:
    """What an experiment prints at its end: each target's verdict, then the compact table."""
    verdicts = "".join(f"\n{t}: {summary['verdicts'][t]}\n" for t in summary["targets"])
    incomplete = incomplete_text(summary, named=3)
    if incomplete:
        verdicts = f"\n{incomplete}\n" + verdicts
    return verdicts + text_table(summary["rows"])
