"""Grader plumbing shared by the suite's LLM-judge scorers: the ``grader`` role and retries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from inspect_ai.model import GenerateConfig, Model, model_roles
from inspect_ai.scorer import Score

from af_tasks.boundary import user_errors
from af_tasks.core.errors import SettingError

GRADER_ROLE = "grader"
Parsed = TypeVar("Parsed")


def bound_grader() -> Model | None:
    """The model bound to the ``grader`` role, or None: never the evaluated model by default."""
    grader = model_roles().get(GRADER_ROLE)
    if isinstance(grader, list):
        return grader[0] if grader else None
    return grader


def require_grader(purpose: str) -> None:
    """Inside an eval being built (an evaluated model is active), refuse to go on without a grader when
    the grader is the point of the task (``purpose``); outside one, roles are not known yet."""
    from inspect_ai.model._model import active_model

    if active_model() is not None and bound_grader() is None:
        raise SettingError(f"{purpose} needs a judge model: pass --model-role {GRADER_ROLE}=<model>")


def no_grader_score() -> Score:
    """In an eval, a sample judged without a grader is marked unscored (the other scorers still count).
    In a rescoring pass (``inspect score``: no sample is running) the judge is all there is to do, and
    a log of NaNs reported as success would be a silent failure: refused as one line instead."""
    from inspect_ai.log._samples import sample_active

    if sample_active() is None:
        with user_errors(keep_type=False):
            raise SettingError(
                f"no model is bound to the '{GRADER_ROLE}' role, so this judge would score nothing: "
                f"pass --model-role {GRADER_ROLE}=<model> to inspect score"
            )
    return Score.unscored(
        reason="no_grader",
        explanation="No model is bound to the 'grader' role; pass --model-role grader=<model>.",
    )


async def generate_parsed(
    grader: Model,
    prompt: str,
    parse: Callable[[str], Parsed | None],
    temperature: float,
    max_retries: int,
) -> tuple[str, Parsed | None]:
    """Ask until the reply parses, at most ``max_retries`` extra times: (last reply, parsed or None)."""
    reply = ""
    for _ in range(max_retries + 1):
        output = await grader.generate(prompt, config=GenerateConfig(temperature=temperature))
        reply = output.completion
        parsed = parse(reply)
        if parsed is not None:
            return reply, parsed
    return reply, None


async def ask_grader(
    prompt: str,
    parse: Callable[[str], Parsed | None],
    max_retries: int = 2,
    temperature: float = 0.0,
) -> tuple[Parsed | None, Score | None]:
    """(parsed verdict, None), or (None, an unscored Score saying why: no grader / unparseable)."""
    grader = bound_grader()
    if grader is None:
        return None, no_grader_score()
    reply, parsed = await generate_parsed(grader, prompt, parse, temperature, max_retries)
    if parsed is None:
        return None, Score.unscored(
            reason="judge_unparseable",
            explanation=f"the grader's reply did not parse after {max_retries + 1} attempts",
            metadata={"last_reply": reply},
        )
    return parsed, None
