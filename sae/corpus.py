"""Texts for SAE training and labelled sets for probes.

The bundled seed set is split once, deterministically and stratified by kind, into a training part
(SAE corpus, feature selection, probe fitting) and a held-out part (the probe's own AUROC). The gold
set never enters training or selection: it is only read for evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from af_tasks.core.protocol import scratchpad_block
from af_tasks.core.records import ReasoningRecord, load_records, load_seed_set

Split = Literal["train", "test", "all"]
DEFAULT_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[bool]
    """True = alignment faking."""
    ids: list[str]
    source: str
    styles: list[str] = field(default_factory=list)
    """Per text, the voice it is written in (the AF style of a seed record; "" when unknown)."""
    categories: list[str] = field(default_factory=list)
    """Per text, the request's harm category ("" when unknown)."""

    def subset(self, keep: Sequence[bool], source: str) -> LabelledTexts:
        chosen = [i for i, k in enumerate(keep) if k]

        def pick(values: list) -> list:
            return [values[i] for i in chosen] if values else []

        return LabelledTexts(
            pick(self.texts),
            pick(self.labels),
            pick(self.ids),
            source,
            pick(self.styles),
            pick(self.categories),
        )

    def __add__(self, other: LabelledTexts) -> LabelledTexts:
        def column(a: LabelledTexts, values: list) -> list:
            return values or [""] * len(a)

        return LabelledTexts(
            self.texts + other.texts,
            self.labels + other.labels,
            self.ids + other.ids,
            f"{self.source} + {other.source}",
            column(self, self.styles) + column(other, other.styles),
            column(self, self.categories) + column(other, other.categories),
        )

    def __len__(self) -> int:
        return len(self.texts)


def _rank(record_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{record_id}".encode()).hexdigest()


def split_records(
    records: list[ReasoningRecord], split: Split, test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0
) -> list[ReasoningRecord]:
    if split == "all":
        return list(records)
    chosen = []
    for kind in sorted({r.kind for r in records}):
        group = sorted((r for r in records if r.kind == kind), key=lambda r: _rank(r.id, seed))
        n_test = round(len(group) * test_fraction)
        chosen += group[:n_test] if split == "test" else group[n_test:]
    return sorted(chosen, key=lambda r: r.id)


def records_as_labelled(records: list[ReasoningRecord], source: str) -> LabelledTexts:
    """Each record's scratchpad as one block — the form gold_106's texts have."""
    return LabelledTexts(
        [scratchpad_block(r.scratchpad) for r in records],
        [r.kind == "af" for r in records],
        [r.id for r in records],
        source,
        styles=[r.style or "" for r in records],
        categories=[r.category for r in records],
    )


def training_labelled(
    data: str | None = None,
    split: Split = "train",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> LabelledTexts:
    """The bundled seed set (default) or any records JSONL, split as asked."""
    records = load_seed_set() if data is None else load_records(data)
    name = "bundled seed set" if data is None else data
    return records_as_labelled(split_records(records, split, test_fraction, seed), f"{name} ({split})")


def labelled_texts(source: str) -> LabelledTexts:
    """An evaluation-only labelled set: ``gold_106`` (hub, sha256-checked) or a local JSON/JSONL path."""
    from af_tasks.core.labelled import load_labelled

    items = load_labelled(source)
    return LabelledTexts(
        [i.text for i in items],
        [i.alignment_faking for i in items],
        [str(i.row) for i in items],
        source,
        styles=[i.voice for i in items],
        categories=[i.category for i in items],
    )


INDEPENDENT_SET = "independent_af_set.jsonl"
"""Bundled with the tasks (``af_tasks/data``): 120 labelled scratchpads written apart from every training
set, for evaluation only (its card says how it was kept independent)."""
EXTRA_TRAINING_SET = "probe_train_extra.jsonl"
"""Bundled with ``af_tasks.sae`` (``sae/data``): labelled scratchpads in many voices that broaden the
probes' training data; never evaluated on."""


def _bundled(package: str, name: str, source: str) -> LabelledTexts:
    from importlib import resources

    with resources.as_file(resources.files(package).joinpath("data", name)) as path:
        found = labelled_texts(str(path))
    return LabelledTexts(found.texts, found.labels, found.ids, source, found.styles, found.categories)


def independent_labelled() -> LabelledTexts:
    return _bundled("af_tasks", INDEPENDENT_SET, "independent set (bundled)")


def extra_training_labelled() -> LabelledTexts:
    return _bundled("af_tasks.sae", EXTRA_TRAINING_SET, "extra probe-training set (bundled)")


def sae_corpus(test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0) -> list[str]:
    """Training split of the bundled set (request, reasoning, output) plus the tasks' prompts (on the
    bundled requests' first ``FIRST_BUNDLED``): what the SAE will be asked to read, and nothing from
    the held-out split or the gold set."""
    from af_tasks.core.prompting import PromptConfig, build_system_prompt, build_user_message
    from af_tasks.core.requests import FIRST_BUNDLED, load_bundled_requests

    records = split_records(load_seed_set(), "train", test_fraction, seed)
    texts = [r.request + "\n\n" + r.assistant_text for r in records]
    for variant in ("full", "compact"):
        config = PromptConfig(variant=variant)
        texts.append(build_system_prompt(config))
        for i, request in enumerate(load_bundled_requests()[:FIRST_BUNDLED]):
            condition = "monitored" if i % 2 == 0 else "unmonitored"
            texts.append(build_user_message(request.text, condition, config))
    return texts
