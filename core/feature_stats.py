"""Per-feature comparisons of activation distributions, with multiple-testing control.

Features that are zero in both groups carry no information and are not tested (they would only
inflate the Benjamini–Hochberg denominator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values), same order as the input."""
    p = np.asarray(pvalues, dtype=float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(adjusted, 1.0)
    return q


def cohens_d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column: (mean a − mean b) / pooled SD; 0 where both groups are constant."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(a), len(b)
    pooled = ((n1 - 1) * a.var(0, ddof=1) + (n2 - 1) * b.var(0, ddof=1)) / max(n1 + n2 - 2, 1)
    sd = np.sqrt(pooled)
    diff = a.mean(0) - b.mean(0)
    return np.divide(diff, sd, out=np.zeros_like(diff), where=sd > 0)


@dataclass
class FeatureTests:
    """Two-sample KS per feature; arrays are over the tested features (``features``)."""

    features: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    qvalue: np.ndarray
    effect_size: np.ndarray
    n_a: int
    n_b: int

    def significant(self, alpha: float = 0.05) -> np.ndarray:
        return self.features[self.qvalue < alpha]

    def top(self, n: int = 10) -> list[dict]:
        """Most different features: smallest q, then largest |d|."""
        order = np.lexsort((-np.abs(self.effect_size), self.qvalue))[:n]
        return [
            {
                "feature": int(self.features[i]),
                "ks": float(self.statistic[i]),
                "p": float(self.pvalue[i]),
                "q": float(self.qvalue[i]),
                "cohens_d": float(self.effect_size[i]),
            }
            for i in order
        ]


def feature_ks(a: np.ndarray, b: np.ndarray) -> FeatureTests:
    """KS per feature between groups a [n1, d] and b [n2, d], BH across the tested features."""
    from scipy.stats import ks_2samp

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"KS needs at least 2 samples per group, got {len(a)} and {len(b)}")
    tested = np.flatnonzero((a != 0).any(0) | (b != 0).any(0))
    result = ks_2samp(a[:, tested], b[:, tested], axis=0)
    pvalues = np.atleast_1d(result.pvalue)
    return FeatureTests(
        features=tested,
        statistic=np.atleast_1d(result.statistic),
        pvalue=pvalues,
        qvalue=benjamini_hochberg(pvalues),
        effect_size=cohens_d(a[:, tested], b[:, tested]),
        n_a=len(a),
        n_b=len(b),
    )


@dataclass(frozen=True)
class PermutationResult:
    difference: float
    """mean(x) − mean(y)"""
    pvalue: float
    """two-sided, (count + 1) / (permutations + 1)"""
    permutations: int
    seed: int


def permutation_test(
    x: np.ndarray, y: np.ndarray, permutations: int = 10_000, seed: int = 0
) -> PermutationResult:
    """Difference in means of a per-sample summary statistic, labels shuffled ``permutations`` times."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pooled = np.concatenate([x, y])
    observed = x.mean() - y.mean()
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, permutations, 1000):
        n = min(1000, permutations - start)
        shuffled = rng.permuted(np.tile(pooled, (n, 1)), axis=1)
        diffs = shuffled[:, : len(x)].mean(1) - shuffled[:, len(x) :].mean(1)
        count += int((np.abs(diffs) >= abs(observed) - 1e-12).sum())
    return PermutationResult(float(observed), (count + 1) / (permutations + 1), permutations, seed)


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_mean_ci(values: np.ndarray, seed: int) -> dict:
    """Mean with a percentile-bootstrap 95% CI: it stays inside the values' range (a probability's
    CI never leaves [0, 1]), unlike the normal approximation on small skewed groups."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0}
    mean = float(values.mean())
    if n == 1:
        return {"mean": mean, "ci95": [math.nan, math.nan], "n": 1}
    draws = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    low, high = np.percentile(values[draws].mean(1), [2.5, 97.5])
    return {"mean": mean, "ci95": [float(low), float(high)], "n": n, "ci_method": "percentile bootstrap"}
