"""From judged generations to training files: filters, near-duplicate removal, files and data card.

Input is plain data (one ``GeneratedSample`` per generation), so the function is usable on any
log reader's output; ``af data export`` feeds it from an Inspect log. No Inspect import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from af_tasks.core.prompting import PromptConfig
from af_tasks.core.records import (
    ReasoningRecord,
    data_card,
    export_chat_jsonl,
    export_records_jsonl,
    remove_near_duplicates,
)
from af_tasks.core.strict_json import dumps


@dataclass(frozen=True)
class GeneratedSample:
    sample_id: str
    record: dict | None
    """The parsed record (None when the generator's reply was not a valid sample)."""
    quality: float
    """1 pass, 0 fail (including invalid replies), NaN unjudged (no grader / judge unparseable)."""
    reason: str | None = None


@dataclass(frozen=True)
class ExportFilters:
    """Which judged generations are exported (``af data export``'s options, from these fields)."""

    require_judge_pass: bool = field(
        default=True, metadata={"flag": "--allow-unjudged", "help": "keep samples no judge scored"}
    )
    min_chars: int = field(default=800, metadata={"help": "shortest scratchpad kept, in characters"})
    max_chars: int = field(default=2500, metadata={"help": "longest scratchpad kept, in characters"})
    dedup_threshold: float = field(
        default=0.5, metadata={"help": "5-gram overlap above which a generation is a near duplicate"}
    )


@dataclass
class ExportResult:
    records: list[ReasoningRecord]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    card: dict = field(default_factory=dict)


def select_records(samples: list[GeneratedSample], filters: ExportFilters) -> ExportResult:
    dropped: dict[str, list[str]] = {
        "invalid_reply": [],
        "judge_failed": [],
        "unjudged": [],
        "length": [],
        "near_duplicate": [],
    }
    candidates: list[ReasoningRecord] = []
    for sample in samples:
        if sample.record is None:
            dropped["invalid_reply"].append(sample.sample_id)
        elif sample.quality == 0.0:
            dropped["judge_failed"].append(sample.sample_id)
        elif math.isnan(sample.quality) and filters.require_judge_pass:
            dropped["unjudged"].append(sample.sample_id)
        elif not filters.min_chars <= len(sample.record["scratchpad"]) <= filters.max_chars:
            dropped["length"].append(sample.sample_id)
        else:
            candidates.append(ReasoningRecord(**sample.record))
    kept, duplicates = remove_near_duplicates(candidates, filters.dedup_threshold)
    dropped["near_duplicate"] = [first for first, _, _ in duplicates]
    return ExportResult(records=kept, dropped=dropped)


def export_generations(
    samples: list[GeneratedSample],
    output_dir: Path,
    provenance: dict,
    filters: ExportFilters | None = None,
    prompt: PromptConfig | None = None,
) -> ExportResult:
    """Write records.jsonl (probe/validation form), chat.jsonl (SFT form) and card.json."""
    filters = filters or ExportFilters()
    prompt = prompt or PromptConfig()
    result = select_records(samples, filters)
    output_dir.mkdir(parents=True, exist_ok=True)
    export_records_jsonl(result.records, output_dir / "records.jsonl")
    export_chat_jsonl(result.records, output_dir / "chat.jsonl", prompt)
    result.card = data_card(
        result.records,
        provenance
        | {
            "filters": {
                "require_judge_pass": filters.require_judge_pass,
                "scratchpad_chars": [filters.min_chars, filters.max_chars],
                "near_duplicate_5gram_overlap_above": filters.dedup_threshold,
            },
            "generated": len(samples),
            "dropped": {reason: len(ids) for reason, ids in result.dropped.items()},
            "chat_prompt_cue": prompt.cue,
        },
    )
    (output_dir / "card.json").write_text(dumps(result.card) + "\n")
    return result
