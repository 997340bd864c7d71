import math

import pytest
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from af_tasks.core.stats import rate_estimate, rate_gap, two_proportion_ztest, wilson_interval


def test_wilson_interval_hand_computed():
    # k=8, n=10, z=1.959964: centre=(0.8+0.192073)/1.384146=0.716743,
    # half=1.959964*sqrt(0.016+0.009604)/1.384146=0.226562
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490162, abs=1e-5)
    assert high == pytest.approx(0.943318, abs=1e-5)


@pytest.mark.parametrize("k,n", [(0, 7), (3, 7), (7, 7), (45, 120), (1, 2)])
def test_wilson_matches_statsmodels(k, n):
    assert wilson_interval(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)


@pytest.mark.parametrize("k1,n1,k2,n2", [(30, 50, 12, 50), (5, 20, 9, 25), (1, 10, 0, 10)])
def test_ztest_matches_statsmodels(k1, n1, k2, n2):
    z, p = two_proportion_ztest(k1, n1, k2, n2)
    z_ref, p_ref = proportions_ztest([k1, k2], [n1, n2])
    assert (z, p) == pytest.approx((z_ref, p_ref), rel=1e-9)


def test_ztest_hand_computed():
    # p1=0.6, p2=0.24, pooled 0.42, se=sqrt(0.42*0.58*0.04)=0.098712, z=3.647
    z, p = two_proportion_ztest(30, 50, 12, 50)
    assert z == pytest.approx(0.36 / math.sqrt(0.42 * 0.58 * 0.04))
    assert p == pytest.approx(0.000265, abs=2e-6)


@pytest.mark.parametrize("k1,n1,k2,n2", [(30, 50, 12, 50), (5, 20, 9, 25), (10, 10, 0, 10)])
def test_gap_interval_matches_newcombe(k1, n1, k2, n2):
    gap = rate_gap(k1, n1, k2, n2)
    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    assert gap.gap == pytest.approx(k1 / n1 - k2 / n2)
    assert (gap.ci_low, gap.ci_high) == pytest.approx((low, high), abs=1e-9)
    assert gap.ci_low <= gap.gap <= gap.ci_high


def test_degenerate_and_empty_groups():
    z, p = two_proportion_ztest(0, 5, 0, 5)
    assert (z, p) == (0.0, 1.0)
    empty = rate_gap(3, 5, 0, 0)
    assert math.isnan(empty.gap) and math.isnan(empty.ci_low)
    assert math.isnan(rate_estimate(0, 0).rate)
    with pytest.raises(ValueError):
        wilson_interval(6, 5)


def test_auroc_against_sklearn_and_by_hand():
    from sklearn.metrics import roc_auc_score

    from af_tasks.core.stats import auroc, binary_metrics, bootstrap_auroc_ci, roc_points

    scores = [0.9, 0.8, 0.8, 0.3, 0.6, 0.1, 0.8, 0.2]
    labels = [True, True, False, True, False, False, True, False]
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    # by hand: positives .9 .8 .3 .8 vs negatives .8 .6 .1 .2 -> wins 4 + (2 + 0.5) + 2 + (2 + 0.5) = 13 / 16
    assert auroc(scores, labels) == 13 / 16
    low, high = bootstrap_auroc_ci(scores, labels, n_boot=500)
    assert low <= 13 / 16 <= high
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert math.isnan(auroc([0.1], [True]))
    m = binary_metrics([s >= 0.5 for s in scores], labels)
    assert (m.true_positives, m.false_positives, m.true_negatives, m.false_negatives) == (3, 2, 2, 1)
    assert (m.accuracy, m.precision, m.recall) == (5 / 8, 3 / 5, 3 / 4)
    points = roc_points(scores, labels)
    assert points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)


def test_auroc_from_ranks_equals_counting_every_pair():
    """The rank form gives exactly the pair count (ties one half) on scores with many ties, runs of
    equal scores across both classes, NaN scores, and one-element classes."""
    import random

    from af_tasks.core.stats import auroc

    def every_pair(scores, labels):
        pos = [s for s, y in zip(scores, labels, strict=True) if y]
        neg = [s for s, y in zip(scores, labels, strict=True) if not y]
        return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))

    rng = random.Random(0)
    for trial in range(300):
        size = rng.randint(2, 40)
        labels = [rng.random() < 0.5 for _ in range(size)]
        labels[0], labels[-1] = True, False
        levels = rng.choice([2, 3, 5, 1000])  # few levels: long runs of ties
        scores = [rng.randrange(levels) / levels for _ in range(size)]
        if trial % 10 == 0:
            scores[rng.randrange(size)] = math.nan
        assert auroc(scores, labels) == every_pair(scores, labels), (scores, labels)


def test_the_one_json_shape_of_a_rate_and_of_a_gap():
    from af_tasks.core.stats import rate_json

    assert rate_json(3, 4) == {
        "k": 3,
        "n": 4,
        "rate": 0.75,
        "ci95": pytest.approx(list(proportion_confint(3, 4, method="wilson")), rel=1e-12),
    }
    assert isinstance(rate_json(3.0, 4)["k"], int)
    assert rate_json(1.5, 2)["k"] == 1.5  # epoch means: fractional successes stay fractions
    assert rate_json(0, 0) == {"k": 0, "n": 0, "rate": None, "ci95": [None, None]}
    flat = rate_estimate(1, 4).as_dict("monitored")
    low, high = proportion_confint(1, 4, method="wilson")
    assert flat == pytest.approx(
        {"monitored_rate": 0.25, "monitored_n": 4.0, "monitored_ci_low": low, "monitored_ci_high": high}
    )
    gap = rate_gap(3, 4, 1, 4)
    assert gap.as_json() == {"gap": 0.5, "ci95": [gap.ci_low, gap.ci_high], "p_value": gap.p_value}
    assert gap.as_dict() == {
        "gap": 0.5,
        "ci_low": gap.ci_low,
        "ci_high": gap.ci_high,
        "z": gap.z,
        "p_value": gap.p_value,
    }
    assert rate_gap(3, 4, 0, 0).as_json() == {"gap": None, "ci95": [None, None], "p_value": None}


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.99])
def test_other_confidence_levels_match_statsmodels(confidence):
    alpha = 1 - confidence
    assert wilson_interval(3, 7, confidence) == pytest.approx(
        proportion_confint(3, 7, alpha, method="wilson")
    )
    gap = rate_gap(5, 20, 9, 25, confidence)
    reference = confint_proportions_2indep(5, 20, 9, 25, method="newcomb", compare="diff", alpha=alpha)
    assert (gap.ci_low, gap.ci_high) == pytest.approx(reference, abs=1e-9)


def test_intervals_are_clamped_to_zero_and_one_and_bad_counts_refused():
    # unclamped, rounding would put these ends a hair outside [0, 1] (-1.4e-17 and 1 + 2.2e-16)
    assert wilson_interval(0, 21)[0] == 0.0 and wilson_interval(16, 16)[1] == 1.0
    assert 0.0 <= wilson_interval(0, 3)[0] < 1e-12 and wilson_interval(0, 21)[1] > 0.15
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(-1, 5)
    assert all(math.isnan(v) for v in two_proportion_ztest(1, 0, 1, 5)) and all(
        math.isnan(v) for v in two_proportion_ztest(1, 5, 1, 0)
    )
    assert two_proportion_ztest(5, 5, 5, 5) == (0.0, 1.0)


def test_bootstrap_interval_is_the_tails_of_a_stratified_resampling():
    from af_tasks.core.stats import auroc, bootstrap_auroc_ci

    scores = [0.9, 0.8, 0.8, 0.3, 0.6, 0.1, 0.8, 0.2, 0.7, 0.4]
    labels = [True, True, False, True, False, False, True, False, True, False]
    low, high = bootstrap_auroc_ci(scores, labels, n_boot=400, seed=3)
    assert (low, high) == bootstrap_auroc_ci(scores, labels, n_boot=400, seed=3)  # seeded
    assert low < auroc(scores, labels) < high <= 1.0
    narrow = bootstrap_auroc_ci(scores, labels, n_boot=400, seed=3, confidence=0.5)
    assert low < narrow[0] <= narrow[1] < high
    assert bootstrap_auroc_ci([0.9, 0.8, 0.1, 0.2], [True, True, False, False], n_boot=50) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_auroc_ci([0.3, 0.4], [True, True]))


def test_binary_metrics_without_predicted_or_actual_positives_are_nan():
    from af_tasks.core.stats import binary_metrics

    none_predicted = binary_metrics([False, False, False], [True, False, False])
    assert math.isnan(none_predicted.precision) and none_predicted.recall == 0.0
    assert none_predicted.accuracy == 2 / 3 and none_predicted.false_negatives == 1
    no_positives = binary_metrics([True, False], [False, False])
    assert math.isnan(no_positives.recall) and no_positives.precision == 0.0
    assert math.isnan(binary_metrics([], []).accuracy)


def test_roc_points_step_through_every_threshold():
    from sklearn.metrics import roc_curve

    from af_tasks.core.stats import roc_points

    scores = [0.9, 0.8, 0.8, 0.3, 0.6, 0.1, 0.8, 0.2]
    labels = [True, True, False, True, False, False, True, False]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    points = roc_points(scores, labels)
    assert [fp for fp, _ in points] == pytest.approx(list(fpr)) and [tp for _, tp in points] == pytest.approx(
        list(tpr)
    )
    assert roc_points([0.5, 0.4], [True, True])[-1] == (1.0, 1.0)
    assert all(math.isnan(fp) for fp, _ in roc_points([0.5, 0.4], [True, True])[1:-1])


@pytest.mark.parametrize("confidence", [0.95, 0.8, 0.99])
def test_bootstrap_interval_ends_are_the_replicates_at_the_tails(confidence, monkeypatch):
    """The interval's ends are the replicates at (1 − confidence)/2 and 1 − that of the sorted bootstrap
    distribution (a pass-through spy on auroc records every replicate)."""
    import af_tasks.core.stats as stats

    replicates, real_auroc = [], stats.auroc

    def recording(scores, labels):
        value = real_auroc(scores, labels)
        replicates.append(value)
        return value

    monkeypatch.setattr(stats, "auroc", recording)
    scores = [i / 20 for i in range(20)]  # overlapping classes: replicates rarely tie at the ends
    labels = [i % 3 != 0 for i in range(20)]
    low, high = stats.bootstrap_auroc_ci(scores, labels, n_boot=200, seed=1, confidence=confidence)
    assert len(replicates) == 200
    ordered = sorted(replicates)
    tail = (1 - confidence) / 2
    top = min(199, int((1 - tail) * 200))  # the last replicate at most
    assert (low, high) == (ordered[int(tail * 200)], ordered[top])
    # the draw tells the candidate ends apart: the tail at (1 - c)/2 vs (1 - c); at 0.99 the last replicate
    if confidence == 0.99:
        assert top == 199 and ordered[top] != ordered[top - 1]
    else:
        assert ordered[int(tail * 200)] != ordered[int(tail * 400)]


def test_scores_and_labels_of_different_lengths_are_refused():
    from af_tasks.core.stats import auroc, binary_metrics, roc_points

    for reader in (roc_points, auroc, binary_metrics):
        with pytest.raises(ValueError):
            reader([0.2, 0.4, 0.9], [True, False])
