"""Bootstrap confidence intervals over seeds, and over pre-trainings where runs are nested in them.

A run that transferred from pre-training p shares p with the other runs from it: its seeds vary the
target training, not the bundle. With one pre-training (or none: scratch) the runs are one sample and
the interval is scipy's (BCa for n >= 10, percentile below). With several, it is a two-stage bootstrap:
each resample draws pre-trainings with replacement, then runs with replacement within each drawn
pre-training (percentile interval). Every interval is seeded, so a re-render is byte-identical.

Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 50_000
"""Resamples per interval: enough that a bound moves by less than 1% between bootstrap seeds (tested;
20,000 moved an AUC-ratio bound by 1.0% over 8 seeds, 50,000 by 0.7%)."""
BAND_RESAMPLES = 10_000
"""Resamples per point of a pictured learning-curve band (a picture, not a figure quoted)."""

Values = Sequence[float] | np.ndarray
Groups = Sequence[Values]
"""One side of a comparison: its values grouped by the pre-training they started from."""


# -- row-wise statistics over resamples (NaN marks an empty slot of a shorter resample) -------------
def iqm_rows(a: np.ndarray) -> np.ndarray:
    """The interquartile mean of each row, ignoring NaN: scipy.stats.trim_mean(row, 0.25) of its values."""
    a = np.sort(np.asarray(a, float), axis=-1)  # NaN sorts last
    count = np.sum(~np.isnan(a), axis=-1)
    cut = (0.25 * count).astype(int)  # trim_mean cuts int(proportion * n) from each end
    csum = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(np.nan_to_num(a), axis=-1)], axis=-1)
    hi = np.take_along_axis(csum, (count - cut)[..., None], axis=-1)[..., 0]
    lo = np.take_along_axis(csum, cut[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hi - lo) / (count - 2 * cut)


def mean_rows(a: np.ndarray) -> np.ndarray:
    return np.nanmean(np.asarray(a, float), axis=-1)


def improvement_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) of each row pair, over the pairs of values present (a NaN compares false)."""
    present = (~np.isnan(x)).sum(axis=-1) * (~np.isnan(y)).sum(axis=-1)
    wins = np.empty(x.shape[0])
    for start in range(0, x.shape[0], 5_000):  # in chunks: rows x n x m comparisons at once
        xx, yy = x[start : start + 5_000, :, None], y[start : start + 5_000, None, :]
        wins[start : start + 5_000] = (xx > yy).sum(axis=(-1, -2)) + 0.5 * (xx == yy).sum(axis=(-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / present


def iqm_ratio_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """IQM of x over IQM of y per row; NaN where y's IQM is not positive (a ratio would mislead)."""
    den = iqm_rows(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, iqm_rows(x) / np.where(den > 0, den, 1.0), np.nan)


# -- resampling -------------------------------------------------------------------------------------
def resample(groups: Groups, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """``n`` two-stage resamples of ``groups`` as rows, NaN-padded: pre-trainings drawn with replacement,
    then within each drawn pre-training as many runs as it has, with replacement. One group: the
    ordinary bootstrap. ``n``: :data:`N_RESAMPLES` by default."""
    n = N_RESAMPLES if n is None else n
    sizes = np.array([len(g) for g in groups])
    width = int(sizes.max())
    table = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        table[i, : len(g)] = g
    picked = np.zeros((n, 1), dtype=int) if len(groups) == 1 else rng.integers(0, len(groups), (n, len(groups)))
    within = np.floor(rng.random((n, picked.shape[1], width)) * sizes[picked][..., None]).astype(int)
    values = table[picked[..., None], within]
    values[np.arange(width) >= sizes[picked][..., None]] = np.nan
    return values.reshape(n, -1)


def _percentile(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    alpha = (1 - CONFIDENCE) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def _flat(groups: Groups) -> np.ndarray:
    return np.concatenate([np.asarray(g, float) for g in groups]) if len(groups) else np.array([])


def method(groups: Groups) -> str:
    """How :func:`interval` computes the CI of ``groups``."""
    x = _flat(groups)
    if len(x) < 2 or np.ptp(x) == 0:
        return "degenerate"
    if len([g for g in groups if len(g)]) > 1:
        return "two-stage percentile"
    return "BCa" if len(x) >= 10 else "percentile"


def interval(
    groups: Groups, statistic: Callable[[np.ndarray], np.ndarray], seed: int = 0, resamples: int | None = None
) -> tuple[float, float, str]:
    """95% CI of ``statistic`` (row-wise, :func:`iqm_rows` or :func:`mean_rows`) over ``groups``.

    Returns ``(low, high, method)``; ``method`` as :func:`method` says ("BCa" falls back to
    "percentile" where scipy cannot compute it, on a nearly constant sample).
    :param resamples: :data:`N_RESAMPLES` by default.
    """
    n = N_RESAMPLES if resamples is None else resamples
    arrays = [a for g in groups if len(a := np.asarray(g, float))]
    x = _flat(arrays)
    how = method(arrays)
    if how == "degenerate":
        v = float(statistic(x[None, :])[0]) if len(x) else float("nan")
        return v, v, how
    if how == "two-stage percentile":
        low, high = _percentile(statistic(resample(groups, np.random.default_rng(seed), n)))
        return low, high, how
    for m in (how, "percentile"):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap(
                (x,), lambda s, axis: statistic(np.moveaxis(s, axis, -1)), confidence_level=CONFIDENCE,
                n_resamples=n, method=m, rng=np.random.default_rng(seed), vectorized=True,
            )  # fmt: skip
        low, high = res.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high), m
    return float("nan"), float("nan"), "failed"


def two_sample_interval(
    a: Groups, b: Groups, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], seed: int = 0
) -> tuple[float, float]:
    """95% percentile CI of ``statistic(a, b)`` (row-wise), resampling both sides, each by its groups."""
    rng = np.random.default_rng(seed)
    ra = resample([g for g in a if len(g)], rng)
    rb = resample([g for g in b if len(g)], rng)
    return _percentile(statistic(ra, rb))
