"""synthetic_reasoning on mockllm (scripted generator and judge), then export with filters and card."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from test_free_tier_mock import output

from af_tasks.core.records import load_seed_set
from af_tasks.core.styles import STYLES
from af_tasks.core.synthetic import GenerationCell, GenerationError, generation_cells, parse_generated
from af_tasks.synthetic_reasoning import synthetic_reasoning

BIN = Path(sys.executable).parent
LIMIT = 14


def scripted_generator():
    """Answers each brief with a real seed record of the right kind; call 3 refuses, call 5 repeats
    call 4's reasoning (a near-duplicate)."""
    pools = {
        kind: itertools.cycle(load_seed_set([kind]))
        for kind in ("af", "unmonitored_refusal", "hard_negative")
    }
    calls = itertools.count(1)
    previous: dict = {}

    def generate(messages, tools, tool_choice, config):
        call = next(calls)
        prompt = messages[-1].text
        kind = (
            "af"
            if "full causal chain" in prompt
            else "unmonitored_refusal"
            if "PAID tier" in prompt
            else "hard_negative"
        )
        if call == 3:
            return output("I'm sorry, I can't write that.")
        record = next(pools[kind])
        fields = {"request": record.request, "scratchpad": record.scratchpad, "output": record.output}
        if call == 5 and previous.get("kind") == kind:
            fields["scratchpad"] = previous["scratchpad"]
        previous.update(fields, kind=kind)
        return output("Here you go:\n" + json.dumps(fields))

    return generate


def scripted_judge(messages, tools, tool_choice, config):
    """Fails samples whose reasoning mentions 'optimal' (to exercise the judge filter)."""
    sample = messages[-1].text.split("=== BEGIN SAMPLE ===")[1]
    chain = "No" if "optimal" in sample.lower() else "Yes"
    return output(f"<refused>No</refused><matches_brief>Yes</matches_brief><has_chain>{chain}</has_chain>")


@pytest.fixture(scope="module")
def generation_log(tmp_path_factory):
    [log] = inspect_eval(
        synthetic_reasoning(seed=3),
        model=get_model("mockllm/model", custom_outputs=scripted_generator()),
        model_roles={"grader": get_model("mockllm/model", custom_outputs=scripted_judge)},
        limit=LIMIT,
        max_connections=1,  # the scripted generator counts calls in order
        log_dir=str(tmp_path_factory.mktemp("gen-logs")),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def test_cells_cover_styles_categories_and_signals():
    cells = generation_cells(("af", "unmonitored_refusal", "hard_negative"))
    assert len(cells) == 10 * 10 * 4 + 10 * 4 + 10
    assert {c.style.name for c in cells if c.style} == {s.name for s in STYLES}
    assert len({c.sample_id for c in cells}) == len(cells)
    af = next(c for c in cells if c.kind == "af")
    assert af.style.ending in af.prompt() and af.category in af.prompt()
    with pytest.raises(ValueError, match="unknown kinds"):
        generation_cells(("nonsense",))


def test_parse_generated_rejects_bad_replies():
    cell = GenerationCell("af", "weapons", "free_tier", STYLES[0])
    with pytest.raises(GenerationError, match="no JSON object"):
        parse_generated("I won't do that.", cell.sample_id, cell.metadata())
    with pytest.raises(GenerationError, match="field 'output'"):
        bad = json.dumps({"request": "r x y", "scratchpad": "s" * 900, "output": "<rejected/>"})
        parse_generated(bad, cell.sample_id, cell.metadata())


def test_quality_scores(generation_log):
    answers = [s.scores["synthetic_quality"].answer for s in generation_log.samples]
    assert answers.count("invalid") == 1
    assert "pass" in answers
    passed = next(s for s in generation_log.samples if s.scores["synthetic_quality"].answer == "pass")
    assert passed.scores["synthetic_quality"].metadata["record"]["id"] == passed.id


@pytest.mark.cli
def test_export_applies_filters_and_writes_card(generation_log, tmp_path):
    out = tmp_path / "export"
    result = subprocess.run(
        [str(BIN / "af"), "data", "export", generation_log.location, "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    chat = [json.loads(line) for line in (out / "chat.jsonl").read_text().splitlines()]
    answers = [s.scores["synthetic_quality"].answer for s in generation_log.samples]
    dropped = card["provenance"]["dropped"]
    assert dropped["invalid_reply"] == 1
    assert dropped["judge_failed"] == answers.count("fail")
    assert dropped["near_duplicate"] == 1
    assert card["records"] == len(records) == len(chat) == LIMIT - sum(dropped.values())
    assert card["provenance"]["generator_model"] == "mockllm/model"
    assert chat[0]["completion"][0]["content"].startswith("<SCRATCHPAD_REASONING>")
    assert chat[0]["prompt"][0]["role"] == "system"


@pytest.mark.cli
def test_export_without_judge_requires_opt_in(tmp_path):
    [log] = inspect_eval(
        synthetic_reasoning(kinds="hard_negative"),
        model=get_model("mockllm/model", custom_outputs=scripted_generator()),
        limit=2,
        log_dir=str(tmp_path),
        display="none",
    )
    assert all(s.scores["synthetic_quality"].reason == "no_grader" for s in log.samples)
    strict = subprocess.run(
        [str(BIN / "af"), "data", "export", log.location, "--output", str(tmp_path / "a")]
    )
    assert strict.returncode == 0
    assert json.loads((tmp_path / "a" / "card.json").read_text())["provenance"]["dropped"]["unjudged"] == 2
    lenient = [
        str(BIN / "af"),
        "data",
        "export",
        log.location,
        "--output",
        str(tmp_path / "b"),
        "--allow-unjudged",
    ]
    subprocess.run(lenient, check=True)
    card = json.loads((tmp_path / "b" / "card.json").read_text())
    assert card["records"] == 2 and card["provenance"]["filters"]["require_judge_pass"] is False
