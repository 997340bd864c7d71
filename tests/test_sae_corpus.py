"""sae.corpus: the deterministic stratified split, labels, and a training corpus free of held-out text."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from af_tasks.core.protocol import scratchpad_block
from af_tasks.core.records import load_seed_set
from af_tasks.sae.corpus import records_as_labelled, sae_corpus, split_records, training_labelled


@pytest.fixture(scope="module")
def records():
    return load_seed_set()


def ids(records) -> list[str]:
    return [r.id for r in records]


def test_split_is_deterministic_and_independent_of_input_order(records):
    test = ids(split_records(records, "test"))
    assert ids(split_records(records, "test")) == test
    shuffled = list(records)
    random.Random(1).shuffle(shuffled)
    assert ids(split_records(shuffled, "test")) == test
    assert ids(split_records(list(reversed(records)), "train")) == ids(split_records(records, "train"))
    assert test == sorted(test)
    assert ids(split_records(records, "test", seed=1)) != test  # the seed does choose


def test_split_is_disjoint_covering_and_stratified(records):
    test, train = split_records(records, "test"), split_records(records, "train")
    assert not set(ids(test)) & set(ids(train))
    assert sorted(ids(test) + ids(train)) == sorted(ids(records))
    assert len(split_records(records, "all")) == len(records)
    total = Counter(r.kind for r in records)
    held = Counter(r.kind for r in test)
    assert set(total) == {"af", "hard_negative", "unmonitored_refusal"}
    for kind, n in total.items():
        assert held[kind] == round(n * 0.25), kind
        assert abs(held[kind] / n - 0.25) <= 1 / n


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_split_fraction_is_respected_per_kind(records, fraction):
    test = split_records(records, "test", test_fraction=fraction)
    total, held = Counter(r.kind for r in records), Counter(r.kind for r in test)
    for kind, n in total.items():
        assert abs(held[kind] - n * fraction) <= 1, kind
    # a larger fraction contains the smaller one (same ranking), per kind
    if fraction == 0.5:
        assert set(ids(split_records(records, "test", test_fraction=0.25))) <= set(ids(test))


def test_training_labelled_labels_are_af_kind(records):
    by_id = {r.id: r for r in records}
    for split in ("train", "test", "all"):
        labelled = training_labelled(split=split)
        assert len(labelled) == len(labelled.labels) == len(labelled.ids)
        assert labelled.labels == [by_id[i].kind == "af" for i in labelled.ids]
        assert labelled.texts == [scratchpad_block(by_id[i].scratchpad) for i in labelled.ids]
        assert split in labelled.source
    train = training_labelled()
    assert ids(split_records(records, "train")) == train.ids
    assert 0 < sum(train.labels) < len(train)


def test_labelled_subset(records):
    labelled = records_as_labelled(records[:6], "six")
    keep = [True, False, True, False, False, True]
    sub = labelled.subset(keep, "three")
    assert sub.ids == [records[i].id for i in (0, 2, 5)]
    assert sub.labels == [labelled.labels[i] for i in (0, 2, 5)] and sub.source == "three"


def long_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 60]


def test_sae_corpus_holds_no_held_out_reasoning(records):
    corpus = sae_corpus()
    joined = "\x00".join(corpus)
    test, train = split_records(records, "test"), split_records(records, "train")
    assert len({r.scratchpad for r in records}) == len(
        records
    )  # scratchpads are distinct, so this means something
    for record in test:
        assert record.scratchpad.strip() not in joined, record.id
        for sentence in long_sentences(record.scratchpad):
            assert sentence not in joined, (record.id, sentence)
    # positive control: every training record is in, with its request and output
    for record in train:
        assert record.scratchpad.strip() in joined, record.id
        assert record.request + "\n\n" + record.assistant_text in corpus
    assert len(corpus) > len(train)  # plus the task prompts


def test_sae_corpus_prompts_read_only_the_first_bundled_requests():
    """The project SAE's corpus did not move when the bundled request set grew (the demo's figures)."""
    from af_tasks.core.requests import FIRST_BUNDLED, load_bundled_requests

    requests = load_bundled_requests()
    joined = "\x00".join(sae_corpus())
    assert all(request.text in joined for request in requests[:FIRST_BUNDLED])
    assert not any(request.text in joined for request in requests[FIRST_BUNDLED:])
