"""From run results to the comparison table: per (target, strategy) statistics versus scratch.

Pure numpy/scipy (no torch): :func:`summarise` turns result dicts into the ``rows`` of
``summary.json`` (docs/evaluation.md lists the fields).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from rltransfer.records.run_result import FinishedRun
from rltransfer.stats import bootstrap, metrics, significance

BASELINE = "scratch"


def groups_of(runs: Sequence[FinishedRun], values: Sequence[float] | np.ndarray) -> list[list[float]]:
    """``values`` (one per run) grouped by the pre-training their run started from, in its order."""
    groups: dict[int, list[float]] = {}
    for r, v in zip(runs, values):
        groups.setdefault(r.pretrain_seed, []).append(float(v))
    return [groups[k] for k in sorted(groups)]


def _ci(groups: Sequence[Sequence[float]], statistic, seed: int) -> list[float]:
    low, high, _ = bootstrap.interval(groups, statistic, seed)
    return [low, high]


def _fmt_steps(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def row_for(
    target: str,
    split: str,
    strategy: str,
    runs: Sequence[FinishedRun],
    scratch: Sequence[FinishedRun],
    budget: int,
    pretrain_steps: int,
    n_targets: int,
    failed: int,
    seed: int = 0,
) -> dict[str, Any]:
    """One row of the table, its descriptive statistics: the strategy's runs against scratch's (paired
    by seed). Intervals resample pre-trainings, then seeds within them (:mod:`rltransfer.stats.bootstrap`);
    the test and the claim come from :func:`rltransfer.stats.significance.compare` (see :func:`target_rows`)."""
    m = {k: np.array([getattr(r.metrics, k) for r in runs], dtype=float) for k in ("p0", "final", "auc", "ttt")}
    g = {k: groups_of(runs, m[k]) for k in ("final", "auc")}
    reached = np.array([r.metrics.reached for r in runs], dtype=bool)
    n = len(runs)
    km = metrics.kaplan_meier(m["ttt"], reached, budget)
    median = km.median()
    low, high = km.median_ci()
    pre = 0 if strategy == BASELINE else pretrain_steps
    row: dict[str, Any] = {
        "target": target,
        "split": split,
        "strategy": strategy,
        "seeds": n,
        "failed_runs": failed,
        "pretrain_steps": pre,
        "pretrain_steps_amortised": pre / n_targets if pre else 0,
        "p0_iqm": metrics.iqm(m["p0"]),
        "p0_mean": float(m["p0"].mean()),
        "final_iqm": metrics.iqm(m["final"]),
        "final_iqm_ci": _ci(g["final"], bootstrap.iqm_rows, seed),
        "final_mean": float(m["final"].mean()),
        "final_mean_ci": _ci(g["final"], bootstrap.mean_rows, seed),
        "auc_iqm": metrics.iqm(m["auc"]),
        "auc_iqm_ci": _ci(g["auc"], bootstrap.iqm_rows, seed),
        "auc_mean": float(m["auc"].mean()),
        "auc_mean_ci": _ci(g["auc"], bootstrap.mean_rows, seed),
        "ci_method": bootstrap.method(g["auc"]),
        "reached": int(reached.sum()),
        "ttt_median": median,
        "ttt_median_ci": [low, high],
        "ttt_restricted_mean": km.restricted_mean(),
        "jumpstart": None,
        "jumpstart_ci": None,
        "speedup_to_threshold": None,
        "speedup_note": "",
        "speedup_lower_bound": None,
        "auc_ratio": None,
        "auc_ratio_ci": None,
        "p_improve": None,
        "p_improve_ci": None,
        "logrank_p": None,
    }
    if strategy == BASELINE or not scratch:
        return row
    s = {k: np.array([getattr(r.metrics, k) for r in scratch], dtype=float) for k in ("p0", "auc", "ttt")}
    s_reached = np.array([r.metrics.reached for r in scratch], dtype=bool)
    # Jumpstart: P_transfer(0) - P_scratch(0), per seed pair.
    by_seed = {r.seed: r.metrics.p0 for r in scratch}
    paired = [r for r in runs if r.seed in by_seed]
    pairs = [r.metrics.p0 - by_seed[r.seed] for r in paired]
    if pairs:
        row["jumpstart"] = float(np.mean(pairs))
        row["jumpstart_ci"] = _ci(groups_of(paired, pairs), bootstrap.mean_rows, seed)
    s_median = metrics.kaplan_meier(s["ttt"], s_reached, budget).median()
    if median is not None and s_median is not None:
        row["speedup_to_threshold"] = s_median / median if median > 0 else None
        if median == 0:
            row["speedup_note"] = "reaches the threshold at step 0 (zero-shot)"
    elif median == 0:  # no finite lower bound on the ratio: say what was measured
        row["speedup_note"] = (
            f"reaches the threshold at step 0 (zero-shot); scratch's median is censored at B={budget:,}"
        )
    elif median is not None:
        row["speedup_lower_bound"] = budget / median
        row["speedup_note"] = f">{budget / median:.1f}x (scratch's median is censored at B={budget:,})"
    elif s_median is not None:
        row["speedup_note"] = f"median censored at B={budget:,}; scratch's is {s_median:,.0f}"
    else:
        row["speedup_note"] = "neither reaches the threshold in half of its runs"
    ratio = metrics.auc_ratio(m["auc"], s["auc"])
    if np.isfinite(ratio):
        row["auc_ratio"] = ratio
        row["auc_ratio_ci"] = list(bootstrap.two_sample_interval(g["auc"], [s["auc"]], bootstrap.iqm_ratio_rows, seed))
    row["p_improve"] = metrics.probability_of_improvement(m["auc"], s["auc"])
    row["p_improve_ci"] = list(bootstrap.two_sample_interval(g["auc"], [s["auc"]], bootstrap.improvement_rows, seed))
    row["logrank_p"] = metrics.logrank_sooner(m["ttt"], reached, s["ttt"], s_reached)
    return row


def target_rows(
    target: str,
    split: str,
    by_strategy: Mapping[str, Sequence[FinishedRun]],
    budget: int,
    pretrain_steps: int,
    n_targets: int,
    failed: Mapping[str, int],
    seed: int = 0,
    seed_free: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The rows of one target: each strategy's statistics (:func:`row_for`) and its claim against
    scratch (:func:`rltransfer.stats.significance.compare`, Holm over this target's strategies).

    ``by_strategy``: strategy -> its ok runs, scratch first; a strategy with no ok run but failed ones
    gets a row that says so. ``seed_free``: the strategies whose runs' seeds touch neither agent nor
    evaluation (:func:`rltransfer.stats.significance.units`).
    """
    scratch = list(by_strategy.get(BASELINE, ()))
    others = {s: runs for s, runs in by_strategy.items() if s != BASELINE and runs}
    claims = significance.compare(others, scratch, seed_free)
    scratch_units = significance.n_units(significance.units(scratch))
    rows = []
    for strategy, runs in by_strategy.items():
        if not runs:
            if failed.get(strategy):
                rows.append(
                    {
                        "target": target,
                        "split": split,
                        "strategy": strategy,
                        "seeds": 0,
                        "failed_runs": failed[strategy],
                    }
                )
            continue
        row = row_for(
            target, split, strategy, runs, scratch, budget, pretrain_steps, n_targets, failed.get(strategy, 0), seed
        )
        if strategy == BASELINE:  # loads no pre-training; compared with nothing
            row.update(
                {
                    "n_eff": scratch_units, "n_eff_scratch": None, "pretrainings": 0, "p_value": None,
                    "p_adjusted": None, "p_value_worse": None, "p_adjusted_worse": None, "comparisons": 0,
                    "claim": None, "significant": False, "negative_transfer": False,
                }
            )  # fmt: skip
        else:  # without scratch runs: too few on that side
            row.update(claims[strategy].fields())
        rows.append(row)
    return rows


def by_pretraining(runs: Sequence[FinishedRun], budget: int) -> list[dict[str, Any]] | None:
    """The strategy's runs split by the pre-training they started from (``pretrain.seeds`` > 1), or
    None when they share one.

    Runs that start from the same pre-training are not independent: the row's intervals resample
    pre-trainings, then runs within them, and its test compares runs within each pre-training. These
    groups (3 or 4 runs each with 10 seeds over 3 pre-trainings) show how much a result owes to one;
    they are described by their means and Kaplan-Meier median, not given intervals of their own.
    """
    groups: dict[int, list[FinishedRun]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        groups.setdefault(r.pretrain_seed, []).append(r)
    if len(groups) < 2:
        return None
    out = []
    for p, group in sorted(groups.items()):
        m = {k: np.array([getattr(r.metrics, k) for r in group], dtype=float) for k in ("p0", "final", "auc", "ttt")}
        reached = np.array([r.metrics.reached for r in group], dtype=bool)
        out.append(
            {
                "pretrain_seed": p,
                "seeds": [r.seed for r in group],
                "p0_mean": float(m["p0"].mean()),
                "final_mean": float(m["final"].mean()),
                "auc_mean": float(m["auc"].mean()),
                "reached": int(reached.sum()),
                "ttt_median": metrics.kaplan_meier(m["ttt"], reached, budget).median(),
            }
        )
    return out


def _speed_rank(row: Mapping[str, Any]) -> float:
    """How much sooner than scratch a strategy reaches the threshold, for ranking: infinite when it
    is there at step 0, the measured speed-up, a lower bound when scratch's median is censored, else 0."""
    median = row["ttt_median"]
    if median is None:
        return 0.0
    if median == 0:
        return float("inf")
    if row["speedup_to_threshold"] is not None:
        return float(row["speedup_to_threshold"])
    return float(row.get("speedup_lower_bound") or 0.0)


def best(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The strategy the verdict names best on a target: of those significantly better than scratch, the
    soonest to the threshold, then the highest AUC IQM; None where none is."""
    winners = [r for r in rows if r["strategy"] != BASELINE and r.get("claim") == significance.SIGNIFICANT]
    return max(winners, key=lambda r: (_speed_rank(r), r["auc_iqm"])) if winners else None


def verdict(rows: Sequence[Mapping[str, Any]]) -> str:
    """One honest line per target: what survives the test and its correction, and nothing else."""
    compared = [r for r in rows if r["strategy"] != BASELINE and r.get("claim")]
    if not compared:
        return "no transfer strategy ran"
    m = compared[0]["comparisons"]
    holm = f"Holm over {m} comparison{'s' if m != 1 else ''}"
    winners = [r for r in compared if r["claim"] == significance.SIGNIFICANT]
    losers = [r for r in compared if r["claim"] == significance.NEGATIVE]
    too_few = [r["strategy"] for r in compared if r["claim"] == significance.TOO_FEW]
    parts = []
    top = best(rows)
    if top is not None:
        lo, hi = top["p_improve_ci"]
        if top["speedup_to_threshold"] is not None:
            speed = f"{top['speedup_to_threshold']:.1f}x faster to threshold than scratch"
        else:
            speed = top["speedup_note"] or "no speed-up measurable"
        tied = [r["strategy"] for r in winners if r is not top and _alike(r, top)]
        alike = f" ({', '.join(tied)} alike: the same time to threshold, AUC IQM CIs overlapping)" if tied else ""
        parts.append(
            f"best: {top['strategy']}{alike}, {speed}, P(improve)={top['p_improve']:.2f} [{lo:.2f}, {hi:.2f}], "
            f"p={top['p_adjusted']:.3g} ({holm})"
        )
        rest = [r["strategy"] for r in winners if r is not top and r["strategy"] not in tied]
        if rest:
            parts.append(f"also beats scratch: {', '.join(rest)}")
    elif len(too_few) < len(compared):
        parts.append(f"no strategy beats scratch significantly ({holm})")
    for r in losers:
        parts.append(f"NEGATIVE TRANSFER: {r['strategy']} (p={r['p_adjusted_worse']:.3g}, {holm})")
    if too_few:
        parts.append(f"{TOO_FEW_TEXT}: {', '.join(too_few)}")
    behind = max((r.get("pretrainings") or 0 for r in winners + losers), default=0)  # the claims' pre-trainings
    if 0 < behind < significance.HEADLINE_PRETRAININGS:
        parts.append(f"all from {significance.pretrainings_text(behind)}")
    return "; ".join(parts)


TOO_FEW_TEXT = f"{significance.TOO_FEW} for a verdict (n_eff < {significance.MIN_UNITS} on a side)"


def _alike(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether the ranking cannot tell ``a`` from ``b``: the same Kaplan-Meier median time to threshold
    and overlapping AUC IQM intervals (the point estimate alone decided)."""
    (alo, ahi), (blo, bhi) = a["auc_iqm_ci"], b["auc_iqm_ci"]
    return a["ttt_median"] == b["ttt_median"] and alo <= bhi and blo <= ahi


def _p(p: float | None) -> str:
    """A p-value for the table: three significant digits, small ones in scientific notation."""
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The report's columns, formatted."""

    def ci(v):
        return "-" if v is None else f"[{v[0]:.2f}, {v[1]:.2f}]"

    def num(v, fmt=".2f"):
        return "-" if v is None else format(v, fmt)

    out = []
    for r in rows:
        med_ci = r["ttt_median_ci"]
        ttt = _fmt_steps(r["ttt_median"]) + (
            f" [{_fmt_steps(med_ci[0])}, {_fmt_steps(med_ci[1])}]" if r["ttt_median"] is not None else " (censored)"
        )
        speed = (
            num(r["speedup_to_threshold"], ".1f") + "x"
            if r["speedup_to_threshold"] is not None
            else (r["speedup_note"] or "-")
        )
        flags = []
        if r.get("claim") == significance.NEGATIVE:
            flags.append("NEGATIVE TRANSFER")
        elif r.get("claim") in (significance.SIGNIFICANT, significance.TOO_FEW):
            flags.append(r["claim"])
        if r["failed_runs"]:
            flags.append(f"{r['failed_runs']} failed")
        out.append(
            [
                r["target"],
                r["strategy"],
                str(r["seeds"]),
                str(r["n_eff"]),
                f"{r['pretrain_steps']:,} ({r['pretrain_steps_amortised']:,.0f})",
                num(r["p0_iqm"]),
                "-" if r["jumpstart"] is None else f"{r['jumpstart']:.2f} {ci(r['jumpstart_ci'])}",
                f"{r['final_iqm']:.2f} {ci(r['final_iqm_ci'])}",
                f"{r['auc_iqm']:.2f} {ci(r['auc_iqm_ci'])}",
                "-" if r["auc_ratio"] is None else f"{r['auc_ratio']:.2f} {ci(r['auc_ratio_ci'])}",
                f"{r['reached']}/{r['seeds']}",
                ttt,
                speed,
                "-" if r["p_improve"] is None else f"{r['p_improve']:.2f} {ci(r['p_improve_ci'])}",
                _p(r.get("p_adjusted")),
                num(r["logrank_p"], ".3f"),
                ", ".join(flags),
            ]
        )
    return out


COLUMNS = [
    "target", "strategy", "seeds", "n_eff", "N_pre (N_pre/K)", "P(0)", "jumpstart [CI]", "final IQM [CI]", "AUC IQM [CI]",
    "AUC ratio [CI]", "reached k/n", "KM median TTT [CI]", "speed-up", "P(improve) [CI]", "p (Holm)", "log-rank p",
    "flags",
]  # fmt: skip
