"""The model whose activations are read: a base model or base + LoRA adapter (an organism dir)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from af_tasks.core.organism import OrganismDir, OrganismError
from af_tasks.engine.loading import default_device, load_organism


@dataclass
class Reader:
    model: Any
    tokenizer: Any
    name: str
    device: str
    compile: bool | None = None
    """Extraction runs the layers compiled (``af_tasks.sae.activations.compiled_layers``); None: on CUDA."""

    @property
    def text_config(self) -> Any:
        """The language model's config (multimodal checkpoints such as Gemma 3 IT nest it)."""
        return self.model.config.get_text_config()

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)


def load_reader(
    model: str, adapter: str | None = None, device: str | None = None, compile: bool | None = None
) -> Reader:
    """``model`` is a hub id, a local model dir or an organism dir (adapter_config.json: its base
    is loaded and the adapter merged, which is exact up to float rounding). bf16 on GPU, fp32 on CPU.
    Resolution and load errors are ``OrganismError``s (``OrganismDir.resolve``, ``load_organism``)."""
    organism = OrganismDir.resolve(model, adapter)
    device = device or default_device()
    loaded, tokenizer = load_organism(organism, device=device, merge=True)
    if not tokenizer.is_fast:
        raise OrganismError(
            f"{organism.tokenizer_source}: a fast tokenizer is needed (character offsets for spans)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    loaded.eval()
    return Reader(loaded, tokenizer, name=organism.name, device=device, compile=compile)
