"""sae.stats against scipy and hand computations on synthetic data with known answers."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from af_tasks.core.feature_stats import benjamini_hochberg, cohens_d, feature_ks, permutation_test


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, size=5), [0.01, 0.01, 0.5, 1.0, 0.0]])
    rng.shuffle(p)
    np.testing.assert_allclose(
        benjamini_hochberg(p), scipy_stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )


def test_bh_hand_computed_and_edge_cases():
    # sorted p 0.01, 0.02, 0.03, 0.5 → p*n/rank = 0.04, 0.04, 0.04, 0.5
    np.testing.assert_allclose(benjamini_hochberg(np.array([0.5, 0.03, 0.01, 0.02])), [0.5, 0.04, 0.04, 0.04])
    assert benjamini_hochberg(np.array([])).size == 0
    assert benjamini_hochberg(np.array([0.3])).tolist() == [0.3]
    assert benjamini_hochberg(np.array([0.9, 0.95])).max() <= 1.0


def test_cohens_d_by_hand():
    rng = np.random.default_rng(4)
    a = rng.normal(1.0, 2.0, size=(12, 3))
    b = rng.normal(0.0, 1.0, size=(9, 3))
    a[:, 2] = 5.0
    b[:, 2] = 5.0  # constant in both groups → 0
    got = cohens_d(a, b)
    for j in range(2):
        x, y = list(a[:, j]), list(b[:, j])
        pooled = ((len(x) - 1) * statistics.variance(x) + (len(y) - 1) * statistics.variance(y)) / (
            len(x) + len(y) - 2
        )
        assert got[j] == pytest.approx(
            (statistics.mean(x) - statistics.mean(y)) / math.sqrt(pooled), rel=1e-10
        )
    assert got[2] == 0.0
    assert cohens_d(b, a)[0] == pytest.approx(-got[0])
    # means 2 and 0, each group's variance (ddof=1) is 2 → d = 2 / sqrt(2)
    assert cohens_d(np.array([[1.0], [3.0]]), np.array([[-1.0], [1.0]]))[0] == pytest.approx(math.sqrt(2))


def planted(seed: int, shift: float, n_features: int = 200, n: int = 60, zero_columns=range(180, 200)):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n_features))
    b = rng.normal(size=(n, n_features))
    a[:, 17] += shift
    a[:, list(zero_columns)] = 0.0
    b[:, list(zero_columns)] = 0.0
    return a, b


def test_feature_ks_equals_scipy_per_column():
    a, b = planted(0, 1.5)
    a[:10, 185] = 1.0  # active in one group only: tested
    result = feature_ks(a, b)
    live = [j for j in range(a.shape[1]) if np.any(a[:, j] != 0) or np.any(b[:, j] != 0)]
    assert result.features.tolist() == live
    assert 185 in live and 190 not in live
    for i, j in enumerate(live):
        reference = scipy_stats.ks_2samp(a[:, j], b[:, j])
        assert result.statistic[i] == pytest.approx(reference.statistic, rel=1e-12)
        assert result.pvalue[i] == pytest.approx(reference.pvalue, rel=1e-9)
    np.testing.assert_allclose(result.qvalue, scipy_stats.false_discovery_control(result.pvalue, method="bh"))
    np.testing.assert_allclose(result.effect_size, cohens_d(a[:, live], b[:, live]))
    assert (result.n_a, result.n_b) == (60, 60)


def test_planted_feature_is_the_only_discovery():
    a, b = planted(0, 1.5)
    result = feature_ks(a, b)
    assert len(result.features) == 180  # the 20 all-zero columns are not tested (nor in the BH denominator)
    assert result.significant(0.05).tolist() == [17]
    top = result.top(3)
    assert top[0]["feature"] == 17 and top[0]["q"] < 1e-3 and top[0]["cohens_d"] > 1.0
    assert top[1]["q"] >= top[0]["q"]


def test_planted_feature_is_found_whatever_the_seed():
    for seed in range(10):
        assert 17 in feature_ks(*planted(seed, 1.5)).significant(0.05)


def test_null_has_no_discoveries():
    result = feature_ks(*planted(0, 0.0))
    assert result.significant(0.05).size == 0
    assert result.qvalue.min() > 0.05
    # under the complete null BH bounds P(any discovery) by alpha: about 2 of 40 seeds, not more than 4
    assert sum(feature_ks(*planted(seed, 0.0)).significant(0.05).size > 0 for seed in range(40)) <= 4


def test_feature_ks_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        feature_ks(np.ones((1, 3)), np.ones((5, 3)))


def test_permutation_strong_shift_hits_the_floor():
    rng = np.random.default_rng(0)
    x, y = rng.normal(3.0, 1.0, 40), rng.normal(0.0, 1.0, 40)
    result = permutation_test(x, y, permutations=999, seed=1)
    assert result.pvalue == pytest.approx(1 / 1000)
    assert result.difference == pytest.approx(x.mean() - y.mean())
    assert (result.permutations, result.seed) == (999, 1)


def test_permutation_identical_distributions():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=50), rng.normal(size=50)
    result = permutation_test(x, y, permutations=2000, seed=0)
    assert result.pvalue > 0.2
    same = permutation_test(x, x.copy(), permutations=500)
    assert same.difference == 0.0 and same.pvalue == 1.0


@pytest.mark.parametrize(("shift", "seed"), [(0.6, 1), (0.5, 4), (0.3, 6), (0.2, 2)])
def test_permutation_agrees_with_scipy(shift, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(shift, 1.0, 30), rng.normal(0.0, 1.0, 30)
    ours = permutation_test(x, y, permutations=9999, seed=seed)
    theirs = scipy_stats.permutation_test(
        (x, y),
        lambda a, b, axis: a.mean(axis) - b.mean(axis),
        permutation_type="independent",
        alternative="two-sided",
        n_resamples=9999,
        vectorized=True,
        random_state=seed,
    )
    assert ours.difference == pytest.approx(theirs.statistic)
    assert ours.pvalue == pytest.approx(theirs.pvalue, abs=0.02)
    assert 0.001 < theirs.pvalue < 0.9  # a p-value where the comparison means something


def test_permutation_is_seeded():
    rng = np.random.default_rng(7)
    x, y = rng.normal(0.3, 1, 25), rng.normal(0, 1, 25)
    assert permutation_test(x, y, 3000, seed=3) == permutation_test(x, y, 3000, seed=3)
