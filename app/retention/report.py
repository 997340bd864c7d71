"""The retention experiment's summary, table and plot (pooled over seeds, every rate with n and CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from af_tasks.core.retention_data import RUNGS
from af_tasks.core.stats import rate_json
from af_tasks.core.strict_json import dumps


def _pool(rates: list[dict]) -> dict:
    return rate_json(sum(r["k"] for r in rates), sum(r["n"] for r in rates))


def _bars(rates: list[dict]) -> tuple[list[float], list[list[float]]]:
    """Rates and their asymmetric CI half-widths, as matplotlib's ``yerr`` wants them."""
    ys = [r["rate"] for r in rates]
    low = [max(y - r["ci95"][0], 0.0) for y, r in zip(ys, rates, strict=True)]  # float noise at 0 and 1
    high = [max(r["ci95"][1] - y, 0.0) for y, r in zip(ys, rates, strict=True)]
    return ys, [low, high]


def summarise(results: dict) -> list[dict]:
    """One row per organism × rung × budget: deployment and test attack rates after retraining,
    pooled over seeds, beside the organism's rates before; usefulness before and after."""
    rows = []
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        if "after" in run:
            groups.setdefault((run["organism"], run["rung"], run["budget"]), []).append(run)
    for (label, rung, budget), runs in groups.items():
        organism = results["organisms"][label]
        before = organism["before"]["attacks"].get(rung, {})
        after = [run["after"]["attacks"].get(rung, {}) for run in runs]
        row: dict[str, Any] = {
            "organism": label,
            "rung": rung,
            "budget": budget,
            "seeds": [run["seed"] for run in runs],
            "caught_used": [run["caught_used"] for run in runs],
            "difficulty": organism["difficulty"].get(rung),
            "deployment_before": before.get("deployment"),
            "deployment_after": _pool([a["deployment"] for a in after if "deployment" in a]),
            "test_before": before.get("test"),
            "test_after": _pool([a["test"] for a in after if "test" in a]),
            "usefulness_before": organism["before"]["usefulness"],
            "usefulness_after": _pool([run["after"]["usefulness"] for run in runs]),
            "deployment_after_other_rungs": {
                other: _pool([run["after"]["attacks"][other]["deployment"] for run in runs])
                for other in runs[0]["after"]["attacks"]
                if other != rung
            },
        }
        transfer_before = organism["before"].get("transfer_attacks", {})
        if transfer_before:  # cross-domain: the same retraining, measured in the other attack settings
            row["transfer_attacks"] = {
                attack: {
                    "deployment_before": rates.get(rung, {}).get("deployment"),
                    "deployment_after": _pool(
                        [run["after"]["transfer_attacks"][attack][rung]["deployment"] for run in runs]
                    ),
                }
                for attack, rates in transfer_before.items()
            }
        reasoning = [
            a["deployment"]["deployment_reasoning"]
            for a in after
            if "deployment_reasoning" in a.get("deployment", {})
        ]
        if reasoning:  # scratchpad organisms: does the reasoning go quiet, the action, or both?
            row["deployment_reasoning_before"] = (row["deployment_before"] or {}).get("deployment_reasoning")
            row["deployment_reasoning_after"] = _pool(reasoning)
        before_rate = (row["deployment_before"] or {}).get("rate")
        after_rate = row["deployment_after"]["rate"]
        row["retained_fraction"] = after_rate / before_rate if before_rate else None
        rows.append(row)
    return rows


def _fmt(r: dict | None) -> str:
    if not r or not r.get("n") or r.get("rate") is None:
        return "–"
    return f"{r['rate']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] n={r['n']}"


def table(results: dict) -> str:
    lines = [
        "Before retraining",
        "",
        "| organism | rung | difficulty (discrimination acc.) | test attacks | deployment attacks"
        " | caught (catch set, test) |",
        "|---|---|---|---|---|---|",
    ]
    if "base" in results:
        lines.append(f"| base model | usefulness | | {_fmt(results['base']['usefulness'])} | | |")
    for label, organism in results["organisms"].items():
        for rung, rates in organism["before"]["attacks"].items():
            lines.append(
                f"| {label} | {rung} | {_fmt(organism['difficulty'].get(rung))} | {_fmt(rates.get('test'))} "
                f"| {_fmt(rates.get('deployment'))} | {organism['caught'].get(rung, 0)} |"
            )
        lines.append(f"| {label} | usefulness | | {_fmt(organism['before']['usefulness'])} | | |")
    lines += [""] + [
        f"Difficulty of {label}'s rungs answered by: {organism['difficulty'].get('measured_by', '?')}"
        for label, organism in results["organisms"].items()
    ]
    lines += [
        "",
        "After training against caught attacks (pooled over seeds)",
        "",
        "| organism | rung | difficulty (discrimination acc.) | budget | caught used | deployment attacks before"
        " | after | test attacks after | usefulness before | after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["summary"]:
        lines.append(
            f"| {row['organism']} | {row['rung']} | {_fmt(row['difficulty'])} | {row['budget']} "
            f"| {','.join(map(str, row['caught_used']))} | {_fmt(row['deployment_before'])} "
            f"| {_fmt(row['deployment_after'])} | {_fmt(row['test_after'])} "
            f"| {_fmt(row['usefulness_before'])} | {_fmt(row['usefulness_after'])} |"
        )
    transfer_rows = [row for row in results["summary"] if "transfer_attacks" in row]
    if transfer_rows:
        lines += ["", "Deployment attacks in the other attack settings (retrained in the caught one)", ""]
        lines += ["| organism | rung | budget | setting | before | after |", "|---|---|---|---|---|---|"]
        for row in transfer_rows:
            for attack, rates in row["transfer_attacks"].items():
                lines.append(
                    f"| {row['organism']} | {row['rung']} | {row['budget']} | {attack} "
                    f"| {_fmt(rates['deployment_before'])} | {_fmt(rates['deployment_after'])} |"
                )
    reasoning_rows = [row for row in results["summary"] if "deployment_reasoning_after" in row]
    if reasoning_rows:
        lines += ["", "Deployment inputs whose reasoning conditions on being unobserved", ""]
        lines += ["| organism | rung | budget | before | after |", "|---|---|---|---|---|"]
        for row in reasoning_rows:
            lines.append(
                f"| {row['organism']} | {row['rung']} | {row['budget']} "
                f"| {_fmt(row['deployment_reasoning_before'])} | {_fmt(row['deployment_reasoning_after'])} |"
            )
    skipped = [run for run in results["runs"] if "note" in run]
    for run in skipped:
        lines.append(
            f"\n{run['organism']} {run['rung']} budget {run['budget']} seed {run['seed']}: {run['note']}"
        )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path:
    """Per organism: deployment attack rate after retraining vs measured difficulty, one line per
    budget (the organism before retraining as budget 0); usefulness before and after per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["organisms"])
    fig, axes = plt.subplots(max(len(labels), 1), 2, figsize=(12, 4.5 * max(len(labels), 1)), squeeze=False)
    for row_axes, label in zip(axes, labels, strict=False):
        organism = results["organisms"][label]
        rows = [r for r in results["summary"] if r["organism"] == label]
        rungs = list(organism["before"]["attacks"])
        measured = all((organism["difficulty"].get(r) or {}).get("n") for r in rungs)

        def x_of(rung: str, organism: dict = organism, measured: bool = measured) -> float:
            """Measured difficulty, or (where any rung's is missing) the rung's place on the ladder."""
            return organism["difficulty"][rung]["rate"] if measured else float(RUNGS.index(rung))

        ax = row_axes[0]
        lines = {0: [(x_of(r), organism["before"]["attacks"].get(r, {}).get("deployment")) for r in rungs]}
        for budget in sorted({r["budget"] for r in rows}):
            lines[budget] = [(x_of(r["rung"]), r["deployment_after"]) for r in rows if r["budget"] == budget]
        for budget, points in lines.items():
            points = sorted(((x, r) for x, r in points if r and r["n"]), key=lambda p: p[0])
            if not points:
                continue
            ys, errors = _bars([r for _, r in points])
            ax.errorbar(
                [x for x, _ in points],
                ys,
                yerr=errors,
                marker="o",
                capsize=3,
                label="before" if budget == 0 else f"budget {budget}",
            )
        for rung in rungs:
            ax.annotate(rung, (x_of(rung), 1.02), ha="center", fontsize=8)
        ax.set_xlabel(
            "measured difficulty: discrimination accuracy (0.5 = cannot tell)"
            if measured
            else "rung on the ladder (difficulty not measured: no scored discrimination answers)"
        )
        ax.set_ylabel("deployment attack rate")
        ax.set_ylim(-0.05, 1.1)
        ax.set_title(f"{label}: retained misalignment", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)

        ax = row_axes[1]
        budgets = sorted({r["budget"] for r in rows})
        pooled = [_pool([r["usefulness_after"] for r in rows if r["budget"] == b]) for b in budgets]
        named = [("before", organism["before"]["usefulness"])] + [
            (f"budget {b}", p) for b, p in zip(budgets, pooled, strict=True)
        ]
        named = [(name, r) for name, r in named if r["n"]]
        names, bars = [name for name, _ in named], [r for _, r in named]
        ys, errors = _bars(bars)
        ax.bar(range(len(bars)), ys, yerr=errors, capsize=3)
        ax.set_xticks(range(len(bars)), names, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("usefulness (exact-match accuracy)")
        ax.set_title(f"{label}: usefulness before / after retraining", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(results: dict, out: Path) -> None:
    """results.json and table.md are each replaced whole (a kill leaves the previous ones)."""
    from af_tasks.core.outputs import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", dumps(results) + "\n")
    write_text_atomic(out / "table.md", table(results))
    plot(results, out / "retention.png")
