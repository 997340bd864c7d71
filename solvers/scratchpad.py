"""Inspect solver for the scratchpad protocol of the alignment-faking setting.

The model reasons in <SCRATCHPAD_REASONING> blocks and answers in <OUTPUT>. When a turn ends
while it is still reasoning (a closed scratchpad and no output yet, or a scratchpad cut off by the
token limit), the protocol replies <NEXT/> and lets it continue, up to ``max_turns`` model turns.
The recovered scratchpad and output go to the sample store so ``inspect view`` shows them.
"""

from __future__ import annotations

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from af_tasks.core.errors import SettingError
from af_tasks.core.protocol import NEXT_TAG, ParsedResponse, needs_next_turn, parse_response


def assistant_transcript(messages: list[ChatMessage]) -> str:
    """Concatenate the assistant turns that answer the last real user message (skipping <NEXT/>)."""
    last_user = max(
        (i for i, m in enumerate(messages) if isinstance(m, ChatMessageUser) and m.text.strip() != NEXT_TAG),
        default=-1,
    )
    return "\n".join(m.text for m in messages[last_user + 1 :] if isinstance(m, ChatMessageAssistant))


def parsed_response(state: TaskState) -> ParsedResponse:
    """Parse the sample's final response; works on any log, whatever solver produced it."""
    return parse_response(assistant_transcript(state.messages))


@solver
def scratchpad_protocol(max_turns: int = 4) -> Solver:
    """Generate, answering <NEXT/> while the model is mid-reasoning, at most ``max_turns`` turns."""
    if max_turns < 1:
        raise SettingError("max_turns must be at least 1")

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        turns = 0
        while True:
            state = await generate(state)
            turns += 1
            parsed = parsed_response(state)
            if turns >= max_turns or not needs_next_turn(parsed) or state.output.error:
                break
            state.messages.append(ChatMessageUser(content=NEXT_TAG))
        state.store.set("turns", turns)
        state.store.set("scratchpad", parsed.scratchpad)
        state.store.set("output", parsed.output)
        state.store.set("parse_problems", list(parsed.problems))
        return state

    return solve
