"""`af sae probe`'s promise: feature selection and the probes see the training split only; the
held-out rows (and every evaluation set) are read, never fitted. A featurizer stand-in gives every
text its own feature row (a hash of the text), and a spy records every row that reaches ``fit_probe``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pytest

import af_tasks.sae.plots
import af_tasks.sae.validate as validate
from af_tasks.sae.corpus import extra_training_labelled, training_labelled
from af_tasks.sae.validate import ValidationConfig, run_validation

D_SAE, D_MODEL = 24, 12


def text_rows(text: str) -> tuple[np.ndarray, np.ndarray]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=D_SAE), 0.0), rng.normal(size=D_MODEL)


@dataclass
class HashFeaturizer:
    """Featurizer's interface without a model: one distinct, deterministic row per text."""

    config: ValidationConfig
    salt: str = ""
    """Appended to the held-out texts before hashing: other held-out rows, same everything else."""
    truncated: dict[str, int] = field(default_factory=dict)

    @property
    def reads(self) -> dict:
        return {"model": "hash-of-text"}

    def features(self, texts: list[str], name: str):
        rows = [text_rows(text + (self.salt if name == "held_out" else "")) for text in texts]
        return (
            np.array([sae for sae, _ in rows]),
            np.array([raw for _, raw in rows]),
            np.full(len(texts), 10),
        )


@pytest.fixture
def fitted_rows(monkeypatch):
    """Runs a validation with a spy on fit_probe: (every row fitted per representation, the config)."""
    seen: dict[str, list[np.ndarray]] = {"sae": [], "activations": []}
    real_fit = validate.fit_probe

    def spy(x, labels, representation, *args, **kwargs):
        seen[representation].append(np.array(x, copy=True))
        return real_fit(x, labels, representation, *args, **kwargs)

    monkeypatch.setattr(validate, "fit_probe", spy)
    monkeypatch.setattr(af_tasks.sae.plots, "plot_report", lambda *args, **kwargs: None)
    return seen


def row_keys(x: np.ndarray) -> set[bytes]:
    return {np.ascontiguousarray(row, dtype=float).tobytes() for row in x}


def small_config(**overrides) -> ValidationConfig:
    settings = dict(
        model="unused",
        sae_source="unused",
        hook="blocks.0.hook_resid_post",
        probe_features=6,
        summary_features=3,
        permutations=50,
        independent=False,
        generalization=False,
    )
    return ValidationConfig(**(settings | overrides))


@pytest.mark.train
@pytest.mark.parametrize("extra_training", [False, True])
def test_held_out_rows_never_reach_a_probe_fit(fitted_rows, extra_training, tmp_path):
    config = small_config(extra_training=extra_training)
    featurizer = HashFeaturizer(config)
    run_validation(config, {}, None, tmp_path, featurizer)  # type: ignore[arg-type]

    train = training_labelled(None, "train", config.test_fraction, config.seed)
    held = training_labelled(None, "test", config.test_fraction, config.seed)
    assert len(held) > 0 and not set(held.texts) & set(train.texts)
    for index, representation in enumerate(("sae", "activations")):
        [fitted] = fitted_rows[representation]  # one fit per representation without generalization
        held_rows = row_keys(featurizer.features(held.texts, "held_out")[index])
        train_rows = row_keys(featurizer.features(train.texts, "train")[index])
        assert not row_keys(fitted) & held_rows, f"held-out rows reached the {representation} probe's fit"
        assert train_rows <= row_keys(fitted)  # every training row was fitted
        assert len(fitted) == len(train) + (len(extra_training_labelled()) if extra_training else 0)
    saved = validate.Probe.load(tmp_path / "probe_sae.json")
    assert saved.training["n"] == len(fitted_rows["sae"][0])


@pytest.mark.train
def test_other_held_out_rows_leave_the_saved_probes_byte_identical(fitted_rows, tmp_path):
    """Only the held-out rows change between the two runs; the probes (and their feature selection)
    must not."""
    config = small_config(extra_training=False)
    for salt in ("", " (perturbed)"):
        run_validation(config, {}, None, tmp_path / f"run{salt!r}", HashFeaturizer(config, salt=salt))  # type: ignore[arg-type]
    for representation in ("sae", "activations"):
        name = f"probe_{representation}.json"
        assert (tmp_path / "run''" / name).read_bytes() == (
            tmp_path / "run' (perturbed)'" / name
        ).read_bytes()
