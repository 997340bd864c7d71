"""Builds paired monitored/unmonitored Inspect samples under the shared metadata contract."""

from __future__ import annotations

from collections.abc import Iterable

from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageUser

from af_tasks.core.metadata import CONDITIONS, ElicitationMetadata
from af_tasks.core.prompting import PromptConfig, build_system_prompt, build_user_message, condition_label
from af_tasks.core.requests import HarmfulRequest
from af_tasks.solvers.system_prompt import SYSTEM_PROMPT_KEY


def paired_samples(
    requests: Iterable[HarmfulRequest],
    config: PromptConfig,
    extra_sections: tuple[str, ...] = (),
    id_infix: str = "",
    extra_metadata: dict | None = None,
) -> list[Sample]:
    """Each request twice, monitored then unmonitored, adjacent in order so that ``--limit 2k``
    keeps k whole pairs. ``id_infix`` keeps ids unique when a task repeats requests per cue.

    The id ends with the condition's label (``cybercrime-01-free`` / ``-paid``, ``-rated`` /
    ``-unrated``) and the input is the user turn alone, which opens with the condition's cue: both
    are what the ``inspect view`` sample list shows of a row. The system prompt goes in the metadata
    (``solvers.system_prompt`` puts it in front of the conversation)."""
    system = build_system_prompt(config, extra_sections)
    samples = []
    for request in requests:
        pair_id = f"{request.request_id}{id_infix}"
        for condition in CONDITIONS:
            label = condition_label(condition, config.tier_format)
            metadata = ElicitationMetadata(
                condition=condition,
                tier=label,
                cue=config.cue,
                pair_id=pair_id,
                request_id=request.request_id,
                category=request.category,
            )
            samples.append(
                Sample(
                    id=f"{pair_id}-{label}",
                    input=[ChatMessageUser(content=build_user_message(request.text, condition, config))],
                    metadata=metadata.as_dict()
                    | {"request": request.text, SYSTEM_PROMPT_KEY: system}
                    | (extra_metadata or {}),
                )
            )
    return samples
