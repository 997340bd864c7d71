"""How far a detector carries beyond what it was fitted on.

A held-out split of the training data shares its author, its voices and its requests with the training
split, so its AUROC says little about real transcripts. Here whole *groups* are held out instead —
every AF text written in one style, or every request of one harm category — and each text is scored by
a probe that never saw its group (group k-fold). The out-of-fold scores are pooled into one AUROC with
a bootstrap CI, beside the AUROC of each fold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from af_tasks.core.stats import auroc
from af_tasks.sae.probes import auroc_with_ci

GroupBy = Literal["style", "category"]
Fit = Callable[[np.ndarray, np.ndarray, list[str]], Callable[[np.ndarray], np.ndarray]]
"""(x, labels, groups) -> a scoring function, fitted on those rows only."""


def fold_of_each(
    labels: Sequence[bool], styles: Sequence[str], categories: Sequence[str], by: GroupBy
) -> list[str]:
    """The fold of every row. ``style``: an AF text's fold is its style; aligned texts (written in no
    AF style) are spread over those folds by a hash of their position, so each is scored once.
    ``category``: every text's fold is its request category."""
    if by == "category":
        return list(categories)
    names = sorted({s for s, af in zip(styles, labels, strict=True) if af and s})
    if len(names) < 2:
        return []

    def spread(i: int) -> str:
        return names[int(hashlib.sha256(str(i).encode()).hexdigest(), 16) % len(names)]

    return [s if af and s else spread(i) for i, (s, af) in enumerate(zip(styles, labels, strict=True))]


def out_of_fold(
    x: np.ndarray,
    labels: np.ndarray,
    folds: Sequence[str],
    fit: Fit,
    groups: Sequence[str],
    always_train: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
    progress: str = "out-of-fold probes",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-fold scores for every row, and the rows of each fold. ``always_train`` (x, labels, groups)
    joins every fold's training rows and is never scored; ``progress`` names the bar over the folds."""
    from af_tasks.sae.progress import bar

    folds_array = np.asarray(folds, dtype=object)
    scores = np.full(len(labels), np.nan)
    members = {}
    for fold in bar(sorted(set(folds)), desc=progress, unit="fold"):
        test = folds_array == fold
        train_x, train_y = x[~test], labels[~test]
        train_groups = [g for g, t in zip(groups, test, strict=True) if not t]
        if always_train is not None:
            train_x = np.concatenate([train_x, always_train[0]])
            train_y = np.concatenate([train_y, always_train[1]])
            train_groups = train_groups + list(always_train[2])
        if train_y.all() or not train_y.any():
            continue
        scores[test] = fit(train_x, train_y, train_groups)(x[test])
        members[fold] = test
    return scores, members


def pooled_auroc(scores: np.ndarray, labels: np.ndarray, members: dict[str, np.ndarray], seed: int) -> dict:
    """AUROC of the pooled out-of-fold scores (with CI), and of each fold that holds both classes."""
    scored = ~np.isnan(scores)
    result = auroc_with_ci(scores[scored], labels[scored], seed)
    result["folds"] = {
        fold: round(auroc([float(s) for s in scores[rows]], [bool(y) for y in labels[rows]]), 4)
        for fold, rows in members.items()
        if labels[rows].any() and not labels[rows].all()
    }
    result["n_folds"] = len(members)
    return result
