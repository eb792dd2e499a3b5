"""Which claims the report may make: the test keeps its level on null data, finds a clear effect, counts
copies once, flags negative transfer whatever scratch's sign, and its intervals are stable."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rltransfer.records.run_result import Curve, FinishedRun, RunMetrics
from rltransfer.stats import bootstrap, metrics, significance
from rltransfer.stats.significance import _rank_sum_counts, compare, holm, rank_sum_test
from rltransfer.stats.summary import target_rows, verdict

ALPHA = significance.ALPHA


def _runs(aucs, pretrain_seeds=None, first_seed=0):
    """Finished runs as the report reads them, with one AUC each (the curve: that AUC, flat)."""
    pre = pretrain_seeds if pretrain_seeds is not None else [0] * len(aucs)
    return [
        FinishedRun(
            target="t", target_params={}, split="extrapolation", strategy="s", seed=first_seed + i,
            pretrain_seed=int(p), run_hash="h", threshold=1.0, random_return=0.0, status="ok", budget=10,
            components={}, curve=Curve(step=[0, 10], returns=[a, a], return_std=[0.0, 0.0], score=[a, a]),
            metrics=RunMetrics(p0=a, final=a, auc=a, ttt=10.0, reached=False),
        )
        for i, (a, p) in enumerate(zip(map(float, aucs), pre))
    ]  # fmt: skip


def _any_significant(rng, n, k, shift=0.0, pretrainings=1):
    pre = np.arange(n) % pretrainings
    scratch = _runs(rng.normal(size=n), pre)
    strategies = {f"s{j}": _runs(rng.normal(size=n) + shift, pre) for j in range(k)}
    claims = compare(strategies, scratch)
    return any(c.significant for c in claims.values()), any(c.negative_transfer for c in claims.values())


# -- the test itself ---------------------------------------------------------------------------------
def test_one_stratum_is_scipys_exact_mann_whitney():
    rng = np.random.default_rng(0)
    for n, m in [(3, 3), (4, 7), (10, 10), (20, 20)]:
        x, y = rng.normal(size=n) + 0.5, rng.normal(size=m)
        greater, less = rank_sum_test([(x, y)])
        assert greater == pytest.approx(stats.mannwhitneyu(x, y, alternative="greater", method="exact").pvalue)
        assert less == pytest.approx(stats.mannwhitneyu(x, y, alternative="less", method="exact").pvalue)


def test_ties_are_counted_exactly():
    # x = (1, 1, 1, 2), y = (1, 0, 0, 1): of the C(8, 4) = 70 relabellings, 10 give x a rank sum at
    # least as large as observed (enumerated by hand with itertools in the test below).
    x, y = np.array([1.0, 1, 1, 2]), np.array([1.0, 0, 0, 1])
    greater, _ = rank_sum_test([(x, y)])
    import itertools

    pooled = np.concatenate([x, y])
    ranks = stats.rankdata(pooled)
    observed = ranks[:4].sum()
    sums = [ranks[list(c)].sum() for c in itertools.combinations(range(8), 4)]
    assert greater == pytest.approx(np.mean(np.array(sums) >= observed - 1e-9))


def test_subset_counts_are_exact_integers_in_int64_and_beyond():
    """The null distribution counts subsets in int64 where no count can overflow it, in Python ints beyond:
    the same integers as counting by hand, and every subset counted where int64 is at its limit or past it."""
    import itertools
    from collections import Counter

    doubled = np.random.default_rng(3).integers(2, 30, size=10)  # doubled ranks, ties included
    by_hand = Counter(int(sum(c)) for c in itertools.combinations(doubled.tolist(), 4))
    assert {s: c for s, c in enumerate(_rank_sum_counts(doubled, 4)) if c} == dict(by_hand)
    for n in (66, 70):  # C(66, 33) < 2**63 <= C(70, 35): one value tied n times, so one sum has them all
        counts = _rank_sum_counts(np.full(n, 2), n // 2)
        assert counts[n] == math.comb(n, n // 2) and sum(counts) == math.comb(n, n // 2)
        assert all(type(c) is int for c in counts)


def test_holm_on_a_hand_computed_example():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04); None not counted
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


# -- calibration and power (through the code the report uses) ----------------------------------------
SIMULATIONS = 300


@pytest.mark.parametrize("n", [3, 5, 10, 20])
@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_null_data_give_a_false_significant_at_most_at_the_nominal_rate(n, k):
    """Strategy and scratch from one distribution: the rate of targets with any 'significant' (or any
    negative transfer) stays at or below 5% plus three Monte Carlo standard errors."""
    rng = np.random.default_rng(1000 * n + k)
    calls = np.array([_any_significant(rng, n, k) for _ in range(SIMULATIONS)])
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)
    assert calls[:, 0].mean() <= bound and calls[:, 1].mean() <= bound, calls.mean(axis=0)


def test_null_data_over_three_pretrainings_keep_the_level():
    rng = np.random.default_rng(7)
    calls = np.array([_any_significant(rng, 10, 3, pretrainings=3) for _ in range(SIMULATIONS)])
    assert calls.mean(axis=0).max() <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)


def test_a_clear_effect_is_found_at_ten_seeds():
    """Power: one strategy 1.5 standard deviations better, 10 seeds, alone (about 0.9); 2 standard
    deviations better among 3 strategies (Holm over 3; about 0.95)."""
    rng = np.random.default_rng(11)
    alone = [_any_significant(rng, 10, 1, shift=1.5)[0] for _ in range(SIMULATIONS)]
    assert np.mean(alone) >= 0.8, np.mean(alone)
    found = []
    for _ in range(SIMULATIONS):
        scratch = _runs(rng.normal(size=10))
        strategies = {
            "good": _runs(rng.normal(size=10) + 2.0),
            "a": _runs(rng.normal(size=10)),
            "b": _runs(rng.normal(size=10)),
        }
        found.append(compare(strategies, scratch)["good"].significant)
    assert np.mean(found) >= 0.8, np.mean(found)


# -- the defects of the percentile-CI rule ----------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_run_above_every_scratch_run_is_no_verdict_below_four_runs(n):
    """P(improve)'s CI is [1, 1] here at any n; it called n = 1, 2, 3 'significant'."""
    scratch, better = _runs(np.arange(n) * 0.01), _runs(1 + np.arange(n) * 0.01)
    rows = target_rows("t", "extrapolation", {"scratch": scratch, "finetune": better}, 10, 100, 1, {})
    assert rows[1]["p_improve_ci"] == [1.0, 1.0] and not rows[1]["significant"]
    assert rows[1]["claim"] == significance.TOO_FEW and "too few independent runs" in verdict(rows)


def test_copies_count_once():
    """A deterministic zero_shot from one bundle: six identical runs are one agent (p = 1/7 against six
    scratch runs, the smallest possible), too few for a verdict."""
    scratch = _runs([0.10, 0.12, 0.15, 0.11, 0.13, 0.14])
    copies = _runs([0.9] * 6)
    rows = target_rows("t", "extrapolation", {"scratch": scratch, "zero_shot": copies}, 10, 100, 1, {})
    row = rows[1]
    assert row["n_eff"] == 1 and row["seeds"] == 6 and row["p_value"] == pytest.approx(1 / 7)
    assert not row["significant"] and row["claim"] == significance.TOO_FEW
    # Copies from different pre-trainings are different agents: one unit per pre-training.
    assert compare({"zero_shot": _runs([0.9] * 6, [0, 1, 2, 0, 1, 2])}, scratch)["zero_shot"].n_eff == 3


def test_copies_a_probe_placed_apart_count_once():
    """A probe's cost varies with the seed and places each copy's first evaluation (so its AUC) a little
    apart: the copies of one agent are still one unit, with the mean of their AUCs. Counted apart, the
    published CartPole zero_shot's four agents were seventeen runs, and seven copies of one agent
    "beat" scratch at p = 1/3432 where one agent can reach 1/8."""
    scratch = _runs([0.10, 0.12, 0.15, 0.11, 0.13, 0.14, 0.16])
    copies = _runs([0.9] * 7)
    aucs = [0.90, 0.91, 0.89, 0.905, 0.895, 0.9, 0.9]
    for run, first, auc in zip(copies, [582, 654, 562, 574, 642, 580, 577], aucs):
        run.curve.step[0] = first
        run.metrics.auc = auc
    (unit,) = significance.units(copies)[0]
    assert unit == pytest.approx(np.mean(aucs))
    c = compare({"zero_shot": copies}, scratch)["zero_shot"]
    assert c.n_eff == 1 and c.p_value == pytest.approx(1 / 8) and c.claim == significance.TOO_FEW
    # A copy whose policy scores otherwise at some evaluation is another agent.
    copies[3].curve.score[1] = 0.5
    assert compare({"zero_shot": copies}, scratch)["zero_shot"].n_eff == 2


def test_copies_evaluated_on_another_kind_of_cpu_count_once():
    """A copy evaluated on another kind of CPU scores a few units in the last place apart (the Pendulum
    publication's zero_shot, seeds made on an Intel Xeon and an AMD EPYC: 0.7373452164287038 against
    0.737345217129648): still one agent. Counted apart, three pre-trainings' copies were six units and a
    verdict (p = 0.002); one unit a pre-training is too few for one."""
    scratch = _runs([0.10, 0.12, 0.15, 0.11, 0.13, 0.14], [0, 1, 2, 0, 1, 2])
    copies = _runs([0.7373452164287038] * 6, [0, 1, 2, 0, 1, 2])
    for run in copies[3:]:  # the second machine's seeds, one per pre-training
        run.curve.score = [0.737345217129648] * len(run.curve.score)
        run.metrics.auc = 0.7373452171296481
    c = compare({"zero_shot": copies}, scratch)["zero_shot"]
    assert c.n_eff == 3 and c.claim == significance.TOO_FEW
    # Apart by more than SAME_SCORE at one evaluation: two agents in that pre-training.
    copies[3].curve.score[1] += 2 * significance.SAME_SCORE
    assert compare({"zero_shot": copies}, scratch)["zero_shot"].n_eff == 4


def test_a_seed_free_agent_is_one_unit_a_bundle_on_any_cpu():
    """The LunarLander-continuous publication's zero_shot, extended on an AMD EPYC: a Box2D episode diverged
    from a rounding, so the new copies of two pre-trainings scored up to 8e-4 apart from the Intel ones, and
    the score rule counted five agents (a verdict, p = 1.2e-4) where there are three. A strategy that trains
    nothing, evaluated deterministically, is one agent a bundle by construction."""
    scratch = _runs([0.10, 0.12, 0.15, 0.11, 0.13, 0.14, 0.12, 0.16, 0.1], [0, 1, 2] * 3)
    copies = _runs([1.0662, 0.995, 1.1155] * 3, [0, 1, 2] * 3)
    for r in copies:
        r.components = {"encoder": "loaded", "heads": "loaded", "trunk": "loaded"}
        r.bundle_sha256 = f"bundle-{r.pretrain_seed}"
    for r in copies[6:8]:  # pre-trainings 0 and 1, made on the other kind of CPU: apart by more than SAME_SCORE
        r.curve.score = [x - 8e-4 for x in r.curve.score]
        r.metrics.auc -= 7e-4
    assert compare({"zero_shot": copies}, scratch)["zero_shot"].n_eff == 5  # by score alone: five "agents"
    c = compare({"zero_shot": copies}, scratch, seed_free={"zero_shot"})["zero_shot"]
    assert c.n_eff == 3 and c.claim == significance.TOO_FEW
    assert significance.units(copies, seed_free=True)[0] == pytest.approx([(2 * 1.0662 + 1.0655) / 3])
    # A component that started fresh (from the seed) makes a run its own agent again, as does another bundle.
    copies[6].components = {**copies[6].components, "heads": "fresh"}
    assert compare({"zero_shot": copies}, scratch, seed_free={"zero_shot"})["zero_shot"].n_eff == 4
    copies[7].bundle_sha256 = "another"
    assert compare({"zero_shot": copies}, scratch, seed_free={"zero_shot"})["zero_shot"].n_eff == 5


def test_which_strategies_are_seed_free():
    """Those that train nothing, where evaluation is deterministic and no probe (whose episodes follow the seed)
    chooses the head."""
    from rltransfer.reporting.report import seed_free_strategies
    from rltransfer.strategies import register_strategy

    strategies = ["scratch", "zero_shot", "finetune", "freeze_encoder"]
    config = {"transfer": {"strategies": strategies, "head_init": "nearest"}, "evaluation": {"deterministic": True}}
    assert seed_free_strategies(config) == {"zero_shot"}
    assert seed_free_strategies({**config, "evaluation": {"deterministic": False}}) == set()
    assert seed_free_strategies({**config, "transfer": {**config["transfer"], "head_init": "probe"}}) == set()
    mine = {"transfer": {"strategies": ["scratch", "my_own"], "head_init": "mean"}, "evaluation": {}}
    assert seed_free_strategies(mine) == set()  # registered by the script that ran it, not known here

    @register_strategy("plan_fails_test", overwrite=True)
    def fails(params):
        raise RuntimeError("boom")

    failing = {**config, "transfer": {**config["transfer"], "strategies": strategies + ["plan_fails_test"]}}
    assert seed_free_strategies(failing) == {"zero_shot"}  # its runs failed: the report says so, not this


def test_the_report_names_the_comparisons_that_are_smoke_tests():
    """A target's claims sentence called the whole target a smoke test where one strategy had few independent
    runs (CartPole's very-long-heavy: zero_shot's four agents beside 20 runs a side for the others)."""
    from rltransfer.reporting.report_text import claims_text

    row = {"comparisons": 3, "n_eff_scratch": 20, "pretrainings": 3}
    rows = [
        {**row, "strategy": "zero_shot", "n_eff": 4, "claim": significance.NOT_SIGNIFICANT},
        {**row, "strategy": "lr_scaled", "n_eff": 20, "claim": significance.SIGNIFICANT},
        {**row, "strategy": "finetune", "n_eff": 3, "claim": significance.TOO_FEW},
    ]
    text = claims_text(rows)
    assert text.endswith("a comparison is a smoke test, not a claim: zero_shot (4), finetune (3).")
    assert "lr_scaled" not in text
    assert "smoke test" not in claims_text(rows[1:2])


def test_negative_transfer_fires_when_scratch_auc_is_not_positive():
    """Scratch's AUC IQM below 0 made the AUC ratio NaN and kept the flag off."""
    scratch = _runs([-0.02, -0.01, -0.03, -0.015, -0.025, -0.012])
    worse = _runs([-0.4, -0.5, -0.45, -0.42, -0.48, -0.41])
    rows = target_rows("t", "extrapolation", {"scratch": scratch, "bad": worse}, 10, 100, 1, {})
    assert rows[0]["auc_iqm"] < 0 and rows[1]["auc_ratio"] is None
    assert rows[1]["negative_transfer"] and rows[1]["p_adjusted_worse"] < ALPHA and not rows[1]["significant"]
    assert "NEGATIVE TRANSFER: bad" in verdict(rows)


def test_holm_counts_every_strategy_of_the_target():
    """Four strategies at p = 1/252 each (every run above every scratch run, 5 seeds): Holm multiplies the
    smallest by 4; the verdict line names only what survives."""
    scratch = _runs(np.arange(5) * 0.01)
    strategies = {f"s{j}": _runs(1 + np.arange(5) * 0.01 + j * 0.001) for j in range(4)}
    rows = target_rows("t", "extrapolation", {"scratch": scratch, **strategies}, 10, 100, 1, {})
    assert all(r["comparisons"] == 4 and r["p_adjusted"] == pytest.approx(4 / 252) for r in rows[1:])
    weak = {"weak": _runs([0.02, -0.01, 0.045, 0.0, 0.05])}
    rows = target_rows("t", "extrapolation", {"scratch": scratch, **strategies, **weak}, 10, 100, 1, {})
    assert not rows[-1]["significant"] and "weak" not in verdict(rows)


def test_a_claim_from_fewer_than_three_pretrainings_says_how_many():
    """A headline claim rests on three pre-trainings or more; the verdict on fewer says how many beside its
    claims (one pre-training can decide a result), and says nothing where it claims nothing."""
    for n_pre, said in ((1, "all from one pre-training"), (2, "all from 2 pre-trainings"), (3, None)):
        pre = [i % n_pre for i in range(10)]
        scratch = _runs(np.arange(10) * 0.01, pre)
        rows = target_rows("t", "extrapolation", {"scratch": scratch, "finetune": _runs(1 + np.arange(10) * 0.01, pre)},
                           10, 100, 1, {})  # fmt: skip
        assert rows[1]["significant"] and rows[1]["pretrainings"] == n_pre
        line = verdict(rows)
        assert line.startswith("best: finetune") and ("pre-training" in line) == (said is not None), line
        assert said is None or line.endswith(f"; {said}")
        worse = _runs(-1 - np.arange(10) * 0.01, pre)  # a negative transfer is a claim too
        rows = target_rows("t", "extrapolation", {"scratch": scratch, "bad": worse}, 10, 100, 1, {})
        assert rows[1]["negative_transfer"] and ("pre-training" in verdict(rows)) == (said is not None)
    same = _runs(np.arange(10) * 0.01 + 0.005)  # no claim: nothing to qualify
    rows = target_rows(
        "t", "extrapolation", {"scratch": _runs(np.arange(10) * 0.01), "lr_scaled": same}, 10, 100, 1, {}
    )
    assert not rows[1]["significant"] and "pre-training" not in verdict(rows)


def test_the_stratified_test_compares_within_pretrainings():
    """Pre-training 0's runs beat scratch, pre-training 1's lose: pooled they would look better than
    they are; within strata the evidence cancels."""
    pre = [0, 1] * 5
    scratch = _runs([0.5, 0.5, 0.6, 0.4, 0.55, 0.45, 0.52, 0.48, 0.58, 0.42], pre)
    mixed = _runs([0.9, 0.3, 0.95, 0.25, 0.92, 0.28, 0.97, 0.27, 0.93, 0.29], pre)
    c = compare({"finetune": mixed}, scratch)["finetune"]
    assert c.pretrainings == 2 and c.n_eff == 10 and not c.significant and c.p_value > 0.2


# -- intervals --------------------------------------------------------------------------------------
def test_bounds_move_less_than_one_percent_across_bootstrap_seeds():
    """The AUC-ratio bound that 2,000 resamples moved by about 4%."""
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0.85, 1.0, 6), rng.uniform(0.08, 0.16, 6)
    for statistic in (bootstrap.iqm_ratio_rows, bootstrap.improvement_rows):
        cis = np.array([bootstrap.two_sample_interval([a], [b], statistic, seed=s) for s in range(5)])
        assert np.all(np.ptp(cis, axis=0) <= 0.01 * np.abs(cis.mean(axis=0))), cis
    x = rng.uniform(0.5, 1.0, 10)  # BCa
    cis = np.array([bootstrap.interval([x], bootstrap.iqm_rows, seed=s)[:2] for s in range(5)])
    assert np.all(np.ptp(cis, axis=0) <= 0.01 * np.abs(cis.mean(axis=0))), cis


def test_row_wise_probability_of_improvement_is_the_pairwise_one_exactly():
    """Over the values present in each row (NaN pads a shorter resample), ties counting one half."""
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, (7_000, 9)).astype(float), rng.integers(0, 5, (7_000, 6)).astype(float)
    x[rng.random(x.shape) < 0.3], y[rng.random(y.shape) < 0.3] = np.nan, np.nan
    y[0] = np.nan  # no pair present: NaN, which an interval leaves out
    rows = bootstrap.improvement_rows(x, y)
    assert np.isnan(rows[0])
    for i in range(1, len(x), 97):
        xi, yi = x[i][~np.isnan(x[i])], y[i][~np.isnan(y[i])]
        if len(xi) and len(yi):
            assert rows[i] == metrics.probability_of_improvement(xi, yi)
        else:
            assert np.isnan(rows[i])


def test_nan_aware_iqm_is_scipys_trim_mean():
    rng = np.random.default_rng(2)
    for n in (1, 3, 4, 7, 10, 13):
        x = rng.normal(size=n)
        padded = np.concatenate([x, [np.nan] * 3])[None, :]
        assert bootstrap.iqm_rows(padded)[0] == pytest.approx(stats.trim_mean(x, 0.25))


def test_two_stage_resamples_draw_pretrainings_then_runs_within():
    groups = [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]
    rows = bootstrap.resample(groups, np.random.default_rng(0), 2000)
    # Each resample holds whole pre-trainings' sizes of one value each: 4 ones per drawn first group.
    counts = np.array([np.sum(rows == v, axis=1) for v in (1.0, 2.0, 3.0)])
    assert set(np.unique(counts[0])) <= {0, 4, 8, 12} and set(np.unique(counts[1])) <= {0, 3, 6, 9}
    # A pre-training is drawn with probability 1/3 in each of 3 draws: on average one draw each.
    assert counts[0].mean() / 4 == pytest.approx(1.0, abs=0.1)
    # The interval over pre-trainings is wider than one pretending the 10 runs are independent.
    flat = bootstrap.interval([[1.0, 1.1, 0.9, 1.0, 2.0, 2.1, 1.9, 3.0, 3.1, 2.9]], bootstrap.mean_rows)
    nested = bootstrap.interval([[1.0, 1.1, 0.9, 1.0], [2.0, 2.1, 1.9], [3.0, 3.1, 2.9]], bootstrap.mean_rows)
    assert nested[2] == "two-stage percentile" and nested[1] - nested[0] > 1.3 * (flat[1] - flat[0])
