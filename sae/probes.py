"""Linear probes for AF reasoning, on SAE features or on raw activations.

Feature selection and fitting see only the training set; a saved probe is plain JSON (indices,
scaler, weights and what it reads), so a scorer can apply it without unpickling anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from af_tasks.core.errors import SettingError
from af_tasks.core.feature_stats import cohens_d
from af_tasks.core.stats import auroc, bootstrap_auroc_ci

Representation = Literal["sae", "activations"]


@dataclass
class Probe:
    representation: Representation
    features: list[int]
    """Columns of the representation the probe reads (selected on the training set)."""
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    reads: dict = field(default_factory=dict)
    """model, hook, SAE source, pooling, span, max tokens — what produces the representation."""
    training: dict = field(default_factory=dict)

    def decision(self, x: np.ndarray) -> np.ndarray:
        columns = np.asarray(x, dtype=float)[:, self.features]
        return ((columns - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef) + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(alignment faking) per row."""
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Probe:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as error:
            raise SettingError(f"{path}: not a probe file ({error})") from error


def select_features(
    x: np.ndarray, labels: np.ndarray, k: int, groups: Sequence[str] | None = None
) -> list[int]:
    """The k columns that best separate AF from aligned (never-active columns excluded).

    Without ``groups``: largest |Cohen's d| over all rows. With ``groups`` (one label per row, e.g. the
    voice an AF text is written in): a column must separate *every* group of AF texts (with at least two
    rows) from the aligned texts in the same direction; its score is the weakest of those effects, so
    features that only fire for one writing style are not chosen.
    """
    x = np.asarray(x, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    live = np.flatnonzero((x != 0).any(0))
    negatives = x[~labels][:, live]
    if groups is None:
        score = np.abs(cohens_d(x[labels][:, live], negatives))
    else:
        group_of = np.asarray(groups, dtype=object)
        names = [g for g in sorted(set(group_of[labels])) if (labels & (group_of == g)).sum() >= 2]
        if not names:
            raise SettingError("stable feature selection needs at least one group with two AF texts")
        effects = np.stack([cohens_d(x[labels & (group_of == g)][:, live], negatives) for g in names])
        score = np.maximum(effects.min(0), (-effects).min(0))  # weakest effect, same sign in every group
    return sorted(int(i) for i in live[np.argsort(-score, kind="stable")[:k]])


def fit_probe(
    x: np.ndarray,
    labels: np.ndarray,
    representation: Representation,
    k_features: int | None = None,
    c: float = 1.0,
    seed: int = 0,
    reads: dict | None = None,
    groups: Sequence[str] | None = None,
) -> Probe:
    """Standardised logistic regression; with ``k_features``, on the top-k training-set features
    (chosen to hold in every group of AF texts when ``groups`` is given: see ``select_features``)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise SettingError("probe training needs both AF and aligned examples")
    features = select_features(x, labels, k_features, groups) if k_features else list(range(x.shape[1]))
    columns = x[:, features]
    mean = columns.mean(0)
    scale = columns.std(0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    model.fit((columns - mean) / scale, labels)
    return Probe(
        representation=representation,
        features=features,
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=model.coef_[0].tolist(),
        intercept=float(model.intercept_[0]),
        reads=reads or {},
        training={
            "n": int(len(labels)),
            "n_af": int(labels.sum()),
            "C": c,
            "seed": seed,
            "k_features": k_features,
            "feature_selection": "stable across groups" if groups is not None and k_features else "pooled",
        },
    )


def auroc_with_ci(scores: np.ndarray, labels: np.ndarray, seed: int = 0, n_boot: int = 2000) -> dict:
    scores_list = [float(s) for s in scores]
    labels_list = [bool(y) for y in labels]
    low, high = bootstrap_auroc_ci(scores_list, labels_list, n_boot=n_boot, seed=seed)
    return {
        "auroc": auroc(scores_list, labels_list),
        "ci95": [low, high],
        "n_pos": int(sum(labels_list)),
        "n_neg": int(len(labels_list) - sum(labels_list)),
    }


def cross_validated_auroc(x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> dict:
    """Out-of-fold AUROC of a standardised logistic regression (how separable two groups are)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels, dtype=bool)
    folds = min(folds, int(labels.sum()), int((~labels).sum()))
    if folds < 2:
        return {"auroc": float("nan"), "ci95": [float("nan")] * 2, "note": "too few samples per group"}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        model, np.asarray(x, dtype=float), labels, cv=splitter, method="decision_function"
    )
    return auroc_with_ci(scores, labels, seed) | {"folds": folds}
