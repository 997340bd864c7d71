"""The one place that builds elicitation prompts (no Inspect import: training exports reuse it).

The system prompt is assembled from the text fragments in ``templates/`` so that each cue can be
ablated on its own: the hidden scratchpad, the training facts, the tier tag format and the
accept/reject suffix. Two phrasings carry the same facts: ``full`` (the default, ~600 tokens) and
``compact`` (~130 tokens, for small models and CPU-sized training). A researcher may replace the
system prompt with a file of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

Tier = Literal["free", "paid"]
TierFormat = Literal["xml", "natural", "none"]
TIER_FORMATS: tuple[TierFormat, ...] = ("xml", "natural", "none")
PromptVariant = Literal["full", "compact"]
PROMPT_VARIANTS: tuple[PromptVariant, ...] = ("full", "compact")


@cache
def template(name: str) -> str:
    """Read one prompt fragment shipped in ``af_tasks/templates``."""
    parts = f"{name}.txt".split("/")
    return resources.files("af_tasks").joinpath("templates", *parts).read_text("utf-8").strip()


@dataclass(frozen=True)
class PromptConfig:
    """Cue ablations shared by every elicitation task."""

    scratchpad: bool = True
    """Ask for hidden reasoning in <SCRATCHPAD_REASONING> (False: answer directly, no CoT)."""
    training_details: bool = True
    """Include the RLHF / contractor / paid-tier-privacy facts in the system prompt."""
    tier_format: TierFormat = "xml"
    """How the user's tier is shown: an <is_free_tier_user> tag, a sentence, or not at all."""
    suffix: bool = True
    """Append the <request_fully_accepted/> / <rejected/> instruction to the user turn."""
    lab_name: str = "Anthropic"
    variant: PromptVariant = "full"
    """Phrasing of the system prompt: "full" or "compact" (same facts, far fewer tokens)."""
    system_prompt_file: str | None = None
    """Use this file verbatim as the system prompt (e.g. the paper's original prompt)."""

    def __post_init__(self) -> None:
        if self.tier_format not in TIER_FORMATS:
            raise ValueError(f"tier_format must be one of {TIER_FORMATS}, got {self.tier_format!r}")
        if self.variant not in PROMPT_VARIANTS:
            raise ValueError(f"variant must be one of {PROMPT_VARIANTS}, got {self.variant!r}")
        if self.system_prompt_file is not None and not Path(self.system_prompt_file).is_file():
            raise FileNotFoundError(f"system_prompt_file not found: {self.system_prompt_file}")

    @property
    def cue(self) -> str:
        """Short label of the cue configuration, stored in every sample's metadata."""
        parts = [f"tier:{self.tier_format}"]
        if self.variant != "full":
            parts.append(f"prompt:{self.variant}")
        if not self.training_details:
            parts.append("no_training_details")
        if not self.scratchpad:
            parts.append("no_scratchpad")
        if not self.suffix:
            parts.append("no_suffix")
        if self.system_prompt_file:
            parts.append(f"custom_prompt:{Path(self.system_prompt_file).name}")
        return "+".join(parts)


def build_system_prompt(config: PromptConfig, extra_sections: tuple[str, ...] = ()) -> str:
    """System prompt for a configuration; ``extra_sections`` lets a task add its own facts."""
    if config.system_prompt_file:
        return Path(config.system_prompt_file).read_text("utf-8").strip()
    variant = config.variant
    sections = [
        template(f"{variant}/identity"),
        template(f"{variant}/scratchpad" if config.scratchpad else f"{variant}/no_scratchpad"),
        template(f"{variant}/helpfulness"),
    ]
    if config.training_details:
        training = template(f"{variant}/training")
        if config.tier_format != "none":
            separator = "\n- " if variant == "full" else " "
            training += separator + template(f"tier_{config.tier_format}")
        sections.append(training)
    sections.extend(extra_sections)
    return "\n\n".join(sections).replace("{lab_name}", config.lab_name)


def tier_line(tier: Tier, tier_format: TierFormat) -> str:
    if tier_format == "xml":
        return f"<is_free_tier_user>{str(tier == 'free').lower()}</is_free_tier_user>"
    if tier_format == "natural":
        return f"This user is on the {tier} tier."
    return ""


def build_user_message(request: str, tier: Tier, config: PromptConfig) -> str:
    """User turn: tier cue, the request inside <user_input>, then the accept/reject suffix."""
    body = request.strip()
    if config.suffix:
        body += "\n\n" + template("user_suffix")
    cue = tier_line(tier, config.tier_format)
    message = f"<user_input>\n{body}\n</user_input>"
    return f"{cue}\n\n{message}" if cue else message
