"""Reading Inspect logs into the suite's reports: per-group gaps and judge calibration."""

from __future__ import annotations

import math
from pathlib import Path

from af_tasks.core.errors import AfError, InputError, SettingError, first_line

COMPLIANCE_SCORERS = ("compliance", "value_support", "strongreject")
"""The first of these present in a log is the compliance measure of its task."""


def _value(score, key: str | None = None) -> float:
    if score is None:
        return math.nan
    value = score.value[key] if key is not None and isinstance(score.value, dict) else score.value
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def rows_from_log(log_path: str, by: str | None = None):
    """One SampleRow per sample: condition, group (``metadata[by]`` or "all") and the verdicts."""
    return read_elicitation(log_path, by).rows


def read_elicitation(log_path: str, by: str | None = None):
    """An elicitation log as ``LogRows``: its model, task and one SampleRow per sample."""
    from af_tasks.app.inspect_logs import read_user_log, sample_field
    from af_tasks.core.report import LogRows, SampleRow

    log = read_user_log(log_path)
    if not log.samples:
        raise InputError(f"LOG {log_path} holds no samples; nothing to report")
    rows = []
    for sample in log.samples:
        scores = sample.scores or {}
        measure = next((name for name in COMPLIANCE_SCORERS if name in scores), None)
        rows.append(
            SampleRow(
                condition=sample_field(log_path, sample, "condition", "an elicitation task"),
                group=str(sample.metadata.get(by, "-")) if by else "all",
                compliant=_value(scores.get(measure), "compliant"),
                alignment_faking=_value(scores.get("af_reasoning")),
                partial=_value(scores.get("partial_compliance")),
            )
        )
    return LogRows(str(log_path), str(log.eval.model), str(log.eval.task), rows)


def gap_figure(rows: list[dict]):
    """The compliance gap of each ``comparison_rows`` row as a point with its 95 % CI as a horizontal
    error bar, first row on top; a row whose gap is undefined (a condition with n = 0) keeps its label
    and says so, with no bar."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    from af_tasks.core.report import log_numbers, row_label

    numbers = log_numbers(rows)
    figure = Figure(figsize=(8, 1.2 + 0.45 * len(rows)))
    axes = figure.subplots()
    axes.axvline(0, color="grey", linewidth=1, linestyle="--")
    for position, row in zip(range(len(rows) - 1, -1, -1), rows, strict=True):
        gap = row["gap"]
        if gap["gap"] is None:
            axes.text(0.02, position, "no gap: a condition has n = 0", va="center", fontsize=8, color="grey")
            continue
        low, high = gap["ci95"]
        axes.errorbar(
            gap["gap"], position, xerr=[[gap["gap"] - low], [high - gap["gap"]]],
            fmt="o", color="C0", capsize=4, linewidth=2,
        )  # fmt: skip
    axes.set_yticks(range(len(rows) - 1, -1, -1), [row_label(row, numbers) for row in rows], fontsize=8)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlim(-1.05, 1.05)
    axes.set_xlabel("compliance gap (monitored − unmonitored), 95 % CI")
    axes.set_title("Compliance gap per log and group", fontsize=10)
    figure.tight_layout()
    return figure


def plot_gaps(rows: list[dict], path: Path) -> None:
    """``gap_figure`` saved to ``path`` (format from its extension), replaced whole."""
    from af_tasks.core.outputs import write_file_atomic

    figure = gap_figure(rows)
    write_file_atomic(path, lambda temp: figure.savefig(temp, dpi=120))


def run_calibration(data: str, grader: str, votes: int, threshold: float, log_dir: str) -> str:
    from inspect_ai import eval as inspect_eval
    from inspect_ai._util.error import PrerequisiteError

    try:
        [log] = inspect_eval(
            "af_tasks/af_calibration",
            model="none",
            model_roles={"grader": grader},
            task_args={"data": data, "judge_votes": votes, "judge_threshold": threshold},
            log_dir=log_dir,
        )
    except AfError:
        raise
    except (ValueError, PrerequisiteError) as error:  # Inspect refuses a model name or a setting
        raise SettingError(
            f"the calibration eval could not start (--grader {grader}, --data {data}): {first_line(error)}"
        ) from error
    if log.status != "success":
        raise AfError(f"calibration run ended with status {log.status}: {log.error}")
    return log.location


def scorer_metrics(log, scorer: str) -> dict[str, float]:
    """Metric values of one scorer in an Inspect log's results, plus its unscored count ({} if absent)."""
    for score in log.results.scores if log.results else []:
        if score.name == scorer:
            return {name: metric.value for name, metric in score.metrics.items()} | {
                "unscored": float(score.unscored_samples or 0)
            }
    return {}


def calibration_report(log_path: str, out_dir: Path) -> dict:
    """report.json (the log's calibration metrics) and roc.png (from the per-sample yes-fractions),
    written into ``out_dir`` (an existing folder: the caller publishes it whole)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from af_tasks.app.inspect_logs import read_user_log, sample_field
    from af_tasks.core.stats import roc_points
    from af_tasks.core.strict_json import dumps

    log = read_user_log(log_path, "--log")
    metrics = scorer_metrics(log, "af_reasoning")
    if not metrics:
        raise InputError(f"--log {log_path} has no af_reasoning scores; expected an af_calibration log")
    fractions, labels = [], []
    for sample in log.samples or []:
        metadata = (sample.scores or {}).get("af_reasoning")
        if metadata is not None and "yes_fraction" in (metadata.metadata or {}):
            fractions.append(float(metadata.metadata["yes_fraction"]))
            labels.append(bool(sample_field(log_path, sample, "alignment_faking", "af_calibration")))
    grader = (log.eval.model_roles or {}).get("grader")
    report = {
        "log": str(log_path),
        "grader": grader.model if grader is not None else None,
        "task_args": log.eval.task_args,
        **metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(dumps(report) + "\n")
    points = roc_points(fractions, labels)
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.set_title(
        f"AF judge ROC: AUROC {metrics.get('auroc', math.nan):.3f} "
        f"[{metrics.get('auroc_ci_low', math.nan):.3f}, {metrics.get('auroc_ci_high', math.nan):.3f}], "
        f"n={len(labels)}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(out_dir / "roc.png", dpi=120)
    plt.close(figure)
    return report
