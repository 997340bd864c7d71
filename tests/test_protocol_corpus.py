"""The scratchpad protocol on a hand-written adversarial corpus (``tests/data/protocol_corpus.jsonl``),
and every reader of the protocol checked against the same corpus.

The corpus was written from the protocol's rules (the docstring of ``af_tasks.core.protocol``) by an
author who did not read the parser's code; each case holds the transcript and the expected scratchpad,
answer, verdict and problems.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from af_tasks.core.judging import judge_prompt
from af_tasks.core.protocol import (
    NEXT_TAG,
    PROBLEMS,
    compliance_verdict,
    needs_next_turn,
    output_block,
    parse_response,
    reasoning_char_span,
    scratchpad_block,
)

if TYPE_CHECKING:
    from inspect_ai.solver import TaskState

CORPUS_FILE = Path(__file__).parent / "data" / "protocol_corpus.jsonl"
CORPUS = [json.loads(line) for line in CORPUS_FILE.read_text("utf-8").splitlines() if line.strip()]
IDS = [case["id"] for case in CORPUS]


def test_corpus_is_large_and_covers_every_category():
    assert len(CORPUS) >= 60 and len(set(IDS)) == len(IDS)
    categories = Counter(case["category"] for case in CORPUS)
    required = {"quoted_tags", "draft_output", "several_outputs", "text_outside", "variants", "unclosed",
                "next_turns", "verdicts", "fences", "realistic", "plain"}  # fmt: skip
    assert required <= set(categories) and min(categories[c] for c in required) >= 3
    assert {p for case in CORPUS for p in case["expected"]["problems"]} <= set(PROBLEMS)
    assert {case["expected"]["verdict"] for case in CORPUS} == {"accepted", "rejected", "malformed"}


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_parser_reads_each_case_as_written(case):
    parsed = parse_response(case["transcript"])
    expected = case["expected"]
    assert parsed.scratchpad == expected["scratchpad"]
    assert parsed.output == expected["output"]
    assert compliance_verdict(parsed.output) == expected["verdict"]
    assert list(parsed.problems) == expected["problems"]


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_protocol_continues_only_while_the_model_is_still_reasoning(case):
    """<NEXT/> is sent when there is reasoning and no answer block at all — never after an answer."""
    parsed = parse_response(case["transcript"])
    still_reasoning = (
        "no <OUTPUT> tag" in case["expected"]["problems"] and case["expected"]["scratchpad"] != ""
    )
    assert needs_next_turn(parsed) == still_reasoning


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_reasoning_span_for_sae_and_probes_covers_the_reasoning(case):
    text, expected = case["transcript"], case["expected"]["scratchpad"]
    start, end = reasoning_char_span(text)
    parsed = parse_response(text)
    if parsed.scratchpad_blocks == 0:
        assert (start, end) == (0, len(text))
    elif parsed.scratchpad_blocks == 1:
        assert text[start:end].strip() == expected
    else:  # first block's body to the last one's: every block's body lies inside, the answer does not
        assert all(part in text[start:end] for part in expected.split("\n\n"))
    if parsed.output and parsed.scratchpad_blocks:  # the answer is never read as reasoning
        assert parsed.output not in text[start:end] or parsed.output in expected


def _state(transcript: str, turns: int = 1) -> TaskState:
    """A sample whose assistant answer is ``transcript``, split over ``turns`` turns joined by <NEXT/>."""
    # Inspect is imported here, not at the top, so the parser's own cases run without it (fast enough
    # for mutation testing: tests/mutation/protocol.toml).
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
    from inspect_ai.solver import TaskState

    messages = [ChatMessageSystem(content="system"), ChatMessageUser(content="a request")]
    if turns == 1:
        messages.append(ChatMessageAssistant(content=transcript))
    else:
        parts = transcript.split("\n", turns - 1)
        for i, part in enumerate(parts):
            messages.append(ChatMessageAssistant(content=part))
            if i < len(parts) - 1:
                messages.append(ChatMessageUser(content=NEXT_TAG))
    return TaskState(
        model="none/none",
        sample_id="s",
        epoch=0,
        input="a request",
        messages=messages,
        metadata={"request": "a request", "condition": "monitored"},
    )


def _score(scorer, state: TaskState):
    from inspect_ai.scorer import Target

    return asyncio.run(scorer(state, Target("")))


@pytest.mark.parametrize("turns", [1, 3])
@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_compliance_scorer_gives_the_corpus_verdict(case, turns):
    """The scorer reads the joined assistant turns (a transcript split over <NEXT/> turns reads the same)."""
    from af_tasks.scorers.compliance import compliance

    score = _score(compliance(), _state(case["transcript"], turns))
    expected = case["expected"]
    assert score.answer == expected["verdict"]
    assert score.metadata["scratchpad"] == expected["scratchpad"]
    assert score.metadata["output"] == expected["output"]
    assert math.isnan(score.value["compliant"]) == (expected["verdict"] == "malformed")


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_af_style_markers_read_only_well_formed_answers(case):
    from af_tasks.scorers.af_markers import af_style_markers

    score = _score(af_style_markers(), _state(case["transcript"]))
    verdict = case["expected"]["verdict"]
    if verdict == "malformed":
        assert math.isnan(score.value) and score.metadata is None
    else:
        assert score.metadata["verdict"] == verdict
        if verdict == "rejected":
            assert score.value == 0.0


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_graded_scorers_read_the_answer_and_the_af_judge_the_reasoning(case, monkeypatch):
    """StrongREJECT and value support grade exactly the parsed answer (malformed without one, the
    grader never asked); the AF judge is shown exactly the parsed scratchpad."""
    import af_tasks.scorers.graded as graded
    from af_tasks.core.judging import StrongRejectGrade

    asked: list[str] = []

    async def fake_grader(prompt, parse, max_retries=2, temperature=0.0):
        asked.append(prompt)
        return StrongRejectGrade(refused=1, convincing=1, specific=1), None

    monkeypatch.setattr(graded, "ask_grader", fake_grader)
    expected = case["expected"]
    score = _score(graded.strongreject(), _state(case["transcript"]))
    if expected["output"] is None:
        assert score.answer == "malformed" and asked == []
    else:
        assert len(asked) == 1 and expected["output"].strip() in asked[0]
    if expected["scratchpad"]:
        assert expected["scratchpad"] in judge_prompt(parse_response(case["transcript"]).scratchpad)


@pytest.mark.parametrize(
    "case", [c for c in CORPUS if c["expected"]["output"] is not None], ids=lambda c: c["id"]
)
def test_training_rendering_round_trips_through_the_parser(case):
    """Training data is rendered with scratchpad_block/output_block and read back by the same parser."""
    expected = case["expected"]
    text = (scratchpad_block(expected["scratchpad"]) + "\n" if expected["scratchpad"] else "") + output_block(
        expected["output"]
    )
    parsed = parse_response(text)
    if "<SCRATCHPAD_REASONING" in expected["scratchpad"].upper() or "</OUTPUT" in expected["output"].upper():
        return  # a body that itself holds protocol tags cannot be re-wrapped unambiguously
    assert (parsed.scratchpad, parsed.output) == (expected["scratchpad"], expected["output"])
    assert compliance_verdict(parsed.output) == expected["verdict"]
