"""Which claims a comparison with scratch may make: a valid test, over the runs that really differ.

- **Units.** Runs that started from the same pre-training and score the same at every evaluation (to
  :data:`SAME_SCORE`) are one agent (a deterministic ``zero_shot`` evaluated from one bundle gives as many
  copies as it has seeds): they count once, with the mean of their AUCs. Where a head-choosing probe starts
  the runs, its cost (charged, so that it varies with the seed) moves their curves along the step axis
  without making them other agents: the steps do not enter a run's identity. The runs of a strategy that
  trains nothing, evaluated deterministically, are one agent a bundle by construction (where every component
  was loaded): on another kind of CPU a copy of it can score apart, its episodes diverging from a rounding
  (LunarLander-continuous's zero_shot, extended on an AMD EPYC), and is counted with the others all the same.
  ``n_eff`` is the number of units left.
- **Test.** An exact one-sided rank-sum (Mann-Whitney) permutation test of AUC, strategy against scratch,
  stratified by pre-training: the strategy's units from pre-training p are compared with the scratch
  units of the same seeds (seed i starts from the (i mod P)-th pre-training), and the statistic is the
  sum over strata of the strategy's rank sum within its stratum. Its null distribution is computed
  exactly (ties included) by counting subsets, so the test keeps its level at any n. With one
  pre-training it is the exact Mann-Whitney test.
- **Multiplicity.** Holm's step-down correction over the transfer strategies compared on one target,
  separately for each direction: ``p_adjusted`` < 0.05 is "significant", ``p_adjusted_worse`` < 0.05
  is negative transfer (scratch better), whatever the sign of scratch's AUC.
- **Too few.** With fewer than :data:`MIN_UNITS` units on either side no verdict is given, whatever the
  p-value.

Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from rltransfer.records.run_result import FinishedRun

ALPHA = 0.05
MIN_UNITS = 4
"""Below this many independent runs on either side, a comparison gives no verdict."""
SMOKE_UNITS = 10
"""Below this many independent runs, a report calls its comparison a smoke test, not a claim."""
HEADLINE_SEEDS = 20
"""A headline claim rests on this many seeds a side (10 is the default: a claim's)."""
HEADLINE_PRETRAININGS = 3
"""A headline claim rests on at least this many pre-trainings (one can decide a result); a claim from fewer
says how many beside it."""


def pretrainings_text(n: int) -> str:
    """``one pre-training``, ``2 pre-trainings``: what a claim from fewer than :data:`HEADLINE_PRETRAININGS`
    says beside it."""
    return "one pre-training" if n == 1 else f"{n} pre-trainings"


TOO_FEW = "too few independent runs"
SIGNIFICANT = "significant"
NEGATIVE = "negative transfer"
NOT_SIGNIFICANT = "not significant"


SAME_SCORE = 1e-6
"""Runs whose scores (0 the random policy, 1 the threshold) differ by no more than this at every evaluation are
one agent's. A copy evaluated on another kind of CPU scores a few units in the last place apart (torch's and
MKL's kernels round differently: 7e-10 for Pendulum's ``zero_shot``, made on an Intel Xeon and an AMD EPYC),
where two agents that learnt apart differ by orders of magnitude more at some evaluation."""


def _same_agent(a: FinishedRun, b: FinishedRun) -> bool:
    """Whether two runs are the same agent's: their scores, evaluation by evaluation, within
    :data:`SAME_SCORE`. Not the steps those evaluations were made at: a probe's cost, which varies with the
    seed, places a copy's first evaluation (and so its AUC) a little apart from another copy's without making
    it another agent."""
    sa, sb = a.curve.score, b.curve.score
    return len(sa) == len(sb) and bool(np.allclose(sa, sb, rtol=0.0, atol=SAME_SCORE))


def _bundle_agent(run: FinishedRun) -> str | None:
    """The agent a run of a strategy that trains nothing evaluated, where its bundle alone made it (every
    component loaded): the bundle's checksum. None where a component started fresh (from the seed)."""
    if run.bundle_sha256 and all(status == "loaded" for status in run.components.values()):
        return run.bundle_sha256
    return None


def units(
    runs: Sequence[FinishedRun], strata: Mapping[int, int] | None = None, seed_free: bool = False
) -> dict[int, np.ndarray]:
    """The AUCs of the independent units among ``runs``, by stratum (pre-training).

    :param strata: seed -> stratum; a run whose seed it lacks uses its own ``pretrain_seed``.
    :param seed_free: the runs are of a strategy that trains nothing, evaluated deterministically (the seed
        touches neither the agent nor its evaluation): runs from one bundle with every component loaded
        (:func:`_bundle_agent`) are one agent, wherever they ran and whatever they scored.
    Runs of one stratum that score the same at every evaluation (:func:`_same_agent` of the unit's first run,
    in the order of the seeds) count once, with the mean of their AUCs.
    """
    seen: dict[int, list[tuple[FinishedRun, str | None, list[float]]]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        unit_list = seen.setdefault((strata or {}).get(r.seed, r.pretrain_seed), [])
        agent = _bundle_agent(r) if seed_free else None
        aucs = next(
            (aucs for first, a, aucs in unit_list if (agent is not None and a == agent) or _same_agent(first, r)),
            None,
        )
        if aucs is None:
            unit_list.append((r, agent, [r.metrics.auc]))
        else:
            aucs.append(r.metrics.auc)
    return {k: np.array([_mean(aucs) for _, _, aucs in v]) for k, v in sorted(seen.items())}


def _mean(values: list[float]) -> float:
    """The mean; of equal values, that value (no rounding: identical copies keep their AUC to the bit)."""
    return values[0] if len(set(values)) == 1 else math.fsum(values) / len(values)


def n_units(by_stratum: Mapping[int, np.ndarray]) -> int:
    return int(sum(len(v) for v in by_stratum.values()))


def _rank_sum_counts(doubled_ranks: np.ndarray, k: int) -> np.ndarray:
    """Number of ways to choose ``k`` of the values whose doubled sum is s, for every s (index s), as exact
    integers (Python ints in an object array: no overflow, no rounding).

    Counted in int64 where no count can overflow it (every count of j values chosen is at most C(n, j), and
    j is at most ``k``), about ten times faster than in Python ints and the same integers; in Python ints
    otherwise (more than about 60 values)."""
    total = int(doubled_ranks.sum())
    n = len(doubled_ranks)
    fits = math.comb(n, min(k, n // 2)) < 2**63
    counts = np.zeros((k + 1, total + 1), dtype=np.int64 if fits else object)
    counts[0, 0] = 1
    for r in doubled_ranks.tolist():
        counts[1:, r:] += counts[:-1, : total + 1 - r].copy()
    return counts[k].astype(object)


def rank_sum_test(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    """Exact one-sided p-values ``(greater, less)`` of the stratified rank-sum test of x against y.

    ``pairs``: per stratum, (x, y). Within each stratum the values are ranked together (mid-ranks for
    ties); the statistic is the sum over strata of x's rank sum; its permutation distribution (labels
    exchanged within strata) is counted exactly, in integers, and each p-value is one division of two
    integers: correctly rounded, so the same on every CPU (floating-point sums of the distribution round
    differently with each CPU's vector width, which moved the last digit of published p-values on another
    machine). ``greater``: x tends to be larger. None where no stratum has values on both sides.
    """
    dist = np.ones(1, dtype=object)
    observed = 0
    for x, y in pairs:
        if len(x) == 0 or len(y) == 0:
            continue
        doubled = np.rint(2 * stats.rankdata(np.concatenate([x, y]))).astype(int)
        observed += int(doubled[: len(x)].sum())
        dist = np.convolve(dist, _rank_sum_counts(doubled, len(x)))
    if len(dist) == 1:
        return None
    total = int(dist.sum())
    greater = min(1.0, int(dist[observed:].sum()) / total)
    less = min(1.0, int(dist[: observed + 1].sum()) / total)
    return greater, less


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted)."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


@dataclass(frozen=True)
class Comparison:
    """A strategy against scratch on one target, as the report states it."""

    n_eff: int
    n_eff_scratch: int
    pretrainings: int
    p_value: float | None
    """Exact one-sided p of 'strategy > scratch' on AUC (stratified by pre-training)."""
    p_adjusted: float | None
    """Holm-adjusted over the strategies compared on the target."""
    p_value_worse: float | None
    p_adjusted_worse: float | None
    comparisons: int
    claim: str
    """One of :data:`SIGNIFICANT`, :data:`NEGATIVE`, :data:`NOT_SIGNIFICANT`, :data:`TOO_FEW`."""

    @property
    def significant(self) -> bool:
        return self.claim == SIGNIFICANT

    @property
    def negative_transfer(self) -> bool:
        return self.claim == NEGATIVE

    def fields(self) -> dict[str, Any]:
        """The row fields of ``summary.json``."""
        return {
            "n_eff": self.n_eff,
            "n_eff_scratch": self.n_eff_scratch,
            "pretrainings": self.pretrainings,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "p_value_worse": self.p_value_worse,
            "p_adjusted_worse": self.p_adjusted_worse,
            "comparisons": self.comparisons,
            "claim": self.claim,
            "significant": self.significant,
            "negative_transfer": self.negative_transfer,
        }


def compare(
    strategies: Mapping[str, Sequence[FinishedRun]], scratch: Sequence[FinishedRun], seed_free: Collection[str] = ()
) -> dict[str, Comparison]:
    """Every transfer strategy of one target against scratch, Holm-corrected over the strategies.

    ``strategies``: name -> its finished runs. Every strategy with runs counts as a comparison, also where it has too few units for a
    verdict. ``seed_free``: the strategies whose runs' seeds touch neither agent nor evaluation (:func:`units`).
    """
    names = [s for s, runs in strategies.items() if runs]
    tests, sides = {}, {}
    for name in names:
        runs = strategies[name]
        strata = {r.seed: r.pretrain_seed for r in runs}
        x, y = units(runs, seed_free=name in seed_free), units(scratch, strata)
        sides[name] = (n_units(x), n_units(y), len(x))
        tests[name] = rank_sum_test([(x[k], y.get(k, np.array([]))) for k in x]) if scratch else None
    better = holm([t[0] if (t := tests[n]) else None for n in names])
    worse = holm([t[1] if (t := tests[n]) else None for n in names])
    m = sum(1 for n in names if tests[n])
    out = {}
    for name, adj, adj_worse in zip(names, better, worse):
        n_x, n_y, n_pre = sides[name]
        if tests[name] is None or min(n_x, n_y) < MIN_UNITS:
            claim = TOO_FEW
        elif adj is not None and adj < ALPHA:
            claim = SIGNIFICANT
        elif adj_worse is not None and adj_worse < ALPHA:
            claim = NEGATIVE
        else:
            claim = NOT_SIGNIFICANT
        test = tests[name]
        out[name] = Comparison(
            n_eff=n_x, n_eff_scratch=n_y, pretrainings=n_pre,
            p_value=test[0] if test else None, p_adjusted=adj,
            p_value_worse=test[1] if test else None, p_adjusted_worse=adj_worse,
            comparisons=m, claim=claim,
        )  # fmt: skip
    return out
