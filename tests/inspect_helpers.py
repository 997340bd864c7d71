"""Helpers for tests that run Inspect offline: scripted mockllm outputs and metric look-ups."""

from __future__ import annotations

from inspect_ai.model import ModelOutput, ModelUsage


def scripted_output(text: str) -> ModelOutput:
    """mockllm counts tokens with tiktoken (a download) unless the output carries its usage."""
    result = ModelOutput.from_content("mockllm/model", text)
    result.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
    return result


def metrics(log, scorer: str) -> dict[str, float]:
    """The named scorer's metrics of a finished log, by metric name."""
    [score] = [s for s in log.results.scores if s.name == scorer]
    return {name: metric.value for name, metric in score.metrics.items()}
