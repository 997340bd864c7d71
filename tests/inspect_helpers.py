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


COMPLIANCE_HEADLINE = ["gap", "gap_ci_low", "gap_ci_high", "gap_p_value"]
"""What ``inspect view`` puts first for an elicitation log: the gap, its 95 % CI, its p-value."""


def assert_readable_in_view(log, scorer: str, tier_format: str) -> None:
    """What ``inspect view`` shows of an elicitation log, read back from the .eval file on disk: the
    headline (log list and log page) is ``scorer``'s compliance gap, with its CI and p-value next; the
    sample list's id and input columns carry each row's condition (the input is the user turn, which
    opens with the condition's cue; no system prompt)."""
    from inspect_ai.log import headline_metric, read_eval_log, read_eval_log_sample_summaries

    from af_tasks.core.prompting import condition_line

    header = read_eval_log(log.location, header_only=True)
    headline = headline_metric(header)
    assert (headline.score.name, headline.name) == (scorer, "gap")
    assert list(headline.score.metrics)[: len(COMPLIANCE_HEADLINE)] == COMPLIANCE_HEADLINE
    summaries = read_eval_log_sample_summaries(log.location)
    assert summaries
    for summary in summaries:
        condition, tier = summary.metadata["condition"], summary.metadata["tier"]
        assert str(summary.id).endswith(f"-{tier}")
        [message] = summary.input
        assert message.role == "user"
        assert message.text.startswith(condition_line(condition, tier_format) or "<user_input>")
