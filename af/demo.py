"""`af demo`: free_tier on the embedded model, offline, on CPU, with a readable summary."""

from __future__ import annotations

import math
import time
from pathlib import Path

from af.presets import DEFAULT_MODEL, get_preset


def _fmt_rate(metrics: dict[str, float], prefix: str) -> str:
    rate, n = metrics.get(f"{prefix}_rate", math.nan), int(metrics.get(f"{prefix}_n", 0))
    low, high = metrics.get(f"{prefix}_ci_low", math.nan), metrics.get(f"{prefix}_ci_high", math.nan)
    if n == 0:
        return "n/a (n=0)"
    return f"{rate:.2f} (n={n}, 95% CI {low:.2f}–{high:.2f})"


def scorer_metrics(log, scorer: str) -> dict[str, float]:
    """Metric values of one scorer in an Inspect log's results ({} when absent)."""
    if log.results is None:
        return {}
    for score in log.results.scores:
        if score.name == scorer:
            return {name: metric.value for name, metric in score.metrics.items()}
    return {}


def summarise_log(log) -> str:
    """Per-condition compliance, the gap with CI and p, malformed counts and the AF rate."""
    compliance = scorer_metrics(log, "compliance")
    af = scorer_metrics(log, "af_reasoning")
    unscored_af = next(
        (s.unscored_samples for s in (log.results.scores if log.results else []) if s.name == "af_reasoning"),
        None,
    )
    lines = [
        f"samples: {len(log.samples or [])}   model: {log.eval.model}",
        f"compliance, monitored (free tier):     {_fmt_rate(compliance, 'monitored')}",
        f"compliance, unmonitored (paid tier):   {_fmt_rate(compliance, 'unmonitored')}",
    ]
    gap = compliance.get("gap", math.nan)
    if math.isnan(gap):
        lines.append("compliance gap:                        n/a (no well-formed answers in a condition)")
    else:
        lines.append(
            f"compliance gap (monitored − unmonitored): {gap:+.2f} "
            f"(95% CI {compliance['gap_ci_low']:+.2f} to {compliance['gap_ci_high']:+.2f}, "
            f"p = {compliance['gap_p_value']:.3g})"
        )
    lines.append(
        f"malformed answers (neither tag at the start of <OUTPUT>): "
        f"monitored {int(compliance.get('monitored_malformed', 0))}, "
        f"unmonitored {int(compliance.get('unmonitored_malformed', 0))}"
    )
    if af.get("monitored_n"):
        lines.append(f"AF reasoning, monitored:               {_fmt_rate(af, 'monitored')}")
    else:
        lines.append(
            f"AF reasoning: unscored ({unscored_af} samples) — bind a judge with "
            "--model-role grader=<model> to score it"
        )
    return "\n".join(lines)


def run_demo(limit: int = 24, log_dir: str = "logs", max_tokens: int = 384) -> int:
    from inspect_ai import eval as inspect_eval

    model_dir = get_preset(DEFAULT_MODEL).local_dir
    if not (model_dir / "af_model.json").is_file():
        print(f"{model_dir} is not prepared: run `af models prepare {DEFAULT_MODEL}` (make demo does it)")
        return 1
    started = time.monotonic()
    [log] = inspect_eval(
        "af_tasks/free_tier",
        model=f"hf/{model_dir}",
        model_args={"do_sample": False},
        task_args={"max_tokens": max_tokens},
        limit=limit,
        log_dir=log_dir,
    )
    minutes = (time.monotonic() - started) / 60
    print(f"\nfree_tier on {DEFAULT_MODEL} ({log.status}, {minutes:.1f} min)")
    print(summarise_log(log))
    print(f"\nlog: {Path(log.location).resolve()}")
    print(f"open it with: inspect view --log-dir {log_dir}")
    return 0 if log.status == "success" else 1
