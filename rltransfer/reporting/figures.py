"""The report's pictures and TensorBoard aggregates: each strategy's IQM learning curve with its 95% band
(``curves_<target>.png`` and ``tb/<target>/iqm/``), and each strategy's Kaplan-Meier time to threshold
(``ttt_<target>.png``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.records.run_result import FailedRun, FinishedRun, RunMetrics
from rltransfer.stats import bootstrap, metrics
from rltransfer.stats.summary import BASELINE
from rltransfer.store import layout


def curves_of(
    results: Sequence[FinishedRun | FailedRun], target: str
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per strategy: the evaluation steps, the runs' scores (one row a run) and each run's pre-training."""
    out = {}
    by: dict[str, list[FinishedRun]] = defaultdict(list)
    for r in results:
        if r.target == target and isinstance(r, FinishedRun):
            by[r.strategy].append(r)
    for strategy, runs in by.items():
        lengths = {len(r.curve.step) for r in runs}
        if len(lengths) != 1:
            continue
        pre = np.array([0 if strategy == BASELINE else r.pretrain_seed for r in runs])
        out[strategy] = (np.array(runs[0].curve.step), np.array([r.curve.score for r in runs]), pre)
    return out


Band = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]
"""A strategy's learning curve over its runs: steps, IQM score, the 95% band's low and high, runs."""


def iqm_bands(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Band]:
    """Each strategy's IQM curve with its 95% band at every evaluation (pre-trainings, then runs, resampled:
    :func:`rltransfer.stats.bootstrap.interval`), for the pictures and TensorBoard."""
    out = {}
    for strategy, (steps, scores, pre) in curves.items():
        band = np.array(
            [
                bootstrap.interval(
                    [scores[pre == p, k] for p in np.unique(pre)],
                    bootstrap.iqm_rows,
                    resamples=bootstrap.BAND_RESAMPLES,
                )[:2]
                for k in range(scores.shape[1])
            ]
        )
        out[strategy] = (steps, metrics.iqm_along(scores, axis=0), band[:, 0], band[:, 1], len(scores))
    return out


def plot_curves(path: Path, target: str, bands: Mapping[str, Band]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for strategy, (steps, centre, low, high, n) in bands.items():
        style = {"color": "black", "lw": 2.2, "ls": "--"} if strategy == BASELINE else {"lw": 1.6}
        (line,) = ax.plot(steps, centre, label=f"{strategy} (n={n})", **style)
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("target environment steps")
    ax.set_ylabel("normalised score (IQM, 95% CI)")
    ax.set_title(f"{target}: learning curves")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_ttt(path: Path, target: str, results: Sequence[FinishedRun | FailedRun], budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    by: dict[str, list[RunMetrics]] = defaultdict(list)
    for r in results:
        if r.target == target and isinstance(r, FinishedRun):
            by[r.strategy].append(r.metrics)
    for strategy, ms in by.items():
        km = metrics.kaplan_meier([m.ttt for m in ms], [m.reached for m in ms], budget)
        t = np.concatenate([[0.0], km.times, [budget]])
        reached = 1.0 - np.concatenate([[1.0], km.survival, [km.survival[-1]]])
        style = {"color": "black", "lw": 2.2, "ls": "--"} if strategy == BASELINE else {"lw": 1.6}
        ax.step(t, reached, where="post", label=strategy, **style)
    ax.set_xlim(0, budget)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("target environment steps")
    ax.set_ylabel("fraction of runs at threshold (Kaplan-Meier)")
    ax.set_title(f"{target}: time to threshold")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_tensorboard_aggregates(run_dir: Path, bands: Mapping[str, Mapping[str, Band]]) -> None:
    """``tb/<target>/iqm/<strategy>``: each strategy's IQM score curve over seeds under its runs' own tag
    (``eval/<target>/score``: one chart holds a target's runs and its strategies' IQMs), and again with the
    bounds of its 95% band as the report's pictures draw it (``iqm/<target>/score``, ``ci_low``,
    ``ci_high``: tags of the aggregates only), for a custom-scalars layout with one margin chart per target:
    every strategy's IQM and its band, scratch included."""
    from torch.utils.tensorboard import SummaryWriter

    from rltransfer.execution.job import eval_tag

    charts: dict[str, dict[str, list[Any]]] = {"IQM score, 95% CI (rltransfer)": {}}
    for target, by_strategy in bands.items():
        tag = eval_tag(target)
        for strategy, (steps, centre, low, high, _) in by_strategy.items():
            out = layout.iqm_tb(run_dir, target, strategy)
            if out.exists():
                for f in out.glob("events.out.tfevents.*"):
                    f.unlink()
            writer = SummaryWriter(str(out))
            for step, value, lo, hi in zip(steps, centre, low, high):
                writer.add_scalar(f"{tag}/score", float(value), int(step))
                writer.add_scalar(f"iqm/{target}/score", float(value), int(step))
                writer.add_scalar(f"iqm/{target}/ci_low", float(lo), int(step))
                writer.add_scalar(f"iqm/{target}/ci_high", float(hi), int(step))
            writer.flush()
            writer.close()
        charts["IQM score, 95% CI (rltransfer)"][target] = [
            "Margin",
            [f"iqm/{target}/score", f"iqm/{target}/ci_low", f"iqm/{target}/ci_high"],
        ]
    out = layout.tb_root(run_dir) / "layout"  # the custom-scalars layout, a run of its own
    for f in out.glob("events.out.tfevents.*"):
        f.unlink()
    writer = SummaryWriter(str(out))
    writer.add_custom_scalars(charts)
    writer.flush()
    writer.close()
