"""From run results to the comparison table: per (target, strategy) statistics versus scratch.

Pure numpy/scipy (no torch): :func:`summarise` turns result dicts into the ``rows`` of
``summary.json`` (EVALUATION.md lists the fields).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rltransfer import metrics

BASELINE = "scratch"


def _ci(values: Sequence[float], statistic, seed: int) -> list[float]:
    low, high, _ = metrics.bootstrap_ci(values, statistic, seed)
    return [low, high]


def _fmt_steps(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def row_for(
    target: str,
    split: str,
    strategy: str,
    runs: Sequence[Mapping[str, Any]],
    scratch: Sequence[Mapping[str, Any]],
    budget: int,
    pretrain_steps: int,
    n_targets: int,
    failed: int,
    seed: int = 0,
) -> dict[str, Any]:
    """One row of the table: the strategy's runs against scratch's (paired by seed)."""
    m = {k: np.array([r["metrics"][k] for r in runs], dtype=float) for k in ("p0", "final", "auc", "ttt")}
    reached = np.array([r["metrics"]["reached"] for r in runs], dtype=bool)
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
        "final_iqm_ci": _ci(m["final"], metrics.iqm, seed),
        "final_mean": float(m["final"].mean()),
        "final_mean_ci": _ci(m["final"], metrics.mean, seed),
        "auc_iqm": metrics.iqm(m["auc"]),
        "auc_iqm_ci": _ci(m["auc"], metrics.iqm, seed),
        "auc_mean": float(m["auc"].mean()),
        "auc_mean_ci": _ci(m["auc"], metrics.mean, seed),
        "ci_method": metrics.bootstrap_ci(m["auc"], metrics.iqm, seed)[2],
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
        "significant": False,
        "negative_transfer": False,
    }
    if strategy == BASELINE or not scratch:
        return row
    s = {k: np.array([r["metrics"][k] for r in scratch], dtype=float) for k in ("p0", "auc", "ttt")}
    s_reached = np.array([r["metrics"]["reached"] for r in scratch], dtype=bool)
    # Jumpstart: P_transfer(0) - P_scratch(0), per seed pair.
    by_seed = {r["seed"]: r["metrics"]["p0"] for r in scratch}
    pairs = [r["metrics"]["p0"] - by_seed[r["seed"]] for r in runs if r["seed"] in by_seed]
    if pairs:
        row["jumpstart"] = float(np.mean(pairs))
        row["jumpstart_ci"] = _ci(pairs, metrics.mean, seed)
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
        row["auc_ratio_ci"] = list(metrics.two_sample_ci(m["auc"], s["auc"], metrics.auc_ratio, seed))
        row["negative_transfer"] = bool(row["auc_ratio_ci"][1] < 1.0)
    row["p_improve"] = metrics.probability_of_improvement(m["auc"], s["auc"])
    row["p_improve_ci"] = list(metrics.two_sample_ci(m["auc"], s["auc"], metrics.probability_of_improvement, seed))
    row["significant"] = bool(row["p_improve_ci"][0] > 0.5)
    row["logrank_p"] = metrics.logrank_sooner(m["ttt"], reached, s["ttt"], s_reached)
    return row


def by_pretraining(runs: Sequence[Mapping[str, Any]], budget: int) -> list[dict[str, Any]] | None:
    """The strategy's runs split by the pre-training they started from (``pretrain.seeds`` > 1), or
    None when they share one.

    Runs that start from the same pre-training are not independent: the row's confidence intervals
    resample transfer seeds and cannot show how much a result owes to one pre-training. These groups
    (3 or 4 runs each with 10 seeds over 3 pre-trainings) do; they are described by their means and
    Kaplan-Meier median, not given confidence intervals of their own.
    """
    groups: dict[int, list] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        groups.setdefault(int(r.get("pretrain_seed", 0)), []).append(r)
    if len(groups) < 2:
        return None
    out = []
    for p, group in sorted(groups.items()):
        m = {k: np.array([r["metrics"][k] for r in group], dtype=float) for k in ("p0", "final", "auc", "ttt")}
        reached = np.array([r["metrics"]["reached"] for r in group], dtype=bool)
        out.append(
            {
                "pretrain_seed": p,
                "seeds": [int(r["seed"]) for r in group],
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


def verdict(rows: Sequence[Mapping[str, Any]]) -> str:
    """One honest line per target: the best strategy and by how much, or that nothing helps."""
    others = [r for r in rows if r["strategy"] != BASELINE and r["p_improve"] is not None]
    if not others:
        return "no transfer strategy ran"
    best = max(others, key=lambda r: (r["significant"], _speed_rank(r), r["auc_iqm"]))
    lo, hi = best["p_improve_ci"]
    pi = f"P(improve)={best['p_improve']:.2f} [{lo:.2f}, {hi:.2f}]"
    if best["speedup_to_threshold"] is not None:
        speed = f"{best['speedup_to_threshold']:.1f}x faster to threshold than scratch"
    else:
        speed = best["speedup_note"] or "no speed-up measurable"
    if not best["significant"]:
        return f"no strategy beats scratch significantly (closest: {best['strategy']}, {speed}, {pi})"
    tied = [r["strategy"] for r in others if r is not best and _alike(r, best)]
    alike = f" ({', '.join(tied)} alike: the same time to threshold, AUC IQM CIs overlapping)" if tied else ""
    return f"best: {best['strategy']}{alike}, {speed}, {pi}"


def _alike(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether the ranking cannot tell ``a`` from ``b``: both significant, the same Kaplan-Meier
    median time to threshold, and overlapping AUC IQM intervals (the point estimate alone decided)."""
    (alo, ahi), (blo, bhi) = a["auc_iqm_ci"], b["auc_iqm_ci"]
    return a["significant"] and b["significant"] and a["ttt_median"] == b["ttt_median"] and alo <= bhi and blo <= ahi


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
        if r["negative_transfer"]:
            flags.append("NEGATIVE TRANSFER")
        if r["significant"]:
            flags.append("significant")
        if r["failed_runs"]:
            flags.append(f"{r['failed_runs']} failed")
        out.append(
            [
                r["target"],
                r["strategy"],
                str(r["seeds"]),
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
                num(r["logrank_p"], ".3f"),
                ", ".join(flags),
            ]
        )
    return out


COLUMNS = [
    "target", "strategy", "seeds", "N_pre (N_pre/K)", "P(0)", "jumpstart [CI]", "final IQM [CI]", "AUC IQM [CI]",
    "AUC ratio [CI]", "reached k/n", "KM median TTT [CI]", "speed-up", "P(improve) [CI]", "log-rank p", "flags",
]  # fmt: skip
