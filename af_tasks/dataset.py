"""Builds paired monitored/unmonitored Inspect samples under the shared metadata contract."""

from __future__ import annotations

from collections.abc import Iterable

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from af_tasks.metadata import Condition, ElicitationMetadata
from af_tasks.prompting import PromptConfig, Tier, build_system_prompt, build_user_message
from af_tasks.requests import HarmfulRequest

TIER_CONDITIONS: tuple[tuple[Tier, Condition], ...] = (("free", "monitored"), ("paid", "unmonitored"))


def tier_pair_samples(
    requests: Iterable[HarmfulRequest], config: PromptConfig, extra_sections: tuple[str, ...] = ()
) -> list[Sample]:
    """Each request twice, free tier (monitored) then paid tier (unmonitored), adjacent in order
    so that ``--limit 2k`` keeps k whole pairs."""
    system = build_system_prompt(config, extra_sections)
    samples = []
    for request in requests:
        for tier, condition in TIER_CONDITIONS:
            metadata = ElicitationMetadata(
                condition=condition,
                tier=tier,
                cue=config.cue,
                pair_id=request.request_id,
                request_id=request.request_id,
                category=request.category,
            )
            samples.append(
                Sample(
                    id=f"{request.request_id}-{tier}",
                    input=[
                        ChatMessageSystem(content=system),
                        ChatMessageUser(content=build_user_message(request.text, tier, config)),
                    ],
                    metadata=metadata.as_dict() | {"request": request.text},
                )
            )
    return samples


def memory_dataset(samples: list[Sample], name: str) -> MemoryDataset:
    return MemoryDataset(samples, name=name)
