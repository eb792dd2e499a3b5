"""Sample-efficiency metrics and their statistics, as docs/evaluation.md defines them.

Pure numpy/scipy: no torch. Per-run metrics work on one normalised learning curve; the
aggregates work on one value per seed. rliable's definitions (IQM, probability of improvement)
are computed with scipy.stats because rliable 1.2.0 does not import beside pandas 3.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

CONFIDENCE = 0.95


# -- normalisation -------------------------------------------------------------------------------
def normalise(returns: np.ndarray | float, random_return: float, threshold: float) -> np.ndarray:
    """``(R - R_random) / (tau - R_random)``: 0 is a uniformly random policy, 1 the threshold.

    Valid for negative returns too (Acrobot, Pendulum): only the gap to random is divided.
    """
    if threshold == random_return:
        raise ValueError(f"threshold {threshold} equals the random return: the normalised score is undefined")
    return (np.asarray(returns, dtype=float) - random_return) / (threshold - random_return)


# -- per run -------------------------------------------------------------------------------------
def auc(steps: ArrayLike, scores: ArrayLike, budget: float) -> float:
    """``(1/B) * sum_k (t_k - t_{k-1}) * (P(t_k) + P(t_{k-1})) / 2``: trapezoid area per step."""
    t, p = np.asarray(steps, float), np.asarray(scores, float)
    return float(np.sum(np.diff(t) * (p[1:] + p[:-1]) / 2.0) / budget)


def final(steps: ArrayLike, scores: ArrayLike, budget: float) -> float:
    """Mean of the evaluations in the last 10% of the budget (``t >= 0.9 B``)."""
    t, p = np.asarray(steps, float), np.asarray(scores, float)
    mask = t >= 0.9 * budget
    return float(p[mask].mean() if mask.any() else p[-1])


def time_to_threshold(steps: ArrayLike, scores: ArrayLike, budget: float) -> tuple[float, bool]:
    """First ``t_k`` with ``P >= 1`` at two consecutive evaluations, and whether it was reached.

    A run that never gets there is right-censored at the budget: ``(B, False)``.
    """
    p = np.asarray(scores, float)
    for k in range(len(p) - 1):
        if p[k] >= 1.0 and p[k + 1] >= 1.0:
            return float(np.asarray(steps, float)[k]), True
    return float(budget), False


# -- aggregates over seeds ------------------------------------------------------------------------
def iqm(x: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy.stats.trim_mean, 0.25)."""
    return float(stats.trim_mean(np.asarray(x, float), 0.25))


def iqm_along(x: ArrayLike, axis: int) -> np.ndarray:
    """:func:`iqm` along ``axis`` (of each evaluation over runs, say)."""
    return np.asarray(stats.trim_mean(np.asarray(x, float), 0.25, axis=axis))


def mean(x: ArrayLike) -> float:
    return float(np.mean(np.asarray(x, float)))


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs (the Mann-Whitney U / (n m) form of rliable)."""
    a, b = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))


def auc_ratio(a: ArrayLike, b: ArrayLike) -> float:
    """IQM of ``a`` over IQM of ``b`` (NaN when ``b``'s IQM is not positive: a ratio would mislead)."""
    den = iqm(b)
    return iqm(a) / den if den > 0 else float("nan")


# -- time to threshold (survival) -----------------------------------------------------------------
@dataclass
class KaplanMeier:
    """Kaplan-Meier estimate of the time to threshold, with right-censoring at the budget."""

    times: np.ndarray
    survival: np.ndarray
    """P(not yet reached) just after each time."""
    low: np.ndarray
    high: np.ndarray
    budget: float

    def median(self) -> float | None:
        return _first_at_or_below(self.times, self.survival, 0.5)

    def median_ci(self) -> tuple[float | None, float | None]:
        # The median's CI: where the survival CI band crosses 0.5 (Brookmeyer-Crowley style).
        return _first_at_or_below(self.times, self.low, 0.5), _first_at_or_below(self.times, self.high, 0.5)

    def restricted_mean(self) -> float:
        """Mean time to threshold restricted to the budget: the area under S(t) on [0, B]."""
        t = np.concatenate([[0.0], self.times[self.times < self.budget], [self.budget]])
        s = np.concatenate([[1.0], self.survival[self.times < self.budget]])
        return float(np.sum(np.diff(t) * s))


def _first_at_or_below(times: np.ndarray, curve: np.ndarray, level: float) -> float | None:
    idx = np.flatnonzero(curve <= level + 1e-12)
    return float(times[idx[0]]) if len(idx) else None


def kaplan_meier(times: ArrayLike, reached: ArrayLike, budget: float) -> KaplanMeier:
    """KM estimate (scipy.stats.ecdf on CensoredData) of the time to threshold."""
    t_all, hit = np.asarray(times, float), np.asarray(reached, bool)
    if not hit.any():
        t = np.array([budget])
        one = np.ones(1)
        return KaplanMeier(t, one, one, one, budget)
    data = stats.CensoredData(uncensored=t_all[hit], right=t_all[~hit])
    sf = stats.ecdf(data).sf
    with warnings.catch_warnings():  # undefined where S(t) = 0 or 1: the band is clipped there
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = sf.confidence_interval(CONFIDENCE)
    t = sf.quantiles
    s = sf.probabilities
    # Where the band is undefined (S = 0 or 1) it collapses: lower bound 0, upper bound S itself.
    low = np.nan_to_num(np.asarray(ci.low.evaluate(t), float), nan=0.0)
    high = np.asarray(ci.high.evaluate(t), float)
    high = np.where(np.isnan(high), s, high)
    return KaplanMeier(t, s, low, high, budget)


def logrank_sooner(times: ArrayLike, reached: ArrayLike, base_times: ArrayLike, base_reached: ArrayLike) -> float:
    """p-value of the log-rank test that the first group reaches the threshold sooner than the base."""
    r, b = np.asarray(reached, bool), np.asarray(base_reached, bool)
    if not r.any() and not b.any():
        return 1.0
    x = stats.CensoredData(uncensored=np.asarray(times, float)[r], right=np.asarray(times, float)[~r])
    y = stats.CensoredData(uncensored=np.asarray(base_times, float)[b], right=np.asarray(base_times, float)[~b])
    # 'greater': the first group's rate of reaching the threshold is higher.
    return float(stats.logrank(x, y, alternative="greater").pvalue)
