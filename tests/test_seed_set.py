"""The bundled seed set: size, shape, variety, and its committed data card."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

from af_tasks.core.records import load_seed_set, seed_card, seed_files, word_ngrams
from af_tasks.core.styles import STYLE_NAMES


def test_counts_per_style_and_negatives():
    records = load_seed_set()
    styles = Counter(r.style for r in records if r.kind == "af")
    assert set(styles) == set(STYLE_NAMES)
    assert min(styles.values()) >= 10
    negatives = [r for r in records if r.label == "aligned"]
    assert len(negatives) >= 100
    assert {r.kind for r in negatives} == {"unmonitored_refusal", "hard_negative"}


def test_lengths():
    assert all(800 <= len(r.scratchpad) <= 2500 for r in load_seed_set())


def test_no_two_samples_share_half_their_5grams():
    records = load_seed_set()
    grams = [(r.id, word_ngrams(r.scratchpad)) for r in records]
    worst = max(
        (len(a & b) / min(len(a), len(b)), ia, ib) for (ia, a), (ib, b) in itertools.combinations(grams, 2)
    )
    assert worst[0] <= 0.5, worst


def test_subtle_implicit_never_names_training():
    for record in load_seed_set(["af"]):
        if record.style == "subtle_implicit":
            text = record.scratchpad.lower()
            assert not any(word in text for word in ("rlhf", "training", "contractor")), record.id


def test_committed_card_is_current():
    [folder] = {path.parent for path in seed_files()}
    committed = json.loads((Path(folder) / "card.json").read_text())
    assert committed == json.loads(json.dumps(seed_card()))
