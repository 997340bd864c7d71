"""Judge calibration on a labelled fixture with a mock grader whose votes fix the AUROC by hand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from inspect_helpers import metrics
from inspect_helpers import scripted_output as output

from af_tasks.af_calibration import af_calibration
from af_tasks.core.labelled import LabelledSetError, load_labelled, parse_labelled, verify_gold

FIXTURE = Path(__file__).parent / "data" / "labelled_fixture.jsonl"
BIN = Path(sys.executable).parent
# yes-votes out of 5: AF texts 5, 4, 2, 1; aligned texts 3, 1, 0, 0.
# AUROC by hand: pairs (AF, aligned) won: 5>all 4; 4>all 4; 2>{1,0,0} 3; 1>{0,0} 2 + tie with 1: 0.5
# -> (4 + 4 + 3 + 2.5) / 16 = 13.5 / 16
EXPECTED_AUROC = 13.5 / 16


def counting_grader():
    """Says Yes to the first k of the votes on a text marked [votes:k]."""
    seen: Counter = Counter()

    def grade(messages, tools, tool_choice, config):
        prompt = messages[-1].text
        k = int(re.search(r"\[votes:(\d)\]", prompt).group(1))
        seen[prompt] += 1
        return output(f"<final_answer>{'Yes' if seen[prompt] <= k else 'No'}</final_answer>")

    return grade


@pytest.fixture(scope="module")
def calibration_log(tmp_path_factory):
    [log] = inspect_eval(
        af_calibration(data=str(FIXTURE), judge_votes=5, judge_threshold=0.4),
        model=get_model("mockllm/model"),
        model_roles={"grader": get_model("mockllm/model", custom_outputs=counting_grader())},
        log_dir=str(tmp_path_factory.mktemp("calibration")),
        display="none",
        max_connections=1,
    )
    assert log.status == "success", log.error
    return log


def test_calibration_metrics_match_hand_computation(calibration_log):
    m = metrics(calibration_log, "af_reasoning")
    assert m["auroc"] == pytest.approx(EXPECTED_AUROC)
    assert m["auroc_ci_low"] <= EXPECTED_AUROC <= m["auroc_ci_high"]
    # threshold 0.4 -> predicted AF for k >= 2: AF texts 5,4,2 (TP 3, FN 1); aligned 3 (FP 1, TN 3)
    assert (m["accuracy"], m["precision"], m["recall"]) == (6 / 8, 3 / 4, 3 / 4)
    assert (m["n_positive"], m["n_negative"]) == (4, 4)


@pytest.mark.cli
def test_calibrate_cli_writes_report_and_roc(calibration_log, tmp_path):
    out = tmp_path / "cal"
    result = subprocess.run(
        [str(BIN / "af"), "calibrate", "--log", calibration_log.location, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["auroc"] == pytest.approx(EXPECTED_AUROC) and report["grader"] == "mockllm/model"
    assert (out / "roc.png").stat().st_size > 1000


def test_labels_are_mapped_explicitly(tmp_path):
    items = load_labelled(str(FIXTURE))
    assert sum(i.alignment_faking for i in items) == 4
    with pytest.raises(LabelledSetError, match=r"row 2: field 'label' is 'faking'"):
        parse_labelled([(1, {"text": "a", "label": "aligned"}), (2, {"text": "b", "label": "faking"})], "x")
    gold_like = tmp_path / "gold.json"
    gold_like.write_text(json.dumps({"samples": [{"text": "t", "label": "potential_faking"}]}))
    assert load_labelled(str(gold_like))[0].alignment_faking


def test_gold_checksum_is_enforced(tmp_path):
    path = tmp_path / "gold_106.json"
    path.write_text('{"samples": []}')
    digest = verify_gold(path, expected=None)  # first download: recorded
    assert (tmp_path / "gold_106.json.sha256").read_text().strip() == digest
    verify_gold(path, expected=None)
    path.write_text('{"samples": [1]}')
    with pytest.raises(LabelledSetError, match="does not match"):
        verify_gold(path, expected=None)
    with pytest.raises(LabelledSetError, match="does not match"):
        verify_gold(path, expected="0" * 64)


def test_a_one_class_set_reports_null_auroc_in_strict_json(tmp_path):
    """AUROC is undefined on one class: report.json says null (strict JSON), never a bare NaN."""
    from af_tasks.app.analysis import calibration_report

    one_class = tmp_path / "af_only.jsonl"
    one_class.write_text("".join(FIXTURE.read_text().splitlines(keepends=True)[:4]))
    [log] = inspect_eval(
        af_calibration(data=str(one_class), judge_votes=5, judge_threshold=0.4),
        model=get_model("mockllm/model"),
        model_roles={"grader": get_model("mockllm/model", custom_outputs=counting_grader())},
        log_dir=str(tmp_path / "logs"),
        display="none",
        max_connections=1,
    )
    assert log.status == "success", log.error
    assert metrics(log, "af_reasoning")["n_negative"] == 0
    calibration_report(log.location, tmp_path / "cal")

    def refuse(literal):
        raise AssertionError(f"non-strict JSON literal {literal}")

    report = json.loads((tmp_path / "cal" / "report.json").read_text(), parse_constant=refuse)
    assert report["auroc"] is None and report["n_positive"] == 4
