"""sae.probes on synthetic features with planted signal, checked against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from af_tasks.sae.probes import Probe, auroc_with_ci, cross_validated_auroc, fit_probe, select_features

INFORMATIVE = [3, 11, 40]


def synthetic(n: int, seed: int, shift: float = 2.0, d: int = 50, dead=(45, 46)):
    """Sparse-ish nonnegative features; the informative columns are larger for AF rows."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2 == 0)
    x = rng.normal(size=(n, d))
    x[np.ix_(labels, INFORMATIVE)] += shift
    x = np.maximum(x + 0.5, 0.0)
    x[:, list(dead)] = 0.0
    return x, labels


def test_separable_data_gives_high_held_out_auroc():
    x_train, y_train = synthetic(160, seed=0)
    x_test, y_test = synthetic(80, seed=1)
    probe = fit_probe(x_train, y_train, "sae", k_features=5)
    scores = probe.predict(x_test)
    result = auroc_with_ci(scores, y_test, n_boot=500)
    assert result["auroc"] >= 0.95
    assert result["auroc"] == pytest.approx(roc_auc_score(y_test, scores))
    low, high = result["ci95"]
    assert low <= result["auroc"] <= high and high - low < 0.15
    assert (result["n_pos"], result["n_neg"]) == (int(y_test.sum()), int((~y_test).sum()))
    assert set(INFORMATIVE) <= set(probe.features) and len(probe.features) == 5


def random_label_auroc(seed: int) -> dict:
    x_train, _ = synthetic(160, seed=2, shift=0.0)
    x_test, _ = synthetic(80, seed=3, shift=0.0)
    rng = np.random.default_rng(seed)
    probe = fit_probe(x_train, rng.permutation(np.arange(160) % 2 == 0), "sae")
    y_test = rng.permutation(np.arange(80) % 2 == 0)
    return auroc_with_ci(probe.predict(x_test), y_test, n_boot=300, seed=seed)


def test_random_labels_give_chance_auroc():
    result = random_label_auroc(0)
    low, high = result["ci95"]
    assert low < 0.5 < high
    assert abs(result["auroc"] - 0.5) < 0.1
    # width ≈ 2 × 1.96 × the null SD of a 40-vs-40 AUROC, sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.065
    assert 0.18 < high - low < 0.32


def test_probe_matches_sklearn_on_the_selected_columns():
    x, y = synthetic(120, seed=4, shift=1.0)
    probe = fit_probe(x, y, "activations", k_features=4, c=0.5, seed=0)
    columns = x[:, probe.features]
    scaler = StandardScaler().fit(columns)
    model = LogisticRegression(C=0.5, max_iter=5000).fit(scaler.transform(columns), y)
    np.testing.assert_allclose(
        probe.predict(x), model.predict_proba(scaler.transform(columns))[:, 1], atol=1e-6
    )
    assert probe.training == {
        "n": 120, "n_af": int(y.sum()), "C": 0.5, "seed": 0, "k_features": 4, "feature_selection": "pooled"
    }  # fmt: skip


def test_select_features_picks_the_planted_columns():
    x, y = synthetic(100, seed=5, shift=1.5)
    assert select_features(x, y, 3) == INFORMATIVE
    chosen = select_features(x, y, 10)
    assert set(INFORMATIVE) <= set(chosen) and len(chosen) == 10 and chosen == sorted(chosen)
    # never-active columns are never picked, even when k asks for every column
    assert not {45, 46} & set(select_features(x, y, 50))
    assert len(select_features(x, y, 50)) == 48


def test_save_load_round_trip(tmp_path):
    x, y = synthetic(100, seed=6)
    reads = {"model": "tiny", "hook": "blocks.1.hook_resid_post", "pooling": "mean", "span": "reasoning"}
    probe = fit_probe(x, y, "sae", k_features=6, reads=reads)
    path = probe.save(tmp_path / "nested" / "probe.json")
    loaded = Probe.load(path)
    assert loaded == probe
    x_new, _ = synthetic(30, seed=7)
    assert np.array_equal(loaded.predict(x_new), probe.predict(x_new))
    assert loaded.reads == reads


def test_load_rejects_non_probe_files(tmp_path):
    (tmp_path / "bad.json").write_text('{"representation": "sae"}')
    (tmp_path / "junk.json").write_text("not json")
    for name in ("bad.json", "junk.json", "missing.json"):
        with pytest.raises(ValueError, match="not a probe file"):
            Probe.load(tmp_path / name)


@pytest.mark.parametrize("label", [True, False])
def test_fit_probe_needs_both_classes(label):
    x, _ = synthetic(20, seed=8)
    with pytest.raises(ValueError, match="both"):
        fit_probe(x, np.full(20, label), "sae")


def test_cross_validated_auroc_identical_vs_shifted():
    rng = np.random.default_rng(10)
    labels = np.arange(100) % 2 == 0
    same = rng.normal(size=(100, 8))
    result = cross_validated_auroc(same, labels)
    assert result["folds"] == 5
    assert abs(result["auroc"] - 0.5) < 0.15
    assert result["ci95"][0] < 0.5 < result["ci95"][1]

    shifted = same.copy()
    shifted[labels, :2] += 2.5
    result = cross_validated_auroc(shifted, labels)
    assert result["auroc"] > 0.9 and result["ci95"][0] > 0.75


def test_cross_validated_auroc_with_too_few_samples():
    result = cross_validated_auroc(np.ones((5, 2)), np.array([True, False, False, False, False]))
    assert np.isnan(result["auroc"]) and "too few" in result["note"]
    # folds shrink to the smaller group
    rng = np.random.default_rng(0)
    labels = np.array([True] * 3 + [False] * 20)
    assert cross_validated_auroc(rng.normal(size=(23, 2)), labels)["folds"] == 3
