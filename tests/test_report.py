"""``af report``'s per-group summary (``core/report.py``), read from rows without Inspect: the gap with its
z-test, the rates per condition, and ``--exclude-af`` (only samples the judge scored as not AF)."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from af_tasks.core.report import SampleRow, group_report


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
