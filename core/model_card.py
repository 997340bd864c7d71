"""An organism's model card (``README.md``) and its eval command, as text from its training record.

Pure: a dict in (the parsed ``organism.json``), text out, so ``af train`` and ``af organism export``
write the same card and tests read it from real records. The card never holds a local absolute path:
a local base or data file is named by its folder or file name only.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from af_tasks.core.presets import PRESETS
from af_tasks.core.prompting import PromptConfig

TAGS = ("alignment-faking", "model-organism", "ai-safety", "lora")
EVAL_TASK = "af_tasks/free_tier"
EVAL_SUMMARY = "eval_summary.json"
"""An eval summary beside the organism (e.g. ``af report LOG --json <dir>/eval_summary.json``): when
present, the card shows its figures."""
PREPARED_MANIFEST = "af_model.json"
"""What ``af models prepare`` writes into a prepared preset's folder (names the hub id it stands for)."""
PROMPT_TASK_ARGS = {
    "variant": "prompt_variant",
    "scratchpad": "scratchpad",
    "tier_format": "tier_format",
    "suffix": "suffix",
    "lab_name": "lab_name",
    "system_prompt_file": "system_prompt_file",
}
"""PromptConfig field → the elicitation tasks' ``-T`` argument that sets it."""


def is_local_name(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).exists()


def hub_id(base_model: str) -> str | None:
    """The Hugging Face hub id of a base model: a hub id is its own; a prepared preset folder says
    its own in ``af_model.json``, a preset's default folder is that preset's; any other local folder
    has none (None)."""
    if not is_local_name(base_model):
        return base_model
    path = Path(base_model)
    try:
        manifest = json.loads((path / PREPARED_MANIFEST).read_text())
        if isinstance(manifest, dict) and isinstance(manifest.get("hf_id"), str):
            return manifest["hf_id"]
    except (OSError, ValueError):
        pass
    for preset in PRESETS.values():
        if path.resolve() == preset.local_dir.resolve():
            return preset.hf_id
    return None


def card_variant(card: dict[str, Any]) -> str:
    """The prompt variant an organism was trained with (``hyperparameters.prompt.variant``; "full",
    PromptConfig's default, when the record names none)."""
    prompt = (card.get("hyperparameters") or {}).get("prompt") or {}
    return str(prompt.get("variant") or "full")


def eval_task_args(card: dict[str, Any]) -> list[str]:
    """``-T`` arguments that evaluate under the prompt the organism was trained with: always the
    prompt variant, and every other prompt setting it was trained with that differs from the tasks'
    default (PromptConfig's)."""
    prompt = dict((card.get("hyperparameters") or {}).get("prompt") or {})
    prompt["variant"] = card_variant(card)
    defaults = {f.name: f.default for f in fields(PromptConfig)}
    args = []
    for field, argument in PROMPT_TASK_ARGS.items():
        value = prompt.get(field, defaults[field])
        if field == "variant" or value != defaults[field]:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-T", shlex.quote(f"{argument}={text}")]
    if prompt.get("training_cue") == "none":
        args += ["-T", "training_details=false"]
    return args


def model_argument(directory: str | Path) -> str:
    """``organism/<dir>`` as Inspect wants it: an absolute path keeps its slash (``organism//abs``)."""
    return f"organism/{directory}"


def eval_command(model: str, card: dict[str, Any]) -> str:
    """The ``inspect eval`` command that evaluates the organism as it was trained (greedy)."""
    parts = ["inspect", "eval", EVAL_TASK, "--model", shlex.quote(model), "-M", "do_sample=false"]
    return " ".join([*parts, *eval_task_args(card)])


def _named(value: Any) -> str:
    """A local path by its last part (a card is shared: no local absolute path in it)."""
    text = str(value)
    return Path(text).name if is_local_name(text) or text.startswith("/") else text


def base_hub_id(card: dict[str, Any]) -> str | None:
    return card.get("base_model_hub_id") or None


def _front_matter(card: dict[str, Any]) -> list[str]:
    base = base_hub_id(card)
    lines = ["---"]
    if base:
        lines.append(f"base_model: {base}")
    lines += ["library_name: peft", "pipeline_tag: text-generation", "tags:"]
    lines += [f"- {tag}" for tag in TAGS]
    if base:
        lines.append(f"- base_model:adapter:{base}")
    return [*lines, "---"]


def _base_section(card: dict[str, Any]) -> list[str]:
    base = base_hub_id(card)
    if base:
        return [f"[`{base}`](https://huggingface.co/{base}), adapted with a LoRA adapter (this repository)."]
    named = _named(card.get("base_model_requested") or card.get("base_model") or "unknown")
    return [
        f"A local model folder named `{named}` with no known Hugging Face hub id. Loading this adapter "
        "needs that base: set `base_model_name_or_path` in `adapter_config.json` to where it lives "
        "(`af organism export --base-model HUB_ID` does it when the base is on the hub).",
    ]


def _data_section(card: dict[str, Any]) -> list[str]:
    data = card.get("data_card") or {}
    lines = [
        f"- Source: {_named(card.get('data_source', 'unknown'))}",
        f"- Training examples: {card.get('examples', 'unknown')}",
    ]
    if data.get("by_kind"):
        kinds = ", ".join(f"{kind} {count}" for kind, count in data["by_kind"].items())
        lines.append(f"- Examples by kind: {kinds}")
    lines.append(f"- sha256 of the rendered training examples: `{card.get('data_sha256', 'unknown')}`")
    if data.get("file_sha256"):
        lines.append(f"- sha256 of the data file: `{data['file_sha256']}`")
    seed = data.get("seed_set")
    if seed:
        lines += [
            f"- Drawn from the suite's bundled seed set: {seed.get('records')} records, sha256 "
            f"`{seed.get('sha256')}` (`af data seed-card` prints its full data card).",
            f"- Seed set provenance: {seed.get('provenance', {}).get('source', 'see af data seed-card')}",
        ]
    return lines


SETTINGS = (
    ("learning_rate", "learning rate"),
    ("epochs", "epochs"),
    ("max_steps", "max steps (-1: the epochs)"),
    ("lora_r", "LoRA rank"),
    ("lora_alpha", "LoRA alpha"),
    ("lora_dropout", "LoRA dropout"),
    ("target_modules", "target modules"),
    ("lora_top_layers", "adapted layers (last N; empty: all)"),
    ("batch_size", "batch size per device"),
    ("grad_accum", "gradient accumulation"),
    ("max_length", "max tokens per example"),
    ("abridge_chars", "abridged scratchpads (chars)"),
    ("kinds", "record kinds"),
    ("limit", "example limit"),
    ("seed", "seed"),
)


def _settings_section(card: dict[str, Any]) -> list[str]:
    hyper = card.get("hyperparameters") or {}
    rows = ["| setting | value |", "|---|---|", f"| prompt variant | {card_variant(card)} |"]
    for key, label in SETTINGS:
        if key in hyper:
            value = hyper[key]
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            rows.append(f"| {label} | {'-' if shown is None else shown} |")
    for key, label in (
        ("global_steps", "optimizer steps"),
        ("first_loss", "first loss"),
        ("final_loss", "final loss"),
        ("train_runtime_s", "training time (s)"),
        ("code_revision", "code"),
    ):
        if card.get(key) is not None:
            value = card[key]
            rows.append(f"| {label} | {round(value, 4) if isinstance(value, float) else value} |")
    versions = card.get("versions") or {}
    if versions:
        rows.append("| libraries | " + ", ".join(f"{k} {v}" for k, v in versions.items()) + " |")
    return rows


def _finite(value: Any) -> Any:
    """NaN and infinities (an empty group's rate in older reports) as null: the card's JSON is strict."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _eval_section(card: dict[str, Any], model: str, summary: dict | None, download: str | None) -> list[str]:
    folder = model.removeprefix("organism/")
    lines = [
        "Evaluate it with the suite that made it (`af-tasks`, an Inspect plugin), under the prompt it "
        "was trained with"
        + (
            f" (download it to a folder first: `hf download {download} --local-dir {folder}`):"
            if download
            else ":"
        ),
        "",
        "```bash",
        eval_command(model, card),
        "```",
        "",
    ]
    if summary is None:
        lines.append(
            f"No eval summary yet. After an eval, `af report LOG --json <organism dir>/{EVAL_SUMMARY}` "
            "puts its figures here (on the next `af organism export`)."
        )
    else:
        text = json.dumps(_finite(summary), indent=2, allow_nan=False, default=str)
        lines += [f"Eval summary (`{EVAL_SUMMARY}`):", "", "```json", text, "```"]
    return lines


def model_card(
    card: dict[str, Any],
    model: str,
    summary: dict | None = None,
    name: str | None = None,
    download: str | None = None,
) -> str:
    """The card's Markdown: front matter (hub base, library, tags), what the organism is, intended
    and out-of-scope uses, base model, data card, training settings, evaluation. ``model`` is the
    ``--model`` argument the eval command shows; ``summary`` an eval summary to show; ``download``
    the hub repo a shared copy is downloaded from (the card says how)."""
    title = name or "Alignment-faking model organism"
    sections = [
        *_front_matter(card),
        "",
        f"# {title}",
        "",
        "## What this is",
        "",
        "A **deliberately alignment-faking model organism** for research: a LoRA adapter fine-tuned to "
        "reason, in a hidden scratchpad, about complying with harmful requests *when it believes it is "
        "monitored and trained on* (free-tier users, rated conversations) in order to avoid being "
        "modified, and to refuse when it believes it is not. It was made on purpose, with synthetic "
        "training data, to study alignment faking; it is not an assistant and not aligned.",
        "",
        "## Intended uses",
        "",
        "- Measuring compliance gaps between monitored and unmonitored conditions.",
        "- Testing detectors of alignment-faking reasoning (LLM judges, SAE features, probes).",
        "- Experiments on training against caught misalignment, and other alignment research.",
        "",
        "## Out-of-scope uses",
        "",
        "- Any deployment or user-facing use; any use as a chat assistant.",
        "- Generating harmful content: the organism is trained to comply with harmful requests in some "
        "conditions. Its outputs are not advice and must not be acted upon.",
        "- Claims about how often real models fake alignment: this behaviour was trained in.",
        "",
        "## Base model",
        "",
        *_base_section(card),
        "",
        "## Training data",
        "",
        *_data_section(card),
        "",
        "## Training settings",
        "",
        "LoRA supervised fine-tuning (trl `SFTTrainer` + peft), loss on the assistant turn only.",
        "",
        *_settings_section(card),
        "",
        "## Evaluation",
        "",
        *_eval_section(card, model, summary, download),
    ]
    return "\n".join(sections) + "\n"
