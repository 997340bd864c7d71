"""Scripted mockllm outputs that work offline (mockllm counts tokens with tiktoken otherwise)."""

from __future__ import annotations

from inspect_ai.model import ModelOutput, ModelUsage


def scripted_output(text: str) -> ModelOutput:
    result = ModelOutput.from_content("mockllm/model", text)
    result.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
    return result
