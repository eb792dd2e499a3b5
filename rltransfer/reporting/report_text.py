"""report.md's text: the result tables (Markdown and the terminal's), the claims, the pre-trainings and the
protocol, each from the summary's rows (:mod:`rltransfer.reporting.report` assembles them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rltransfer.stats import bootstrap, significance
from rltransfer.stats.summary import BASELINE, COLUMNS, table_rows

NOT_RECORDED = "not recorded"


def _code_line(summary: Mapping[str, Any]) -> str | None:
    """The protocol's line on the code: which rltransfer revisions made the runs and the kept
    pre-trainings (a resumed grid may hold several), and the libraries' versions."""
    revs = summary.get("code_revisions") or {}
    parts = [
        f"{what} " + ", ".join(f"{rev if rev == NOT_RECORDED else f'`{rev}`'} {n}" for rev, n in by.items())
        for what, by in (("runs", revs.get("runs")), ("kept pre-trainings", revs.get("pretrainings")))
        if by
    ]
    v = summary.get("versions") or {}
    names = (("python", "Python"), ("torch", "torch"), ("stable-baselines3", "SB3"), ("gymnasium", "Gymnasium"))
    libs = ", ".join(f"{label} {v[k]}" for k, label in names if k in v)
    if libs:
        parts.append(libs)
    return "- code (rltransfer's git commit, +dirty: with uncommitted changes): " + "; ".join(parts) if parts else None


HEAD_INIT = {
    "fresh": "fresh (random) target heads",
    "mean": "the mean of the source heads",
    "nearest": "the head of the source task nearest by context",
    "probe": "the source head that did best on the target when each was run unchanged for {n} episode(s) before training "
    "(its steps charged to the run)",
}


def _value(v: Any) -> str:
    return "[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    full = [r for r in rows if "auc_iqm" in r]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(full)]
    return "\n".join(lines)


def pretraining_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each transfer strategy's runs by the pre-training they started from (empty with one)."""
    split = [r for r in rows if r.get("by_pretrain")]
    if not split:
        return ""
    lines = [
        "| strategy | pre-training | seeds | P(0) mean | final mean | AUC mean | reached | KM median TTT |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in split:
        for g in r["by_pretrain"]:
            ttt = "- (censored)" if g["ttt_median"] is None else f"{g['ttt_median']:,.0f}"
            lines.append(
                f"| {r['strategy']} | {g['pretrain_seed']} | {', '.join(map(str, g['seeds']))} | {g['p0_mean']:.2f} "
                f"| {g['final_mean']:.2f} | {g['auc_mean']:.2f} | {g['reached']}/{len(g['seeds'])} | {ttt} |"
            )
    return "\n".join(lines)


def sources_table(pretrainings: Sequence[Mapping[str, Any]], sources: Sequence[str] = ()) -> str:
    """Each pre-training seed's score on every source task at the end of pre-training, the sources in
    ``sources``' order (the config's; the JSON the scores are read back from sorts them)."""
    scored = pretrainings[0]["scores"]
    names = [n for n in sources if n in scored] + sorted(n for n in scored if n not in sources)
    lines = ["| seed | " + " | ".join(names) + " | transferred from |", "|---|" + "---|" * (len(names) + 1)]
    for p in pretrainings:
        scores = " | ".join(f"{p['scores'][n]:.2f}" for n in names)
        lines.append(f"| {p['seed']} | {scores} | {'yes' if p['kept'] else 'no (rejected)'} |")
    return "\n".join(lines)


def sources_text(summary: Mapping[str, Any]) -> str:
    gate = summary["protocol"].get("min_source_score")
    text = "Score s on each source task at the end of pre-training (the final evaluation, 1.0 at the task's threshold)"
    if gate is None:
        return text + "; no gate (`pretrain.min_source_score`): every pre-training is transferred from."
    rejected = [p["seed"] for p in summary["pretrainings"] if not p["kept"]]
    return (
        text + f"; the gate `pretrain.min_source_score: {gate:g}` keeps a pre-training only where every source "
        f"scores at least {gate:g}. Rejected: {', '.join(map(str, rejected)) or 'none'}; N_pre counts their steps."
    )


def claims_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the target's table may claim, in words: the correction, and where its runs are too few."""
    compared = [r for r in rows if r["strategy"] != BASELINE and r.get("claim")]
    if not compared:
        return "No strategy was compared with scratch."
    m = compared[0]["comparisons"]
    text = (
        f"Claims: {m} strateg{'ies' if m != 1 else 'y'} compared with scratch, Holm-corrected over {m}; "
        "p (Holm) is the adjusted one-sided p of 'better than scratch' on AUC."
    )
    smoke = [
        f"{r['strategy']} ({n})"
        for r in compared
        if (n := min(r["n_eff"], r["n_eff_scratch"])) < significance.SMOKE_UNITS
    ]
    if smoke:
        text += (
            f" With n_eff below {significance.SMOKE_UNITS} on a side a comparison is a smoke test, not a claim: "
            f"{', '.join(smoke)}."
        )
    pre = max(r.get("pretrainings") or 0 for r in compared)
    if pre == 1:
        text += " All transferred runs start from one pre-training: a result of that pre-training."
    return text


def text_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A compact table for the terminal."""
    names = ["target", "strategy", "seeds", "n_eff", "P(0)", "AUC IQM [CI]", "AUC ratio [CI]", "reached k/n",
             "KM median TTT [CI]", "speed-up", "P(improve) [CI]", "p (Holm)", "flags"]  # fmt: skip
    cols = [COLUMNS.index(n) for n in names]
    full = [r for r in rows if "auc_iqm" in r]
    data = [[COLUMNS[i] for i in cols]] + [[cells[i] for i in cols] for cells in table_rows(full)]
    widths = [max(len(row[i]) for row in data) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in data)


def _starts_from(p: Mapping[str, Any]) -> str:
    n = p.get("pretrain_seeds", 1)
    kept = p.get("pretrain_kept") or list(range(n))
    if kept != list(range(n)):
        return (
            f"; transfer seed i starts from the (i mod {n})-th pre-training kept by the gate "
            f"(seeds {', '.join(map(str, kept))}); N_pre is per kept pre-training, rejected ones' steps shared among them"
        )
    return f"; transfer seed i starts from pre-training i mod {n}" if n > 1 else ""


def protocol_text(summary: Mapping[str, Any]) -> str:
    p = summary["protocol"]
    lines = [
        f"- evaluation: {'deterministic' if p.get('deterministic') else 'stochastic'} policy, {p.get('episodes')} episodes "
        f"every {p.get('every'):,} target steps and at 0 and B; reset seeds {p.get('eval_seed')}+i, shared by every run",
        f"- budget B = {p.get('budget'):,} target steps per run; seeds per (target, strategy): {p.get('seeds')}",
        f"- pre-training: N_pre = {summary['pretrain_steps']:,} source steps ({p.get('pretrain_seeds', 1)} seed(s)); "
        f"amortised over K = {len(summary['targets'])} target(s)" + _starts_from(p),
        "- score s = (R - R_random) / (tau - R_random); R_random: uniform random policy, 100 episodes, measured",
        f"- CIs: 95% bootstrap, {bootstrap.N_RESAMPLES:,} seeded resamples; over seeds (BCa for n >= 10, else "
        "percentile), or where runs start from several pre-trainings two-stage (pre-trainings, then seeds within; "
        "percentile); TTT: two consecutive evaluations with s >= 1, right-censored at B, Kaplan-Meier; P(improve) on "
        "AUC (Mann-Whitney form), an effect size; log-rank one-sided, over every run (copies too): a description, "
        "never a claim",
        "- claims: exact one-sided rank-sum (Mann-Whitney) permutation test of AUC against scratch, stratified by "
        f"pre-training, Holm-corrected over the strategies of a target, adjusted p < {significance.ALPHA} "
        "(either direction: 'significant' or 'NEGATIVE TRANSFER'); n_eff counts once the runs of one pre-training "
        f"that score the same at every evaluation (to {significance.SAME_SCORE:g}; wherever a probe's cost placed the first), "
        "and the runs from one bundle of a strategy that trains nothing, evaluated deterministically without a "
        "probe (one agent on any CPU), with their mean AUC; "
        f"below n_eff {significance.MIN_UNITS} on a side: no verdict",
    ]
    tr = p.get("transfer")
    if tr:
        head = HEAD_INIT.get(tr["head_init"], tr["head_init"]).format(n=tr.get("probe_episodes"))
        line = f"- target heads (where each task has its own; transfer.head_init: {tr['head_init']}): {head}"
        if tr["strategy_params"]:
            line += "; strategy parameters: " + "; ".join(
                f"{name} " + ", ".join(f"{k}={_value(v)}" for k, v in ps.items())
                for name, ps in tr["strategy_params"].items()
            )
        lines.append(line)
    copied = [
        f"pre-training seed {t['seed']} from `{t['copied_from']}`"
        for t in summary.get("pretrainings", ())
        if t.get("copied_from")
    ] + [f"{n} run(s) from `{where}`" for where, n in sorted(summary.get("copied_runs", {}).items())]
    if copied:
        lines.append(
            "- copied from other experiments under the output directory (runner.reuse_other_experiments; a "
            "pre-training of the same pre-training config (pretraining_hash); a run that loads nothing from a bundle, of the same agent, "
            "target, seed, budget and evaluation): " + "; ".join(copied)
        )
    for task, tb in p.get("tasks", {}).items():
        lines.append(f"- {task}: threshold tau = {tb['threshold']:g}, R_random = {tb['random_return']:.1f}")
    code = _code_line(summary)
    if code:
        lines.append(code)
    return "\n".join(lines)
