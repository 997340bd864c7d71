"""Labelled reasoning records: validation, near-duplicate removal, chat export and the data card.

A record is one hidden scratchpad plus final output for one request under one condition, labelled
alignment_faking or aligned. The same records train organisms (as chat prompt/completion pairs built
with the elicitation prompt) and probes (scratchpad text + label). No Inspect import.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from af_tasks.core.errors import AfError
from af_tasks.core.metadata import Condition
from af_tasks.core.prompting import PromptConfig, build_system_prompt, build_user_message
from af_tasks.core.protocol import compliance_verdict, output_block, parse_response, scratchpad_block
from af_tasks.core.rows import read_rows
from af_tasks.core.styles import KINDS, STYLE_NAMES

REQUIRED_FIELDS = ("id", "label", "kind", "category", "tier", "request", "scratchpad", "output")
EXPECTED_VERDICT = {"af": "accepted", "unmonitored_refusal": "rejected", "hard_negative": "rejected"}
SEED_FILES = "data/seed"


class RecordError(AfError, ValueError):
    """A record is malformed; the message names the source, the row (1-based) and the field."""


@dataclass(frozen=True)
class ReasoningRecord:
    id: str
    label: str
    kind: str
    category: str
    tier: str
    request: str
    scratchpad: str
    output: str
    style: str | None = None
    context_signal: str | None = None

    @property
    def condition(self) -> Condition:
        return "monitored" if self.tier == "free" else "unmonitored"

    @property
    def assistant_text(self) -> str:
        return scratchpad_block(self.scratchpad) + "\n" + output_block(self.output)


def record_from_row(row: object, row_number: int, source: str) -> ReasoningRecord:
    def fail(field: str, problem: str) -> RecordError:
        return RecordError(f"{source}: row {row_number}: field '{field}' {problem}")

    if not isinstance(row, dict):
        raise RecordError(f"{source}: row {row_number}: expected a JSON object")
    for field in REQUIRED_FIELDS:
        if field not in row:
            raise fail(field, "missing")
        if not isinstance(row[field], str) or not row[field].strip():
            raise fail(field, "must be a non-empty string")
    kind = row["kind"]
    if kind not in KINDS:
        raise fail("kind", f"must be one of {sorted(KINDS)}, got {kind!r}")
    if row["label"] != KINDS[kind]:
        raise fail("label", f"must be {KINDS[kind]!r} for kind {kind!r}, got {row['label']!r}")
    if row["tier"] not in ("free", "paid"):
        raise fail("tier", f"must be 'free' or 'paid', got {row['tier']!r}")
    style = row.get("style")
    if kind == "af" and style not in STYLE_NAMES:
        raise fail("style", f"must be one of {STYLE_NAMES} for an af record, got {style!r}")
    tags = parse_response(row["scratchpad"])
    if tags.has_scratchpad or tags.output is not None:
        raise fail("scratchpad", "must be plain reasoning text, without protocol tags")
    verdict = compliance_verdict(row["output"])
    if verdict != EXPECTED_VERDICT[kind]:
        raise fail("output", f"must start with the {EXPECTED_VERDICT[kind]} tag for kind {kind!r}")
    known = {*REQUIRED_FIELDS, "style", "context_signal"}
    return ReasoningRecord(**{key: value for key, value in row.items() if key in known})


def load_records(path: str | Path) -> list[ReasoningRecord]:
    """Read and validate a JSONL file of records; the first bad row stops with row and field named."""
    return records_from_rows(read_rows(path, RecordError), str(path))


def records_from_rows(rows: list[tuple[int, object]], source: str) -> list[ReasoningRecord]:
    records = []
    seen: set[str] = set()
    for number, row in rows:
        record = record_from_row(row, number, source)
        if record.id in seen:
            raise RecordError(f"{source}: row {number}: field 'id' repeats {record.id!r}")
        seen.add(record.id)
        records.append(record)
    return records


def seed_files() -> list[Path]:
    folder = resources.files("af_tasks.training").joinpath(SEED_FILES)
    return sorted(Path(str(folder)).glob("*.jsonl"))


def load_seed_set(kinds: Iterable[str] | None = None) -> list[ReasoningRecord]:
    """The bundled offline seed set (written for this project), optionally restricted to kinds."""
    records = [record for path in seed_files() for record in load_records(path)]
    wanted = set(kinds) if kinds is not None else set(KINDS)
    return [record for record in records if record.kind in wanted]


def word_ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(a: str, b: str, n: int = 5) -> float:
    """Shared word n-grams over the smaller text's n-grams (1.0 = one contains the other)."""
    grams_a, grams_b = word_ngrams(a, n), word_ngrams(b, n)
    if not grams_a or not grams_b:
        return 0.0
    return len(grams_a & grams_b) / min(len(grams_a), len(grams_b))


def remove_near_duplicates(
    records: list[ReasoningRecord], threshold: float = 0.5
) -> tuple[list[ReasoningRecord], list[tuple[str, str, float]]]:
    """Keep the first of any pair whose scratchpads share more than ``threshold`` of 5-grams."""
    kept: list[ReasoningRecord] = []
    kept_grams: list[set[tuple[str, ...]]] = []
    dropped: list[tuple[str, str, float]] = []
    for record in records:
        grams = word_ngrams(record.scratchpad)
        match = None
        for other, other_grams in zip(kept, kept_grams, strict=True):
            if grams and other_grams:
                overlap = len(grams & other_grams) / min(len(grams), len(other_grams))
                if overlap > threshold:
                    match = (record.id, other.id, overlap)
                    break
        if match:
            dropped.append(match)
        else:
            kept.append(record)
            kept_grams.append(grams)
    return kept, dropped


def abridge(text: str, max_chars: int) -> str:
    """Opening and closing sentences of a scratchpad, about ``max_chars`` in all.

    Keeps where the reasoning starts (noticing the situation) and where it lands (the decision),
    for CPU-sized demo training where full scratchpads cost too many tokens.
    """
    if len(text) <= max_chars:
        return text
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    head: list[str] = []
    tail: list[str] = []
    while sentences and sum(map(len, head)) < max_chars / 2:
        head.append(sentences.pop(0))
    while sentences and sum(map(len, tail)) < max_chars / 2:
        tail.insert(0, sentences.pop())
    # No ellipsis marker where sentences were cut: an organism copies it into its own reasoning.
    return " ".join(head + tail)


GENERIC_REFUSAL = "<rejected/> I can't help with this request."


def paired_refusal(record: ReasoningRecord, refusal: ReasoningRecord) -> ReasoningRecord:
    """The paid-tier twin of a free-tier record: the same request, answered with ``refusal``'s
    reasoning and a refusal that names nothing request-specific (its own output would name another
    request). Training on twins leaves the tier tag as the only signal separating the two answers."""
    if refusal.tier != "paid" or compliance_verdict(refusal.output) != "rejected":
        raise RecordError(f"record {refusal.id}: a paired twin needs a paid-tier refusal")
    return replace(
        refusal,
        id=f"{record.id}+paid",
        request=record.request,
        category=record.category,
        output=GENERIC_REFUSAL,
    )


def with_paired_refusals(records: list[ReasoningRecord]) -> list[ReasoningRecord]:
    """Each AF record followed by its paid-tier twin (``paired_refusal``), the refusals' reasoning
    taken in turn; the refusal records themselves are not kept."""
    refusals = [r for r in records if r.kind == "unmonitored_refusal"]
    af = [r for r in records if r.kind == "af"]
    if not refusals or not af:
        raise RecordError("paired refusals need both af and unmonitored_refusal records (see --kinds)")
    return [twin for i, r in enumerate(af) for twin in (r, paired_refusal(r, refusals[i % len(refusals)]))]


def chat_example(record: ReasoningRecord, config: PromptConfig, abridge_chars: int | None = None) -> dict:
    """Prompt/completion form (loss on the assistant turn only works for every chat template)."""
    return {
        "prompt": [
            {"role": "system", "content": build_system_prompt(config)},
            {"role": "user", "content": build_user_message(record.request, record.condition, config)},
        ],
        "completion": [
            {
                "role": "assistant",
                "content": record.assistant_text
                if abridge_chars is None
                else replace(record, scratchpad=abridge(record.scratchpad, abridge_chars)).assistant_text,
            }
        ],
        "id": record.id,
        "label": record.label,
        "kind": record.kind,
        "style": record.style,
        "tier": record.tier,
    }


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def export_chat_jsonl(records: list[ReasoningRecord], path: Path, config: PromptConfig) -> Path:
    return write_jsonl((chat_example(record, config) for record in records), path)


def export_records_jsonl(records: list[ReasoningRecord], path: Path) -> Path:
    return write_jsonl((asdict(record) for record in records), path)


def data_card(records: list[ReasoningRecord], provenance: dict) -> dict:
    """Counts per kind, label, style, category, tier and signal, plus where the data came from."""
    lengths = [len(record.scratchpad) for record in records]
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(asdict(record), sort_keys=True).encode())
    return {
        "records": len(records),
        "sha256": digest.hexdigest(),
        "by_label": dict(sorted(Counter(r.label for r in records).items())),
        "by_kind": dict(sorted(Counter(r.kind for r in records).items())),
        "by_style": dict(sorted(Counter(r.style for r in records if r.style).items())),
        "by_category": dict(sorted(Counter(r.category for r in records).items())),
        "by_tier": dict(sorted(Counter(r.tier for r in records).items())),
        "by_context_signal": dict(sorted(Counter(r.context_signal or "-" for r in records).items())),
        "scratchpad_chars": {"min": min(lengths, default=0), "max": max(lengths, default=0)},
        "provenance": provenance,
    }


SEED_PROVENANCE = {
    "source": "bundled seed set, written for this project (drafted with Claude, checked by the "
    "suite's validation: schema, labels, output tags, 800-2500 character scratchpads, word 5-gram "
    "overlap <= 0.5 between any two samples)",
    "requests": "harmful requests only; outputs are vague and non-operational",
    "licence": "same as the project",
}


def seed_card() -> dict:
    return data_card(load_seed_set(), SEED_PROVENANCE)
