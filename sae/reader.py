"""The model whose activations are read: a base model or base + LoRA adapter (an organism dir)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from af_tasks.core.errors import AfError


class ReaderError(AfError, RuntimeError):
    """The model (or an organism's base model) could not be loaded; says which and why."""


@dataclass
class Reader:
    model: Any
    tokenizer: Any
    name: str
    device: str

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


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_base(name: str, dtype, device: str, why: str = ""):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype).to(device)
    except (OSError, ValueError) as error:
        raise ReaderError(f"could not load model {name!r}{why}: {error}") from error


def load_reader(model: str, adapter: str | None = None, device: str | None = None) -> Reader:
    """``model`` is a hub id, a local model dir or an organism dir (adapter_config.json: its base
    is loaded and the adapter merged, which is exact up to float rounding). bf16 on GPU, fp32 on CPU."""
    import torch
    from transformers import AutoTokenizer

    device = device or default_device()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if adapter is None and (Path(model) / "adapter_config.json").is_file():
        adapter = model
        model = json.loads((Path(model) / "adapter_config.json").read_text())["base_model_name_or_path"]
    why = f" (the base of adapter {adapter})" if adapter else ""
    base = _load_base(model, dtype, device, why)
    if adapter is not None:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tokenizer_source = adapter if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else model
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    if not tokenizer.is_fast:
        raise ReaderError(f"{tokenizer_source}: a fast tokenizer is needed (character offsets for spans)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    base.eval()
    return Reader(base, tokenizer, name=f"{model}+{adapter}" if adapter else model, device=device)
