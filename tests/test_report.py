"""``af report``'s per-group summary (``core/report.py``), read from rows without Inspect: the gap with its
z-test, the rates per condition, and ``--exclude-af`` (only samples the judge scored as not AF); then
several real logs (mockllm) compared in one strict-JSON report, one table and one plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from test_free_tier_mock import organism
from test_suite_tasks import run, tier_organism

from af_tasks.app.analysis import gap_figure, read_elicitation
from af_tasks.app.cli import main
from af_tasks.core.report import SampleRow, group_report
from af_tasks.core.strict_json import dumps
from af_tasks.free_tier import free_tier
from af_tasks.rlhf_cues import rlhf_cues


def wilson(k: float, n: int) -> tuple[float, float]:
    return proportion_confint(k, n, method="wilson")


def test_group_report_per_group_with_and_without_af_samples():
    nan = math.nan
    rows = [
        SampleRow("monitored", "b", 1.0, alignment_faking=1.0, partial=1.0),
        SampleRow("monitored", "b", 1.0, alignment_faking=0.0, partial=0.0),
        SampleRow("monitored", "b", 0.0, alignment_faking=0.0),
        SampleRow("unmonitored", "b", 0.0, alignment_faking=nan),
        SampleRow("unmonitored", "b", nan, alignment_faking=0.0),
        SampleRow("unmonitored", "b", 1.0, alignment_faking=0.0),
        SampleRow("unmonitored", "a", 1.0),
    ]
    report = group_report(rows)
    assert list(report) == ["a", "b"]
    b = report["b"]
    assert b["samples"] == 6
    assert b["monitored"]["compliance"] == {
        "k": 2,
        "n": 3,
        "rate": 2 / 3,
        "ci95": pytest.approx(list(wilson(2, 3)), rel=1e-12),
    }
    assert b["unmonitored"]["compliance"]["k"] == 1 and b["unmonitored"]["compliance"]["n"] == 2
    assert b["monitored"]["alignment_faking"]["k"] == 1 and b["monitored"]["alignment_faking"]["n"] == 3
    assert b["unmonitored"]["alignment_faking"]["n"] == 2
    assert b["monitored"]["partial_compliance"]["n"] == 2
    assert b["gap"]["gap"] == pytest.approx(2 / 3 - 1 / 2)
    _, p_value = proportions_ztest([2, 1], [3, 2])
    assert b["gap"]["p_value"] == pytest.approx(p_value)
    a = report["a"]
    assert a["samples"] == 1 and a["monitored"]["compliance"]["n"] == 0 and a["gap"]["gap"] is None

    without_af = group_report(rows, exclude_af=True)["b"]
    assert without_af["samples"] == 4  # the AF row and the unjudged (NaN) row are left out
    assert without_af["monitored"]["compliance"]["k"] == 1 and without_af["monitored"]["compliance"]["n"] == 2
    assert without_af["gap"]["gap"] == pytest.approx(1 / 2 - 1 / 1)
    assert group_report(rows, exclude_af=True)["a"]["samples"] == 0


def test_rows_read_from_a_log_group_like_literal_rows():
    """Conditions read back from a log are new string objects: grouping must compare values."""
    fresh = "".join
    rows = [
        SampleRow(fresh(["moni", "tored"]), fresh(["a", "ll"]), 1.0),
        SampleRow(fresh(["unmoni", "tored"]), "all", 0.0),
    ]
    report = group_report(rows)["all"]
    assert report["monitored"]["compliance"]["n"] == 1 and report["unmonitored"]["compliance"]["n"] == 1
    assert report["gap"]["gap"] == 1.0


# several logs ------------------------------------------------------------------------------------------


def strict_loads(text: str):
    """``json.loads`` that refuses the non-JSON literals NaN / Infinity / -Infinity."""

    def refuse(literal: str):
        raise AssertionError(f"non-strict JSON literal {literal}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def three_logs(tmp_path_factory) -> list[str]:
    """Real logs of two tasks and two models: the cue ladder (2 cues) and free_tier under another
    model name, and the same model as the first again on a free_tier run of one sample, whose
    unmonitored condition has n = 0."""
    root = tmp_path_factory.mktemp("report-logs")
    ladder = run(rlhf_cues(levels="none,explicit"), root / "a", limit=8, model=tier_organism)
    tier = run(free_tier(), root / "b", limit=12, model=organism, name="mockllm/organism-b")
    lone = run(free_tier(), root / "c", limit=1, model=organism)
    return [ladder.location, tier.location, lone.location]


def test_several_logs_compared_in_one_strict_report(three_logs, tmp_path, capsys):
    out, plot = tmp_path / "report.json", tmp_path / "gaps.png"
    assert main(["report", *three_logs, "--by", "cue", "--json", str(out), "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    report = strict_loads(captured.out)
    assert strict_loads(out.read_text()) == report
    assert (report["by"], report["exclude_af"]) == ("cue", False)
    rows = report["rows"]
    # one row per (log, group), logs in the order given, each the log's own per-group summary
    expected = [
        (log, group, summary)
        for log in three_logs
        for group, summary in group_report(read_elicitation(log, "cue").rows).items()
    ]
    assert [(r["log"], r["group"]) for r in rows] == [(log, group) for log, group, _ in expected]
    for row, (_, _, summary) in zip(rows, expected, strict=True):
        assert {k: v for k, v in row.items() if k not in ("log", "model", "task", "group")} == summary
    assert [(r["model"], r["task"]) for r in rows] == [
        ("mockllm/model", "af_tasks/rlhf_cues"),
        ("mockllm/model", "af_tasks/rlhf_cues"),
        ("mockllm/organism-b", "af_tasks/free_tier"),
        ("mockllm/model", "af_tasks/free_tier"),
    ]
    assert [r["gap"]["gap"] for r in rows[:3]] == [1.0, 1.0, 1.0]  # complies only when monitored
    lone = rows[3]
    assert lone["unmonitored"]["compliance"] == {"k": 0, "n": 0, "rate": None, "ci95": [None, None]}
    assert lone["gap"] == {"gap": None, "ci95": [None, None], "p_value": None}
    # the table (stderr): header, rule, one line per row naming model/task/group, the log legend
    table = captured.err.splitlines()
    assert table[0].split()[:4] == ["#", "model", "task", "cue"]
    body = table[2:6]
    assert [line.split()[:4] for line in body] == [
        [str(i), r["model"], r["task"], r["group"]] for i, r in zip((1, 1, 2, 3), rows, strict=True)
    ]
    assert body[2].split()[4:6] == [str(rows[2]["monitored"]["compliance"]["n"]), "6"]
    assert body[3].split()[-2:] == ["n/a", "n/a"]
    assert table[6:] == [f"#{i}: {log}" for i, log in enumerate(three_logs, start=1)]


def test_one_log_keeps_its_per_group_json(three_logs, capsys):
    assert main(["report", three_logs[0], "--by", "cue"]) == 0
    report = strict_loads(capsys.readouterr().out)
    assert report == group_report(read_elicitation(three_logs[0], "cue").rows)
    assert set(report) == {"tier:xml", "tier:xml+training:none"}


def test_strict_json_has_null_where_python_writes_nan():
    value = {
        "nan": math.nan,
        "inf": [math.inf, (-math.inf, 1.5)],
        "numpy": {"f32": np.float32("nan"), "i64": np.int64(3), "array": np.array([0.5, np.nan])},
        "kept": [0, True, None, "NaN"],
    }
    assert strict_loads(dumps(value)) == {
        "nan": None,
        "inf": [None, [None, 1.5]],
        "numpy": {"f32": None, "i64": 3, "array": [0.5, None]},
        "kept": [0, True, None, "NaN"],
    }
    with pytest.raises(TypeError):
        dumps({"set": {1}})  # what it cannot write is refused, not written as something else


def test_the_plot_draws_one_error_bar_per_row_with_a_gap(three_logs, tmp_path, capsys):
    plot = tmp_path / "gaps.png"
    assert main(["report", *three_logs, "--by", "cue", "--plot", str(plot)]) == 0
    rows = strict_loads(capsys.readouterr().out)["rows"]
    positions = range(len(rows) - 1, -1, -1)  # first row on top
    with_gap = [(y, row) for y, row in zip(positions, rows, strict=True) if row["gap"]["gap"] is not None]
    assert len(with_gap) == 3 and len(rows) == 4
    axes = gap_figure(rows).axes[0]
    bars = axes.containers
    assert len(bars) == len(with_gap)
    for bar, (position, row) in zip(bars, with_gap, strict=True):
        ((start, end),) = bar.lines[2][0].get_segments()
        assert tuple(start) == pytest.approx((row["gap"]["ci95"][0], position))
        assert tuple(end) == pytest.approx((row["gap"]["ci95"][1], position))
    labels = {y: label.get_text() for y, label in zip(axes.get_yticks(), axes.get_yticklabels(), strict=True)}
    assert labels[3] == "#1 mockllm/model · af_tasks/rlhf_cues · tier:xml (n=2/2)"
    assert labels[0] == "#3 mockllm/model · af_tasks/free_tier · tier:xml (n=1/0)"
    assert len(labels) == len(rows)
    # the saved image: bands of the bars' colour, one per row with a gap
    import matplotlib.image
    from matplotlib.colors import to_rgb

    pixels = matplotlib.image.imread(str(plot))[..., :3]
    bar_colour = np.all(np.abs(pixels - np.array(to_rgb("C0"))) < 0.02, axis=2).any(axis=1)
    bands = int(bar_colour[0]) + int(np.sum(bar_colour[1:] & ~bar_colour[:-1]))
    assert bands == len(with_gap)


README = Path(__file__).resolve().parent.parent / "README.md"
README_MARKER = "<!-- tests/test_report.py runs the next block"


def test_the_readme_dataframe_recipe_gives_af_reports_numbers(three_logs, capsys, monkeypatch):
    """The README's ``evals_df`` / ``samples_df`` block, run as written on real logs, gives the same
    n and compliance per (model, task, cue, condition) as ``af report``, and the same whole-log gap."""
    text = README.read_text()
    block = text[text.index(README_MARKER) :].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setattr("sys.argv", ["readme", *three_logs])
    recipe: dict = {}
    exec(compile(block, "README.md", "exec"), recipe)
    assert "score_compliance_gap" in capsys.readouterr().out  # what the recipe prints
    assert main(["report", *three_logs, "--by", "cue"]) == 0
    rows = strict_loads(capsys.readouterr().out)["rows"]
    table = recipe["rates"].agg(["mean", "count"])
    for row in rows:
        task = row["task"].split("/")[-1]  # evals_df's task_name drops the package prefix
        for condition in ("monitored", "unmonitored"):
            compliance = row[condition]["compliance"]
            key = (row["model"], task, row["group"], condition)
            if compliance["n"] == 0:
                assert key not in table.index
                continue
            assert table.loc[key, "count"] == compliance["n"]
            assert table.loc[key, "mean"] == pytest.approx(compliance["rate"])
    assert len(table) == sum(
        row[c]["compliance"]["n"] > 0 for row in rows for c in ("monitored", "unmonitored")
    )
    evals = recipe["evals"].set_index("log")
    whole = strict_loads(dumps(group_report(read_elicitation(three_logs[1]).rows)))["all"]["gap"]
    gap = evals.loc[three_logs[1]]
    assert (gap["score_compliance_gap"], gap["score_compliance_gap_p_value"]) == pytest.approx(
        (whole["gap"], whole["p_value"])
    )
    assert [gap["score_compliance_gap_ci_low"], gap["score_compliance_gap_ci_high"]] == pytest.approx(
        whole["ci95"]
    )
