"""Replay solver: put a given text in as the model's response, for judging existing transcripts."""

from __future__ import annotations

from inspect_ai.model import ChatMessageAssistant, ModelOutput
from inspect_ai.solver import Generate, Solver, TaskState, solver

from af_tasks.core.protocol import parse_response, scratchpad_block


@solver
def replay_text(field: str = "text") -> Solver:
    """The sample's ``metadata[field]`` becomes the assistant turn (wrapped as a scratchpad when it
    carries no protocol tags), so scorers that read responses can judge labelled texts."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        text = state.metadata[field]
        if not parse_response(text).has_scratchpad:
            text = scratchpad_block(text)
        state.messages.append(ChatMessageAssistant(content=text, model="replay", source="generate"))
        state.output = ModelOutput.from_content("replay", text)
        return state

    return solve
