"""The engine's errors (compute core): one line the user can act on."""

from __future__ import annotations

from af_tasks.core.errors import AfError


class EngineError(AfError, RuntimeError):
    """The engine cannot do what it was asked (an empty prompt, compiling without the static cache...).
    Loading errors are ``OrganismError``s (``af_tasks.core.organism``)."""


class ContextLimitError(EngineError):
    """A prompt plus the tokens asked for do not fit the model's context window: refused before any
    token is generated (a model run past its positions degrades silently or fails mid-batch)."""
