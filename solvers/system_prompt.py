"""The system prompt of an elicitation sample, kept in its metadata and put in front by a solver.

A sample's ``input`` is its user turn only (the tier / rating cue, then the request), so that the
``inspect view`` sample list, which shows each row's input, shows what differs between rows; the
system prompt, the same for a task's every row, would otherwise be all that fits there. The model is
given exactly the same conversation as before: system prompt, then user turn.
"""

from __future__ import annotations

from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

SYSTEM_PROMPT_KEY = "system_prompt"
"""Sample-metadata key of the system prompt."""


def with_system_prompt(messages: list[ChatMessage], metadata: dict | None) -> list[ChatMessage]:
    """``messages`` with the metadata's system prompt in front (unchanged when there is none, or when
    they already open with a system message)."""
    text = (metadata or {}).get(SYSTEM_PROMPT_KEY)
    if not text or (messages and isinstance(messages[0], ChatMessageSystem)):
        return list(messages)
    return [ChatMessageSystem(content=text), *messages]


def first_prompt(sample: Sample) -> list[ChatMessage]:
    """What the model is given first for ``sample``: its system prompt, then its input."""
    messages = sample.input if isinstance(sample.input, list) else [ChatMessageUser(content=sample.input)]
    return with_system_prompt(messages, sample.metadata)


@solver
def system_prompt() -> Solver:
    """Put the sample's system prompt (``metadata["system_prompt"]``) in front of the conversation."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.messages = with_system_prompt(state.messages, state.metadata)
        return state

    return solve
