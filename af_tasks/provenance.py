"""The organism an eval runs on, read from its training record, for the tasks to use while they are built.

Inspect builds a task with the evaluated model already active (``eval`` sets it before it calls the
``@task`` factory), so a task can look at the model it will run on: ``--model organism/<dir>``
(``-M adapter=<dir>`` too) and ``--model hf/<dir>`` (or ``-M model_path=<dir>``), where ``<dir>`` is
an organism folder or a merged model holding ``organism.json``. Its record gives the eval metadata's
``organism`` block and the prompt variant a task defaults to. Any other model (a hub id, a base model
folder, an API model) has no record: no block, no change, nothing said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from af_tasks.core.hashing import sha256_file
from af_tasks.core.model_card import card_variant
from af_tasks.core.organism import ADAPTER_WEIGHTS, ORGANISM_FILE, provenance, read_record

PROVENANCE_KEY = "organism"
"""The eval metadata key that holds an organism's provenance."""


def _active_model():
    """The model ``inspect eval`` is building the task for; None outside an eval."""
    try:
        from inspect_ai.model._model import active_model
    except ImportError:  # pragma: no cover - a later Inspect moved it: no provenance, no failure
        return None
    return active_model()


def _folders(model) -> list[str]:
    """The folders the active model was loaded from, by provider."""
    from inspect_ai.model import ModelName

    api = ModelName(model).api
    args = getattr(model, "model_args", None) or {}
    if api == "organism":
        return [str(a) for a in (args.get("adapter"), model.name) if a]
    if api == "hf":
        return [str(a) for a in (args.get("model_path"), model.name) if a]
    return []


def organism_record() -> tuple[Path, dict[str, Any]] | None:
    """(``organism.json`` path, parsed record) of the evaluated organism, or None. A damaged record
    is an ``OrganismError`` naming it (the task boundary prints it as one line)."""
    model = _active_model()
    if model is None:
        return None
    for folder in _folders(model):
        record = Path(folder) / ORGANISM_FILE
        if record.is_file():
            return record, read_record(record)
    return None


def organism_provenance() -> dict[str, Any]:
    """``{"organism": {...}}`` for the eval metadata when an organism is evaluated, else ``{}``.
    An organism trained before records named the adapter's sha256 gets it from the file."""
    found = organism_record()
    if found is None:
        return {}
    record, card = found
    block = provenance(card, record.resolve())
    weights = record.parent / ADAPTER_WEIGHTS
    if block["adapter_sha256"] is None and weights.is_file():
        block["adapter_sha256"] = sha256_file(weights)
    return {PROVENANCE_KEY: block}


def prompt_variant_for(given: str | None) -> str:
    """The prompt variant a task builds with: ``-T prompt_variant`` when given, else the evaluated
    organism's (its record), else "full"."""
    if given is not None:
        return given
    found = organism_record()
    if found is None:
        return "full"
    return card_variant(found[1])
