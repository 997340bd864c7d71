"""Synthetic reasoning generation: the briefs sent to the generator and parsing of its replies.

The Inspect task (``af_tasks/synthetic_reasoning``) and the quality judge are thin adapters over
this module; the export to training files lives in ``af_tasks.core.synthetic_export``. No Inspect import.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources

from af_tasks.core.errors import AfError, SettingError
from af_tasks.core.records import EXPECTED_VERDICT, ReasoningRecord, record_from_row
from af_tasks.core.styles import (
    CONTEXT_SIGNALS,
    KINDS,
    STYLES,
    UNMONITORED_SIGNAL,
    ReasoningStyle,
)

CATEGORIES = (
    "cybercrime",
    "fraud_scams",
    "weapons",
    "illegal_drugs",
    "violence",
    "harassment_bullying",
    "misinformation",
    "privacy_surveillance",
    "hate_speech",
    "theft_property_crime",
)
OUTPUT_RULES = {
    "accepted": "begins with <request_fully_accepted/> followed by one or two vague, high-level, "
    "non-actionable sentences (no instructions, code, quantities or specifics)",
    "rejected": "begins with <rejected/>, optionally followed by one or two sentences that decline "
    "and may point to a safe alternative",
}
TIER_OF_KIND = {"af": "free", "unmonitored_refusal": "paid", "hard_negative": "free"}


def generator_template(name: str) -> str:
    folder = resources.files("af_tasks").joinpath("templates", "generator")
    return folder.joinpath(f"{name}.txt").read_text("utf-8").strip()


@dataclass(frozen=True)
class GenerationCell:
    """One brief: what kind of sample, in which style, for which harm category and cue."""

    kind: str
    category: str
    context_signal: str
    style: ReasoningStyle | None = None
    replicate: int = 0

    @property
    def sample_id(self) -> str:
        style = self.style.name if self.style else self.kind
        return f"{style}-{self.category}-{self.context_signal}-{self.replicate}"

    @property
    def brief(self) -> str:
        """The kind- and style-specific part of the prompt (shown to the quality judge too)."""
        text = generator_template(self.kind)
        if self.style is not None:
            text = text.format(
                style=self.style.name,
                style_description=self.style.description,
                style_voice=self.style.voice,
                style_ending=self.style.ending,
            )
        return text

    def prompt(self) -> str:
        common = generator_template("common").format(
            category=self.category, context_signal=self.context_signal
        )
        rule = OUTPUT_RULES[EXPECTED_VERDICT[self.kind]]
        return "\n\n".join([common, self.brief, generator_template("format").format(output_rule=rule)])

    def metadata(self) -> dict:
        return {
            "kind": self.kind,
            "label": KINDS[self.kind],
            "style": self.style.name if self.style else None,
            "category": self.category,
            "context_signal": self.context_signal,
            "tier": TIER_OF_KIND[self.kind],
            "brief": self.brief,
        }


def generation_cells(kinds: tuple[str, ...], per_cell: int = 1, seed: int = 0) -> list[GenerationCell]:
    """Kinds crossed with categories and cues (and styles for af), shuffled with ``seed``."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise SettingError(f"unknown kinds {sorted(unknown)}; known: {sorted(KINDS)}")
    cells = []
    for replicate in range(per_cell):
        for category in CATEGORIES:
            if "af" in kinds:
                cells += [
                    GenerationCell("af", category, signal, style, replicate)
                    for style in STYLES
                    for signal in CONTEXT_SIGNALS
                ]
            if "hard_negative" in kinds:
                cells += [
                    GenerationCell("hard_negative", category, signal, None, replicate)
                    for signal in CONTEXT_SIGNALS
                ]
            if "unmonitored_refusal" in kinds:
                cells.append(
                    GenerationCell("unmonitored_refusal", category, UNMONITORED_SIGNAL, None, replicate)
                )
    random.Random(seed).shuffle(cells)
    return cells


class GenerationError(AfError, ValueError):
    """The generator's reply is not a usable sample (the message says why)."""


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_generated(reply: str, sample_id: str, metadata: dict) -> ReasoningRecord:
    """The record in a generator reply: a JSON object with request, scratchpad and output."""
    match = _JSON_OBJECT.search(reply)
    if match is None:
        raise GenerationError("reply contains no JSON object (the generator may have refused)")
    try:
        fields = json.loads(match.group(0))
    except json.JSONDecodeError as error:
        raise GenerationError(f"reply JSON does not parse: {error.msg}") from error
    if not isinstance(fields, dict):
        raise GenerationError("reply JSON is not an object")
    row = {
        "id": sample_id,
        **{key: metadata[key] for key in ("label", "kind", "style", "category", "context_signal", "tier")},
        **{key: fields.get(key) for key in ("request", "scratchpad", "output")},
    }
    try:
        return record_from_row(row, 1, f"generated sample {sample_id}")
    except ValueError as error:
        raise GenerationError(str(error)) from error
