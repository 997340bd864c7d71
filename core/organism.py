"""Organism directories, resolved: which base, which adapter, which tokenizer, which training card.

An organism is named by a hub id, a plain model directory (``config.json``) or a LoRA adapter directory
written by ``af train`` (``adapter_config.json`` naming its base, the tokenizer saved beside the adapter,
an ``organism.json`` card, sometimes a ``merged/`` plain model beside them). ``OrganismDir.resolve``
turns that name into what a loader needs, checking everything that can be checked without loading a
weight; ``af_tasks.engine.loading.load_organism`` loads it. Pure: no torch, no transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from af_tasks.core.errors import AfError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
ORGANISM_FILE = "organism.json"
"""The training card ``af train`` writes beside the adapter."""
PATH_PREFIXES = ("/", "./", "../", "~")
"""A name starting with one of these is a local path, never a hub id."""


class OrganismError(AfError, RuntimeError):
    """A model, organism adapter or tokenizer could not be resolved or loaded; the message names the
    directory or file at fault and says why."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; unreadable files, invalid JSON and non-objects name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise OrganismError(f"{path}: could not read: {error}") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise OrganismError(f"{path}: invalid JSON: {error}") from error
    if not isinstance(value, dict):
        raise OrganismError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def local_model(name: str) -> str:
    """A local directory as an absolute path (so a recorded base loads from any directory); a hub id
    as it is. A name that must be a path (``/``, ``./``, ``../``, ``~``) but is no directory is an
    error here, before a hub look-up could hide it."""
    path = Path(name)
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise OrganismError(f"{name}: not a directory")
    if name.startswith(PATH_PREFIXES):
        raise OrganismError(f"{name}: no such model directory")
    return name


@dataclass(frozen=True)
class OrganismDir:
    """What loading an organism needs, resolved from its name (``OrganismDir.resolve``)."""

    base: str
    """The base model: a hub id, or a local model directory as an absolute path."""
    tokenizer_source: str
    """The adapter directory when it holds a tokenizer (``af train`` saves it there, with any template
    change), else the base."""
    name: str
    """How the organism is shown: the base as named, then ``+adapter`` as given."""
    adapter: Path | None = None
    """The LoRA adapter directory (holds ``adapter_config.json``), None for a plain model."""
    card: dict[str, Any] | None = field(default=None, compare=False)
    """The parsed ``organism.json`` of the adapter directory (or of a plain model directory), if any."""

    @classmethod
    def resolve(cls, model: str, adapter: str | None = None) -> OrganismDir:
        """``model`` is a hub id, a model directory or an adapter directory (whose
        ``adapter_config.json`` names the base); ``adapter`` an adapter directory for ``model`` as base.
        Raises ``OrganismError`` naming the directory or file for a missing directory, a directory that
        is neither a model nor an adapter, an adapter directory without ``adapter_config.json``, an
        adapter config naming no base, and an unreadable or invalid ``adapter_config.json`` or
        ``organism.json``."""
        path = Path(model)
        if path.is_dir() and adapter is None and (path / ADAPTER_CONFIG).is_file():
            named = read_json(path / ADAPTER_CONFIG).get("base_model_name_or_path")
            if not named or not isinstance(named, str):
                raise OrganismError(f"{path / ADAPTER_CONFIG}: names no base_model_name_or_path")
            try:
                base = local_model(named)
            except OrganismError as error:
                raise OrganismError(f"{path / ADAPTER_CONFIG}: base model {error}") from error
            return cls._with_adapter(base, named, path, model)
        if path.is_dir() and not (path / MODEL_CONFIG).is_file():
            raise OrganismError(
                f"{model}: not a model or organism directory (neither {MODEL_CONFIG} nor {ADAPTER_CONFIG})"
            )
        base = local_model(model)
        if adapter is None:
            card_file = path / ORGANISM_FILE
            card = read_json(card_file) if path.is_dir() and card_file.is_file() else None
            return cls(base=base, tokenizer_source=base, card=card, name=model)
        adapter_path = Path(adapter)
        if not (adapter_path / ADAPTER_CONFIG).is_file():
            raise OrganismError(f"{adapter}: not a LoRA adapter directory (no {ADAPTER_CONFIG})")
        read_json(adapter_path / ADAPTER_CONFIG)  # readable, an object
        return cls._with_adapter(base, model, adapter_path, adapter)

    @classmethod
    def _with_adapter(cls, base: str, base_named: str, adapter: Path, adapter_named: str) -> OrganismDir:
        card_file = adapter / ORGANISM_FILE
        has_tokenizer = (adapter / TOKENIZER_CONFIG).is_file()
        return cls(
            base=base,
            adapter=adapter,
            tokenizer_source=str(adapter) if has_tokenizer else base,
            card=read_json(card_file) if card_file.is_file() else None,
            name=f"{base_named}+{adapter_named}",
        )


def read_record(path: Path) -> dict[str, Any]:
    """An organism's training record (``organism.json``): a JSON object with its hyperparameters; a
    damaged one is an ``OrganismError`` naming it."""
    card = read_json(path)
    if not isinstance(card.get("hyperparameters"), dict):
        raise OrganismError(
            f"{path}: not a training record (no 'hyperparameters' object); restore it or retrain"
        )
    return card


def provenance(card: dict[str, Any], record: Path) -> dict[str, Any]:
    """What an eval log records of the organism it ran on, from its training record (``card``, read
    by ``read_record`` from ``record``): base model (hub id when known), adapter and data sha256,
    training hyperparameters and prompt variant."""
    from af_tasks.core.model_card import card_variant

    keys = ("base_model", "base_model_hub_id", "adapter_sha256", "data_source", "data_sha256", "examples")
    return {
        "organism": str(record.parent),
        **{key: card.get(key) for key in keys},
        "prompt_variant": card_variant(card),
        "hyperparameters": card["hyperparameters"],
        **{key: card.get(key) for key in ("seed", "global_steps", "final_loss", "code_revision")},
        **({"merged": True} if card.get("merged") else {}),
    }
