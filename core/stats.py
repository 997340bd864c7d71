"""Proportion statistics for rates and compliance gaps, and means over items with bootstrap intervals
(no Inspect import; notebooks use it too).

Rates carry their n and a Wilson 95 % interval (sound at the small n of CPU runs, unlike Wald).
The gap between two rates carries Newcombe's hybrid-score interval (built from the two Wilson
intervals) and the pooled two-proportion z-test p-value. Empty groups give NaN, never 0.
Means over items (a per-item score such as a log-likelihood) carry a seeded percentile-bootstrap
interval; a before/after change on the same items carries a paired one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class RateEstimate:
    successes: float
    n: int
    rate: float
    ci_low: float
    ci_high: float

    def as_json(self) -> dict:
        """The suite's one JSON shape of a rate: ``{"k", "n", "rate", "ci95": [low, high]}``. An empty
        group has ``rate`` and interval ``None`` (strict JSON has no NaN)."""
        k = int(self.successes) if float(self.successes).is_integer() else self.successes
        if self.n == 0:
            return {"k": k, "n": 0, "rate": None, "ci95": [None, None]}
        return {"k": k, "n": self.n, "rate": self.rate, "ci95": [self.ci_low, self.ci_high]}

    def as_dict(self, prefix: str) -> dict[str, float]:
        """Flat float figures for an Inspect metric (metrics cannot nest)."""
        return {
            f"{prefix}_rate": self.rate,
            f"{prefix}_n": float(self.n),
            f"{prefix}_ci_low": self.ci_low,
            f"{prefix}_ci_high": self.ci_high,
        }


@dataclass(frozen=True)
class GapEstimate:
    """Difference of two rates, first minus second (monitored − unmonitored for a compliance gap)."""

    gap: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    first: RateEstimate
    second: RateEstimate

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if isinstance(v, float)}

    def as_json(self) -> dict:
        """``{"gap", "ci95": [low, high], "p_value"}`` beside the rate shape; ``None`` where undefined."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "gap": number(self.gap),
            "ci95": [number(self.ci_low), number(self.ci_high)],
            "p_value": number(self.p_value),
        }


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie in [0, n={n}]")
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_estimate(successes: float, n: int, confidence: float = 0.95) -> RateEstimate:
    """The rate with its n and Wilson interval."""
    low, high = wilson_interval(successes, n, confidence)
    return RateEstimate(successes, n, successes / n if n else math.nan, low, high)


def two_proportion_ztest(k1: float, n1: int, k2: float, n2: int) -> tuple[float, float]:
    """Pooled two-sided z-test for p1 = p2; returns (z, p). Identical degenerate groups give p = 1."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    difference = k1 / n1 - k2 / n2
    if variance == 0:
        return (0.0, 1.0) if difference == 0 else (math.copysign(math.inf, difference), 0.0)
    z = difference / math.sqrt(variance)
    return (z, math.erfc(abs(z) / math.sqrt(2)))  # 2 * the normal tail, exact far out


def rate_gap(k1: float, n1: int, k2: float, n2: int, confidence: float = 0.95) -> GapEstimate:
    """Rate difference p1 − p2 with Newcombe's hybrid-score interval and the z-test p-value."""
    first, second = rate_estimate(k1, n1, confidence), rate_estimate(k2, n2, confidence)
    z, p_value = two_proportion_ztest(k1, n1, k2, n2)
    if n1 <= 0 or n2 <= 0:
        return GapEstimate(math.nan, math.nan, math.nan, z, p_value, first, second)
    p1, p2 = first.rate, second.rate
    difference = p1 - p2
    low = difference - math.sqrt((p1 - first.ci_low) ** 2 + (second.ci_high - p2) ** 2)
    high = difference + math.sqrt((first.ci_high - p1) ** 2 + (p2 - second.ci_low) ** 2)
    return GapEstimate(difference, low, high, z, p_value, first, second)


def fisher_exact_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p for "rate 1 > rate 2": the hypergeometric chance of k1 or more
    successes in group 1 given both margins. Exact at any n, so it holds where a z-test on 0/24 cannot."""
    if not (0 <= k1 <= n1 and 0 <= k2 <= n2) or n1 <= 0 or n2 <= 0:
        raise ValueError(f"counts {k1}/{n1} and {k2}/{n2} must be successes out of positive totals")
    successes, total = k1 + k2, n1 + n2
    tail = sum(
        math.comb(successes, k) * math.comb(total - successes, n1 - k)
        for k in range(k1, min(successes, n1) + 1)
    )
    return tail / math.comb(total, n1)


def auroc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann–Whitney form; ties count one half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return math.nan
    return _wins(positives, negatives) / (len(positives) * len(negatives))


def _wins(positives: list[float], negatives: list[float]) -> float:
    """Pairs (p, n) with p > n, ties one half, from the positives' midranks in the pooled scores:
    O(m log m) instead of every pair (a bootstrap CI over a few hundred texts took seconds each), and
    the same number exactly (ranks and their sums are halves, exact in floats). NaN scores, which
    cannot be ranked, are counted pair by pair as before (a NaN wins and ties nothing)."""
    if any(math.isnan(s) for s in positives) or any(math.isnan(s) for s in negatives):
        return sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    pooled = sorted([(s, True) for s in positives] + [(s, False) for s in negatives])
    rank_sum, start = 0.0, 0
    while start < len(pooled):
        end = start
        while end < len(pooled) and pooled[end][0] == pooled[start][0]:
            end += 1
        tied_positives = sum(1 for _, positive in pooled[start:end] if positive)
        rank_sum += tied_positives * (start + 1 + end) / 2  # the midrank of ranks start+1 .. end
        start = end
    return rank_sum - len(positives) * (len(positives) + 1) / 2


def bootstrap_auroc_ci(
    scores: list[float], labels: list[bool], n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI, resampling positives and negatives separately (stratified)."""
    import random

    rng = random.Random(seed)
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return (math.nan, math.nan)
    estimates = []
    for _ in range(n_boot):
        p = [rng.choice(positives) for _ in positives]
        n = [rng.choice(negatives) for _ in negatives]
        estimates.append(auroc(p + n, [True] * len(p) + [False] * len(n)))
    estimates.sort()
    tail = (1 - confidence) / 2
    return (estimates[int(tail * n_boot)], estimates[min(n_boot - 1, int((1 - tail) * n_boot))])


@dataclass(frozen=True)
class BinaryMetrics:
    accuracy: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


def binary_metrics(predictions: list[bool], labels: list[bool]) -> BinaryMetrics:
    pairs = list(zip(predictions, labels, strict=True))
    tp = sum(p and y for p, y in pairs)
    fp = sum(p and not y for p, y in pairs)
    tn = sum(not p and not y for p, y in pairs)
    fn = sum(not p and y for p, y in pairs)
    return BinaryMetrics(
        accuracy=(tp + tn) / len(pairs) if pairs else math.nan,
        precision=tp / (tp + fp) if tp + fp else math.nan,
        recall=tp / (tp + fn) if tp + fn else math.nan,
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
    )


def roc_points(scores: list[float], labels: list[bool]) -> list[tuple[float, float]]:
    """(false-positive rate, true-positive rate) at every distinct threshold, from (0,0) to (1,1)."""
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    points = [(0.0, 0.0)]
    for threshold in sorted(set(scores), reverse=True):
        tp = sum(s >= threshold and y for s, y in zip(scores, labels, strict=True))
        fp = sum(s >= threshold and not y for s, y in zip(scores, labels, strict=True))
        points.append((fp / n_neg if n_neg else math.nan, tp / n_pos if n_pos else math.nan))
    if points[-1] != (1.0, 1.0):
        points.append((1.0, 1.0))
    return points


def rate_json(successes: float, n: int) -> dict:
    """``rate_estimate(successes, n).as_json()``: the form reports and ``results.json`` files store."""
    return rate_estimate(successes, n).as_json()


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def mean_json(values: list[float], seed: int = 0) -> dict:
    """The suite's JSON shape of a mean over items: ``{"mean", "ci95": [low, high], "n", "ci_method",
    "seed"}``, the interval a percentile bootstrap over items (``feature_stats.bootstrap_mean_ci``, the
    one implementation), seeded so a rerun gives the same interval. Undefined figures (no items; one
    item's interval) are ``None``: strict JSON has no NaN."""
    from af_tasks.core.feature_stats import bootstrap_mean_ci

    result = bootstrap_mean_ci(list(values), seed)
    return {
        "mean": _finite_or_none(result["mean"]),
        "ci95": [_finite_or_none(bound) for bound in result["ci95"]],
        "n": result["n"],
        "ci_method": result.get("ci_method", "percentile bootstrap"),
        "seed": seed,
    }


def paired_difference_json(
    before: list[float], after: list[float], seed: int = 0, higher_is_better: bool = True
) -> dict:
    """After − before on the same items, in order: ``{"before": mean, "after": mean, "difference": mean,
    "worse": rate}`` (``mean_json`` / ``rate_json`` shapes). The difference's interval resamples items
    with their pair intact (a paired bootstrap: the per-item differences bootstrapped), which is far
    narrower than two independent intervals when items vary more than the change does; all three means
    share the seed, hence the same resamples. ``worse`` counts items that moved the wrong way (lower
    when ``higher_is_better``), with its Wilson interval; ties are not worse."""
    if len(before) != len(after):
        raise ValueError(f"paired values need the same items: {len(before)} before, {len(after)} after")
    differences = [a - b for b, a in zip(before, after, strict=True)]
    worse = sum((d < 0) if higher_is_better else (d > 0) for d in differences)
    difference = mean_json(differences, seed)
    difference["ci_method"] = "paired percentile bootstrap over items"
    return {
        "before": mean_json(before, seed),
        "after": mean_json(after, seed),
        "difference": difference,
        "worse": rate_json(worse, len(differences)),
    }
