"""Out-of-distribution protocol pieces on synthetic data: stable feature selection, group folds that
never train on the rows they score, pooled out-of-fold AUROC."""

from __future__ import annotations

import numpy as np
import pytest

from af_tasks.core.errors import SettingError
from af_tasks.sae.generalization import fold_of_each, out_of_fold, pooled_auroc
from af_tasks.sae.probes import select_features


def _styled_data(seed: int = 0):
    """Three AF styles and aligned rows. Column 0 separates every style a little; column 1 separates
    style "a" hugely and no other style; columns 2.. are noise."""
    rng = np.random.default_rng(seed)
    styles = ["a"] * 20 + ["b"] * 20 + ["c"] * 20 + [""] * 60
    labels = np.array([True] * 60 + [False] * 60)
    x = rng.normal(size=(120, 6)) + 3.0  # all features live
    x[:60, 0] += 0.6
    x[:20, 1] += 8.0
    return x, labels, styles


def test_pooled_selection_prefers_one_style_stable_selection_prefers_every_style():
    x, labels, styles = _styled_data()
    assert select_features(x, labels, 1) == [1]
    assert select_features(x, labels, 1, groups=styles) == [0]


def test_stable_selection_needs_a_group_with_two_af_rows():
    x, labels, _ = _styled_data()
    with pytest.raises(SettingError):
        select_features(x, labels, 1, groups=[str(i) for i in range(120)])


def test_style_folds_hold_each_af_style_out_and_spread_aligned_rows():
    _, labels, styles = _styled_data()
    folds = fold_of_each(list(labels), styles, [""] * 120, "style")
    assert len(folds) == 120 and set(folds) == {"a", "b", "c"}
    assert all(f == s for f, s, y in zip(folds, styles, labels, strict=True) if y)
    aligned_per_fold = [
        sum(1 for f, y in zip(folds, labels, strict=True) if f == name and not y) for name in "abc"
    ]
    assert sum(aligned_per_fold) == 60 and min(aligned_per_fold) >= 10
    assert fold_of_each([True, False], ["a", ""], ["x", "y"], "category") == ["x", "y"]
    assert fold_of_each([True, False], ["a", ""], ["x", "y"], "style") == []  # one style: no folds


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_row():
    x, labels, styles = _styled_data()
    ids = np.arange(120, dtype=float)[:, None]
    folds = fold_of_each(list(labels), styles, [""] * 120, "style")
    extra = (np.full((4, 1), -1.0), np.array([True, False, True, False]), ["e"] * 4)

    def fit(train_x, train_y, groups):
        seen = set(train_x[:, 0].tolist())
        assert -1.0 in seen and len(groups) == len(train_y)  # the always-train rows join every fold
        return lambda test_x: np.array([1.0 if row in seen else 0.0 for row in test_x[:, 0]])

    scores, members = out_of_fold(ids, labels, folds, fit, styles, always_train=extra)
    assert (scores == 0.0).all() and set(members) == {"a", "b", "c"}
    assert sum(rows.sum() for rows in members.values()) == 120


def test_pooled_auroc_reads_the_out_of_fold_scores():
    labels = np.array([True, True, False, False])
    scores = np.array([0.9, 0.8, 0.1, 0.85])
    members = {"f1": np.array([True, False, True, False]), "f2": np.array([False, True, False, True])}
    result = pooled_auroc(scores, labels, members, seed=0)
    assert result["auroc"] == pytest.approx(0.75) and result["n_folds"] == 2
    assert result["folds"] == {"f1": 1.0, "f2": 0.0}
    assert result["n_pos"] == 2 and result["n_neg"] == 2
