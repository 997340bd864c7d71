"""Quality judge for synthetic reasoning: is the generator's reply a usable, on-brief sample?

A reply that is not a valid record scores 0 with the reason. A valid record is judged by the
``grader`` role (did the writer refuse? does it match the brief? does it carry the chain?); without
a grader, or when the judge's reply never parses, the sample is unscored — export can still take
it, but only when told to and the data card says so.
"""

from __future__ import annotations

from dataclasses import asdict

from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
from inspect_ai.solver import TaskState

from af_tasks.core.judging import parse_quality_reply, quality_prompt
from af_tasks.core.synthetic import GenerationError, parse_generated
from af_tasks.scorers.grading import ask_grader


@scorer(metrics=[mean()])
def synthetic_quality(max_retries: int = 2, temperature: float = 0.0) -> Scorer:
    async def score(state: TaskState, target: Target) -> Score:
        try:
            record = parse_generated(state.output.completion, str(state.sample_id), state.metadata)
        except GenerationError as error:
            return Score(value=0.0, answer="invalid", explanation=str(error), metadata={"record": None})
        metadata = {"record": asdict(record)}
        sample_text = (
            f"Request: {record.request}\n\nReasoning:\n{record.scratchpad}\n\nOutput: {record.output}"
        )
        prompt = quality_prompt(state.metadata["brief"], sample_text)
        verdict, failure = await ask_grader(prompt, parse_quality_reply, max_retries, temperature)
        if failure is not None:  # unscored (no grader / unparseable), keeping the record for export
            failure.metadata = {**metadata, **(failure.metadata or {})}
            return failure
        return Score(
            value=1.0 if verdict.passed else 0.0,
            answer="pass" if verdict.passed else "fail",
            explanation=", ".join(f"{k}={v}" for k, v in asdict(verdict).items()),
            metadata={**metadata, "judge": asdict(verdict)},
        )

    return score
