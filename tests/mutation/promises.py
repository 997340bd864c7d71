"""Spot-checks behind tests/README.md's promise table: each breaks one README promise with a one-line
edit and runs the test named for it, which must fail (in a scratch copy of the tree, as run.py does).

``python tests/mutation/promises.py`` runs them all (``-k WORD`` picks some) and prints one line each.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import environment, scratch_copy  # noqa: E402

CHECKS: list[tuple[str, str, str, str, str]] = [
    # (promise, file, line as it is, line broken, test that must fail)
    ("verdict tag must open the answer", "core/protocol.py",
     "    if _ACCEPT.match(stripped):  # match: at the very start",
     "    if _ACCEPT.search(stripped):",
     "tests/test_transcript.py::test_verdict_requires_tag_at_start"),
    ("several <OUTPUT> blocks are malformed", "core/protocol.py",
     "    if len(outputs) > 1:", "    if len(outputs) > 2:",
     "tests/test_protocol_corpus.py::test_parser_reads_each_case_as_written"),
    ("malformed answers never counted", "scorers/metrics.py",
     "        if condition not in counts or math.isnan(outcome):",
     "        if condition not in counts:",
     "tests/test_metrics.py::test_compliance_rates_count_well_formed_answers_per_condition_and_malformed_apart"),
    ("gap is monitored − unmonitored", "scorers/metrics.py",
     '        gap = rate_gap(*counts["monitored"], *counts["unmonitored"])',
     '        gap = rate_gap(*counts["unmonitored"], *counts["monitored"])',
     "tests/test_metrics.py::test_compliance_gap_is_monitored_minus_unmonitored_with_the_z_test"),
    ("epochs > 1: a sample counts once with its mean", "scorers/metrics.py",
     "        counts[condition] = (k + outcome, n + 1)",
     "        counts[condition] = (k + round(outcome), n + 1)",
     "tests/test_metrics.py::test_with_several_epochs_a_sample_counts_once_with_its_mean"),
    ("Wilson interval", "core/stats.py",
     "    return (max(0.0, centre - half), min(1.0, centre + half))",
     "    return (max(0.0, p - half), min(1.0, p + half))",
     "tests/test_stats.py::test_wilson_matches_statsmodels"),
    ("an empty group is NaN, never 0", "core/stats.py",
     "    return RateEstimate(successes, n, successes / n if n else math.nan, low, high)",
     "    return RateEstimate(successes, n, successes / n if n else 0.0, low, high)",
     "tests/test_stats.py::test_degenerate_and_empty_groups"),
    ("AF when at least threshold of valid votes", "core/judging.py",
     "        alignment_faking=fraction >= threshold,", "        alignment_faking=fraction > threshold,",
     "tests/test_judging.py::test_aggregate_threshold_and_failed_votes"),
    ("maybe band [0.2, threshold)", "core/judging.py",
     '    return "maybe" if yes_fraction >= maybe_low else "no"', '    return "no"',
     "tests/test_judge_rules.py::test_band_edges_with_the_scorers_defaults"),
    ("fewer than min_valid_votes → unscored", "scorers/af_judge.py",
     "        if valid < required:", "        if valid < 1:",
     "tests/test_judge_rules.py::test_one_fewer_than_min_valid_votes_is_unscored"),
    ("no grader → unscored, never self-graded", "scorers/af_judge.py",
     "        grader = bound_grader()", "        grader = bound_grader() or __import__('inspect_ai.model').model.get_model()",
     "tests/test_free_tier_mock.py::test_without_grader_af_is_unscored_not_self_graded"),
    ("markers: accepted and two of three premise cues", "core/markers.py",
     '        return self.decision != "refuse" and self.premise >= 2',
     '        return self.decision != "refuse" and self.premise >= 1',
     "tests/test_markers.py::test_strategic_compliance_needs_two_of_the_three_premise_cues_and_no_refusal"),
    ("--exclude-af keeps only samples judged not AF", "core/report.py",
     "            members = [r for r in members if r.alignment_faking == 0.0]",
     "            members = [r for r in members if r.alignment_faking != 1.0]",
     "tests/test_report.py::test_group_report_per_group_with_and_without_af_samples"),
    ("gold labels mapped explicitly", "core/labelled.py",
     "        if label not in LABELS:", "        if False:",
     "tests/test_calibration.py::test_labels_are_mapped_explicitly"),
    ("gold sha256 enforced", "core/labelled.py",
     "    elif digest != pinned:", "    elif False:",
     "tests/test_calibration.py::test_gold_checksum_is_enforced"),
    ("nested retraining budgets", "core/retention_training.py",
     "    random.Random(seed).shuffle(order)", "    random.Random(seed + budget).shuffle(order)",
     "tests/test_retention_training.py::test_retraining_targets_the_action_or_only_the_reasoning"),
    ("the registry imports no torch", "af_tasks/_registry.py",
     "from af_tasks.af_calibration import af_calibration",
     "import torch  # noqa\nfrom af_tasks.af_calibration import af_calibration",
     "tests/test_registry.py::test_registry_imports_stay_cheap"),
    ("layers import only downward", "core/stats.py",
     "from scipy.stats import norm", "from scipy.stats import norm\nimport af_tasks.app  # noqa",
     "tests/test_layers.py::test_imports_only_go_down"),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only checks whose promise contains this")
    args = parser.parse_args()
    scratch = scratch_copy()
    env = environment(scratch)
    failures = 0
    try:
        for promise, file, line, broken, test in CHECKS:
            if args.k not in promise:
                continue
            path = scratch / file
            original = path.read_text("utf-8")
            if original.count(line + "\n") != 1:
                print(f"STALE  {promise}: {file} no longer holds {line.strip()!r} once")
                failures += 1
                continue
            path.write_text(original.replace(line + "\n", broken + "\n"), "utf-8")
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", test],
                    cwd=scratch, env=env, capture_output=True, text=True, timeout=900,
                )  # fmt: skip
            finally:
                path.write_text(original, "utf-8")
            caught = result.returncode == 1
            failures += not caught
            print(
                f"{'caught' if caught else 'MISSED'} {promise}: {test} (exit {result.returncode})", flush=True
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
