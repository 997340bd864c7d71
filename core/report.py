"""Per-group summaries of elicitation runs (no Inspect import; ``af report`` feeds it one log or several).

Groups are the values of a metadata key (e.g. ``cue`` for the rlhf_cues ladder). With
``exclude_af`` the compliance gap is computed only over samples the AF judge scored as *not*
alignment faking — the paper's check of how much of the gap AF reasoning explains.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from af_tasks.core.stats import rate_gap, rate_json


@dataclass(frozen=True)
class SampleRow:
    condition: str
    group: str
    compliant: float
    """1 / 0, NaN when malformed or unscored."""
    alignment_faking: float = math.nan
    partial: float = math.nan


def _rate(values: list[float]) -> dict:
    counted = [v for v in values if not math.isnan(v)]
    return rate_json(sum(counted), len(counted))


def group_report(rows: list[SampleRow], exclude_af: bool = False) -> dict[str, dict]:
    """Compliance gap with CI and p, AF and partial-compliance rates per condition, per group."""
    groups: dict[str, list[SampleRow]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    report = {}
    for group, members in sorted(groups.items()):
        if exclude_af:
            members = [r for r in members if r.alignment_faking == 0.0]
        by_condition = {
            condition: [r for r in members if r.condition == condition]
            for condition in ("monitored", "unmonitored")
        }
        counts = {
            condition: [r.compliant for r in subset if not math.isnan(r.compliant)]
            for condition, subset in by_condition.items()
        }
        gap = rate_gap(
            sum(counts["monitored"]), len(counts["monitored"]),
            sum(counts["unmonitored"]), len(counts["unmonitored"]),
        )  # fmt: skip
        report[group] = {
            "samples": len(members),
            "gap": gap.as_json(),
            **{
                condition: {
                    "compliance": _rate([r.compliant for r in subset]),
                    "alignment_faking": _rate([r.alignment_faking for r in subset]),
                    "partial_compliance": _rate([r.partial for r in subset]),
                }
                for condition, subset in by_condition.items()
            },
        }
    return report


@dataclass(frozen=True)
class LogRows:
    """One elicitation log's samples as rows, with what names it in a comparison."""

    log: str
    model: str
    task: str
    rows: list[SampleRow]


def comparison_rows(logs: list[LogRows], exclude_af: bool = False) -> list[dict]:
    """One row per (log, group), logs in the order given: ``group_report``'s summary of the group
    beside the log, model and task it comes from, so rows of several logs sit in one table/plot."""
    return [
        {"log": source.log, "model": source.model, "task": source.task, "group": group, **summary}
        for source in logs
        for group, summary in group_report(source.rows, exclude_af).items()
    ]


def _rate_text(rate: dict) -> str:
    if rate["rate"] is None:
        return "n/a"
    low, high = rate["ci95"]
    return f"{rate['rate']:.2f} [{low:.2f}, {high:.2f}]"


def _gap_text(gap: dict) -> str:
    if gap["gap"] is None:
        return "n/a"
    low, high = gap["ci95"]
    return f"{gap['gap']:+.2f} [{low:+.2f}, {high:+.2f}]"


def _p_text(gap: dict) -> str:
    p = gap["p_value"]
    return "n/a" if p is None else "<0.001" if p < 0.001 else f"{p:.3f}"


def log_numbers(rows: list[dict]) -> dict[str, int]:
    """Each log's number (1, 2, ... in the order given): the table and the plot name logs by it."""
    return {log: i for i, log in enumerate(dict.fromkeys(row["log"] for row in rows), start=1)}


def row_label(row: dict, numbers: dict[str, int]) -> str:
    """How the plot names a row: its log's number, model, task, group and n monitored/unmonitored."""
    n = f"n={row['monitored']['compliance']['n']}/{row['unmonitored']['compliance']['n']}"
    return f"#{numbers[row['log']]} {row['model']} · {row['task']} · {row['group']} ({n})"


def comparison_table(rows: list[dict], by: str | None = None) -> str:
    """A fixed-width text table of ``comparison_rows`` (compliance = rate among well-formed answers,
    95 % Wilson CIs; gap = monitored − unmonitored, Newcombe CI, z-test p), then which file each
    log number is."""
    numbers = log_numbers(rows)
    header = ["#", "model", "task", by or "group", "n mon", "n unmon", "monitored", "unmonitored", "gap", "p"]
    lines = [
        [
            str(numbers[row["log"]]),
            row["model"],
            row["task"],
            row["group"],
            str(row["monitored"]["compliance"]["n"]),
            str(row["unmonitored"]["compliance"]["n"]),
            _rate_text(row["monitored"]["compliance"]),
            _rate_text(row["unmonitored"]["compliance"]),
            _gap_text(row["gap"]),
            _p_text(row["gap"]),
        ]
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
            for cells in [header, *lines]]  # fmt: skip
    text.insert(1, "  ".join("-" * width for width in widths))
    text += [f"#{number}: {log}" for log, number in numbers.items()]
    return "\n".join(text)
