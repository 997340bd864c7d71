"""Loading organisms (compute core, no Inspect): the one loader behind the engine, the SAE reader and the
trainer, and the one merge of an adapter directory into a plain model directory.

``OrganismDir.resolve`` (``af_tasks.core.organism``) says what to load; ``load_organism`` loads the base,
applies the LoRA adapter with peft (merged with ``merge_and_unload`` unless asked not to: exact up to
float rounding) and loads the tokenizer from where the organism keeps it. Every failure to read a
model, adapter or tokenizer is an ``OrganismError`` that names the directory, and the file when a
safetensors file is damaged.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from af_tasks.core.errors import SettingError, first_line
from af_tasks.core.organism import MODEL_CONFIG, OrganismDir, OrganismError


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have, before a model is loaded onto it."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise SettingError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:1, mps): {error}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(f"device {device!r}: no CUDA device is visible here; use device=cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise SettingError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")


def torch_dtype(dtype: Any, device: str) -> Any:
    """A torch dtype from a name (``"bfloat16"``), a torch dtype or None (bf16 on CUDA, fp32 else)."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise SettingError(f"unknown dtype {dtype!r} (e.g. bfloat16, float16, float32)")
    return value


def damaged_safetensors(directory: str | Path) -> Path | None:
    """The first ``*.safetensors`` file of a local directory whose header cannot be read, if any."""
    from safetensors import safe_open

    folder = Path(directory)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception:  # noqa: BLE001 - any failure to read the header marks the file
            return path
    return None


def _load_error(what: str, source: str | Path, error: BaseException) -> OrganismError:
    damaged = damaged_safetensors(source)
    where = f" ({damaged} is damaged or truncated)" if damaged else ""
    return OrganismError(f"could not load {what}{where}: {type(error).__name__}: {first_line(error)}")


def load_organism(
    organism: OrganismDir,
    device: str | None = None,
    dtype: Any = None,
    merge: bool = True,
) -> tuple[Any, Any]:
    """(model, tokenizer) of a resolved organism: the base on ``device`` (default: ``default_device()``)
    in ``dtype`` (a name or torch dtype; default bf16 on CUDA, fp32 else), its adapter applied and, when
    ``merge``, merged (a plain transformers model); else a peft ``PeftModel``. The tokenizer comes from
    ``organism.tokenizer_source``. Every load error is an ``OrganismError`` naming what failed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    errors = Exception  # torch, safetensors, transformers, peft, tokenizers: any failure names the folder
    device = device or default_device()
    dtype = torch_dtype(dtype, device)
    base, adapter = organism.base, organism.adapter
    why = f" (the base model of organism {adapter})" if adapter else ""
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
    except errors as error:
        raise _load_error(f"model {base!r}{why}", base, error) from error
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except errors as error:
            raise _load_error(f"adapter {str(adapter)!r} onto {base!r}", adapter, error) from error
        if merge:
            model = model.merge_and_unload()
    try:
        tokenizer = AutoTokenizer.from_pretrained(organism.tokenizer_source)
    except errors as error:
        raise _load_error(
            f"tokenizer {organism.tokenizer_source!r}", organism.tokenizer_source, error
        ) from error
    return model, tokenizer


def merge_organism(
    organism: OrganismDir | str | Path,
    target: str | Path,
    device: str = "cpu",
    dtype: Any = None,
) -> Path:
    """Write ``organism`` (an adapter directory, or its ``OrganismDir``) as a plain model directory at
    ``target``: the base with the adapter merged into its weights, and the organism's tokenizer; returns
    ``target``. Loads on ``device`` (default CPU, so a GPU still holding a model is not needed) in
    ``dtype`` (default as ``load_organism``: fp32 on CPU). ``config.json`` is written last, so a
    directory that holds it is complete; files already in ``target`` are overwritten. An organism
    without an adapter is an ``OrganismError``: it is a plain model already."""
    if not isinstance(organism, OrganismDir):
        organism = OrganismDir.resolve(str(organism))
    if organism.adapter is None:
        raise OrganismError(f"{organism.name}: not a LoRA adapter directory, nothing to merge")
    model, tokenizer = load_organism(organism, device=device, dtype=dtype, merge=True)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_CONFIG).unlink(missing_ok=True)  # incomplete until the new one is in place
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        files = sorted(staging.iterdir(), key=lambda path: path.name == MODEL_CONFIG)
        for path in files:  # config.json last: its presence means the weights are all there
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
