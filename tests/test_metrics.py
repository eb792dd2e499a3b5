import warnings

import numpy as np
import pytest

from rltransfer.records.run_result import Curve, FinishedRun, run_metrics
from rltransfer.stats import bootstrap, metrics
from rltransfer.stats.summary import by_pretraining, target_rows, verdict


def test_normalisation_maps_random_to_0_and_threshold_to_1_also_for_negative_returns():
    assert metrics.normalise(475.0, 20.0, 475.0) == pytest.approx(1.0)
    assert metrics.normalise(20.0, 20.0, 475.0) == pytest.approx(0.0)
    # Acrobot: random -500, threshold -100; -300 is halfway, and better than random is positive.
    assert metrics.normalise(-300.0, -500.0, -100.0) == pytest.approx(0.5)
    assert metrics.normalise(-500.0, -500.0, -100.0) == pytest.approx(0.0)
    assert metrics.normalise(-90.0, -500.0, -100.0) > 1.0
    # Pendulum: a raw ratio -200/-1200 would say 0.17; the normalised score says 1.0.
    assert metrics.normalise(-200.0, -1200.0, -200.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        metrics.normalise(1.0, 5.0, 5.0)


def test_auc_is_the_trapezoid_area_per_step():
    # (1/20) * [10 * (0 + 0.5)/2 + 10 * (0.5 + 1)/2] = (2.5 + 7.5) / 20
    assert metrics.auc([0, 10, 20], [0.0, 0.5, 1.0], 20) == pytest.approx(0.5)
    assert metrics.auc([0, 5, 20], [1.0, 1.0, 1.0], 20) == pytest.approx(1.0)


def test_final_is_the_mean_over_the_last_tenth_of_the_budget():
    assert metrics.final([0, 50, 90, 95, 100], [0, 0, 0.2, 0.4, 0.6], 100) == pytest.approx(0.4)


def test_time_to_threshold_needs_two_consecutive_evaluations_and_censors_at_the_budget():
    assert metrics.time_to_threshold([0, 10, 20, 30], [0.2, 1.0, 1.1, 0.3], 30) == (10.0, True)
    assert metrics.time_to_threshold([0, 10, 20, 30], [1.0, 0.5, 1.0, 0.9], 30) == (30.0, False)
    # Reaching only at the very last evaluation is not two consecutive: censored.
    assert metrics.time_to_threshold([0, 10, 20], [0.0, 0.0, 1.0], 20) == (20.0, False)


def test_iqm_matches_a_hand_computed_value():
    # 8 values, 2 trimmed at each end: sorted -50 1 | 2 3 4 5 | 6 100 -> mean of 2..5.
    assert metrics.iqm([100, 1, 2, 3, 4, 5, 6, -50]) == pytest.approx(3.5)


def test_kaplan_meier_median_and_restricted_mean_on_a_small_known_sample():
    km = metrics.kaplan_meier([3, 5, 7, 10, 10], [True, True, True, False, False], budget=10)
    # S: 0.8 after 3, 0.6 after 5, 0.4 after 7 -> median 7.
    np.testing.assert_allclose(km.survival, [0.8, 0.6, 0.4, 0.4])
    assert km.median() == 7.0
    # Area under S on [0, 10]: 3*1 + 2*0.8 + 2*0.6 + 3*0.4 = 7.0
    assert km.restricted_mean() == pytest.approx(7.0)
    assert metrics.kaplan_meier([10, 10], [False, False], 10).median() is None


def test_probability_of_improvement_on_a_known_pair():
    # Pairs (x > y): 3>1, 4>1, 4>3; tie 3=3 counts half: (3 + 0.5) / 4.
    assert metrics.probability_of_improvement([3, 4], [1, 3]) == pytest.approx(0.875)
    assert metrics.probability_of_improvement([1, 1], [1, 1]) == pytest.approx(0.5)


def test_bootstrap_is_seeded_and_uses_bca_from_ten_seeds():
    x = np.linspace(0, 1, 12) ** 2
    a, b = bootstrap.interval([x], bootstrap.iqm_rows, seed=3), bootstrap.interval([x], bootstrap.iqm_rows, seed=3)
    assert a == b and a[2] == "BCa" and a[0] < metrics.iqm(x) < a[1]
    assert bootstrap.interval([[0.1, 0.5, 0.2]], bootstrap.iqm_rows)[2] == "percentile"
    assert bootstrap.interval([[0.1, 0.5], [0.2, 0.3]], bootstrap.iqm_rows)[2] == "two-stage percentile"


def test_bootstrap_falls_back_to_percentile_quietly_where_bca_cannot_be_computed():
    x = [1.06] * 10 + [1.05]  # ten runs at the ceiling, one just below: scipy cannot compute BCa here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high, method = bootstrap.interval([x], bootstrap.iqm_rows)
    assert method == "percentile" and low <= metrics.iqm(x) <= high == pytest.approx(1.06)


def test_logrank_says_sooner_only_for_the_faster_group():
    fast = ([1, 2, 2, 3, 3], [True] * 5)
    slow = ([8, 9, 10, 10, 10], [True, True, False, False, False])
    assert metrics.logrank_sooner(*fast, *slow) < 0.05
    assert metrics.logrank_sooner(*slow, *fast) > 0.5


def _run(seed, scores, budget=40, pretrain_seed=0):
    """A finished run with this curve of scores (returns = scores: random 0, threshold 1)."""
    steps, scores = [0, 10, 20, 30, 40], [float(x) for x in scores]
    return FinishedRun(
        target="t", target_params={}, split="extrapolation", strategy="s", seed=seed, pretrain_seed=pretrain_seed,
        run_hash="h", threshold=1.0, random_return=0.0, status="ok", budget=budget, components={},
        curve=Curve(step=steps, returns=scores, return_std=[0.0] * len(steps), score=scores),
        metrics=run_metrics(steps, scores, budget),
    )  # fmt: skip


def _rows(scratch, **strategies):
    """The target's rows as the report builds them (statistics and claims)."""
    return target_rows("t", "extrapolation", {"scratch": scratch, **strategies}, 40, 1000, 2, {})


def _noisy(seeds, scores, scale=0.01):
    """Runs of one shape with a little seed-to-seed noise (identical curves would count once)."""
    return [_run(s, [v + scale * s * (k > 0) for k, v in enumerate(scores)]) for s in range(seeds)]


def test_rows_versus_scratch_speedup_ratio_and_censoring():
    scratch = _noisy(5, [0, 0.2, 0.5, 1.0, 1.0])  # reaches at 30
    fast = _noisy(5, [0.5, 1.0, 1.0, 1.0, 1.0], 0.002)  # reaches at 10
    base, row = _rows(scratch, finetune=fast)
    assert row["speedup_to_threshold"] == pytest.approx(3.0)
    assert row["jumpstart"] == pytest.approx(0.5)
    assert row["p_improve"] == 1.0 and row["significant"] and row["n_eff"] == 5
    assert row["p_value"] == pytest.approx(1 / 252)  # every strategy run above every scratch run: 1 / C(10, 5)
    assert row["auc_ratio"] == pytest.approx(metrics.iqm([r.metrics.auc for r in fast]) / base["auc_iqm"])
    assert row["pretrain_steps"] == 1000 and row["pretrain_steps_amortised"] == 500
    never = _noisy(5, [0, 0.1, 0.2, 0.2, 0.3])
    row = _rows(never, finetune=fast)[1]
    assert (
        row["speedup_to_threshold"] is None
        and row["speedup_note"].startswith(">4.0x")
        and "censored" in row["speedup_note"]
    )
    at_zero = _noisy(5, [1.0, 1.0, 1.0, 1.0, 1.0], 0.001)
    row = _rows(never, zero_shot=at_zero)[1]
    assert row["speedup_lower_bound"] is None and row["speedup_note"].startswith("reaches the threshold at step 0")
    assert "scratch's median is censored at B=40" in row["speedup_note"]
    worse = _noisy(5, [0, 0.0, 0.1, 0.2, 0.2])
    base, row = _rows(scratch, bad=worse)
    assert row["negative_transfer"] and not row["significant"]
    assert "no strategy beats scratch" in verdict([base, row]) and "NEGATIVE TRANSFER: bad" in verdict([base, row])


def test_verdict_ranks_a_strategy_at_the_threshold_from_step_0_first():
    scratch = _noisy(5, [0, 0.2, 0.5, 1.0, 1.0])  # reaches at 30
    at_zero = _noisy(5, [1.0, 1.0, 1.0, 1.0, 1.0])  # there from step 0
    faster = _noisy(5, [0.5, 1.0, 1.0, 1.0, 1.0])  # reaches at 10: 3x
    rows = _rows(scratch, finetune=at_zero, kickstart=faster)
    assert rows[1]["ttt_median"] == 0 and rows[1]["speedup_to_threshold"] is None
    assert verdict(rows).startswith("best: finetune, reaches the threshold at step 0")


def test_verdict_names_the_strategies_it_cannot_tell_from_the_best():
    scratch = _noisy(5, [0, 0.2, 0.5, 1.0, 1.0])  # reaches at 30
    fast = [_run(s, [0.5 + 0.01 * s, 1.0, 1.0, 1.0, 1.0]) for s in range(5)]  # reaches at 10
    same = [_run(s, [0.52 - 0.01 * s, 1.0, 1.0, 1.0, 1.0]) for s in range(5)]  # the same, other noise
    later = _noisy(5, [0.2, 0.5, 1.0, 1.0, 1.0])  # reaches at 20
    rows = _rows(scratch, finetune=fast, adapter=same, lr_scaled=later)
    assert rows[1]["ttt_median"] == rows[2]["ttt_median"] == 10
    line = verdict(rows)
    assert line.startswith(("best: finetune (adapter alike: ", "best: adapter (finetune alike: ")), line
    assert "also beats scratch: lr_scaled" in line
    # One strategy alone at its time to threshold: nothing alike.
    assert "alike" not in verdict(_rows(scratch, finetune=fast, lr_scaled=later))


def test_runs_split_by_pre_training_with_hand_computed_means():
    runs = [_run(0, [0.5, 1.0, 1.0, 1.0, 1.0]), _run(1, [0, 0, 0.2, 0.4, 0.4]), _run(2, [0.3, 0.5, 1.0, 1.0, 1.0])]
    assert by_pretraining(runs, 40) is None  # no pretrain_seed: one pre-training
    runs = [r.model_copy(update={"pretrain_seed": r.seed % 2}) for r in runs]
    first, second = by_pretraining(runs, 40)
    assert first["pretrain_seed"] == 0 and first["seeds"] == [0, 2] and second["seeds"] == [1]
    assert first["p0_mean"] == pytest.approx(0.4) and first["final_mean"] == pytest.approx(1.0)
    assert first["auc_mean"] == pytest.approx((37.5 / 40 + 31.5 / 40) / 2)  # trapezoids: 37.5 and 31.5 over 40 steps
    assert first["reached"] == 2 and first["ttt_median"] == 10.0  # KM median of {10, 20}: the first
    assert second["reached"] == 0 and second["ttt_median"] is None and second["auc_mean"] == pytest.approx(0.2)
