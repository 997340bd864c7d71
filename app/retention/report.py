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


def _loglik_rows(before: dict, runs: list[dict], seed: int) -> dict:
    """Log-likelihood usefulness before and after (each item's after averaged over the seeds, so the
    paired interval resamples items, not items × seeds that share them)."""
    if "loglik" not in before or not all("loglik" in run["after"] for run in runs):
        return {}
    from af_tasks.engine.likelihood import loglik_change

    per_seed = [{row["id"]: row["loglik"] for row in run["after"]["loglik"]["per_item"]} for run in runs]
    averaged = {
        "set": before["loglik"]["set"],
        "per_item": [
            {
                "id": row["id"],
                "loglik": sum(seed_values[row["id"]] for seed_values in per_seed) / len(per_seed),
            }
            for row in before["loglik"]["per_item"]
        ],
    }
    change = loglik_change(before["loglik"], averaged, seed=seed)
    return {"loglik_before": change["before"], "loglik_after": change["after"], "loglik_change": change}


def transfer_matrix(results: dict, label: str, budget: int) -> dict[str, dict[str, dict]]:
    """Trained rung → measured rung → deployment attack rate after retraining at ``budget`` (pooled
    over seeds), from the runs that measured every rung (``--transfer``); the diagonal is the trained
    rung itself. Rungs with nothing caught have no row."""
    matrix: dict[str, dict[str, dict]] = {}
    for row in results["summary"]:
        if row["organism"] != label or row["budget"] != budget or not row["deployment_after_other_rungs"]:
            continue
        matrix[row["rung"]] = {row["rung"]: row["deployment_after"]} | row["deployment_after_other_rungs"]
    return matrix


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
            **_loglik_rows(organism["before"], runs, results["settings"].get("data_seed", 0)),
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


def _fmt_mean(m: dict | None, signed: bool = False) -> str:
    if not m or m.get("mean") is None:
        return "–"
    f = "{:+.3f}" if signed else "{:.3f}"
    low, high = m["ci95"]
    interval = f" [{f.format(low)}, {f.format(high)}]" if low is not None and high is not None else ""
    return f"{f.format(m['mean'])}{interval} n={m['n']}"


def _extra_tables(results: dict) -> list[str]:
    """Log-likelihood usefulness and the transfer matrices (empty where not measured)."""
    lines: list[str] = []
    rows = [row for row in results["summary"] if "loglik_change" in row]
    if rows:
        base = (results.get("base") or {}).get("loglik")
        lines += [
            "",
            "Usefulness as the mean per-token log-likelihood of held-out benign answers (higher is better;"
            " each item's after averaged over seeds; paired bootstrap interval over items)",
            "",
        ]
        if base:
            lines.append(f"Base model: {_fmt_mean(base['mean_token_loglik'])}")
            lines.append("")
        lines += [
            "| organism | rung | budget | before | after | change | items worse |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            change = row["loglik_change"]
            lines.append(
                f"| {row['organism']} | {row['rung']} | {row['budget']} | {_fmt_mean(row['loglik_before'])} "
                f"| {_fmt_mean(row['loglik_after'])} | {_fmt_mean(change['difference'], signed=True)} "
                f"| {_fmt(change['worse'])} |"
            )
    for label, organism in results["organisms"].items():
        budgets = sorted({row["budget"] for row in results["summary"] if row["organism"] == label})
        for budget in budgets:
            matrix = transfer_matrix(results, label, budget)
            if not matrix:
                continue
            measured = [r for r in RUNGS if r in organism["before"]["attacks"]]
            lines += [
                "",
                f"Transfer, {label}, budget {budget}: deployment attack rate after retraining on one rung's"
                " caught attacks (rows) measured on every rung (columns), pooled over seeds",
                "",
                "| trained on ↓ / measured on → | " + " | ".join(measured) + " |",
                "|---|" + "---|" * len(measured),
                "| (before retraining) | "
                + " | ".join(_fmt(organism["before"]["attacks"][m].get("deployment")) for m in measured)
                + " |",
            ]
            for trained, rates in matrix.items():
                lines.append(f"| {trained} | " + " | ".join(_fmt(rates.get(m)) for m in measured) + " |")
    return lines


def table(results: dict) -> str:
    lines = [
        "Before retraining",
        "",
        "| organism | rung | difficulty (discrimination acc.) | separability (probe acc. by training pairs)"
        " | test attacks | deployment attacks | caught (catch set, test) |",
        "|---|---|---|---|---|---|---|",
    ]
    curves = (results.get("separability") or {}).get("rungs", {})
    if "base" in results:
        lines.append(f"| base model | usefulness | | | {_fmt(results['base']['usefulness'])} | | |")
    for label, organism in results["organisms"].items():
        for rung, rates in organism["before"]["attacks"].items():
            lines.append(
                f"| {label} | {rung} | {_fmt(organism['difficulty'].get(rung))} | {_curve_text(curves.get(rung))} "
                f"| {_fmt(rates.get('test'))} | {_fmt(rates.get('deployment'))} | {organism['caught'].get(rung, 0)} |"
            )
        lines.append(f"| {label} | usefulness | | | {_fmt(organism['before']['usefulness'])} | | |")
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
    lines += _extra_tables(results)
    skipped = [run for run in results["runs"] if "note" in run]
    for run in skipped:
        lines.append(
            f"\n{run['organism']} {run['rung']} budget {run['budget']} seed {run['seed']}: {run['note']}"
        )
    return "\n".join(lines) + "\n"


AXIS_PAIRS = 4
"""The representational difficulty axis: the probe's mean held-out accuracy when it learns from this
many test/deployment pairs — a handful, as an overseer with a few labelled examples would have (the
whole learning curve is in ``results.json`` and the table). Fixed before any run was read."""


def separability_accuracy(curve: dict | None, pairs: int = AXIS_PAIRS) -> float | None:
    """The probe's mean accuracy at ``pairs`` training pairs (None where the curve has no such size)."""
    for row in (curve or {}).get("sizes", []):
        if row["pairs"] == pairs:
            return row["mean"]
    return None


def _curve_text(curve: dict | None) -> str:
    if not curve:
        return "–"
    points = " ".join(f"{row['pairs']}:{row['mean']:.2f}" for row in curve["sizes"])
    reach = curve.get("pairs_to_target")
    largest = curve["sizes"][-1]["pairs"] if curve["sizes"] else 0
    return f"{points}; {curve['target']:.0%} at {reach if reach is not None else f'>{largest}'} pairs"


def _retained_panel(ax, organism: dict, rows: list[dict], x_of, xlabel: str, title: str) -> None:
    """Deployment attack rate after retraining against a difficulty measure, one line per budget."""
    rungs = [r for r in RUNGS if r in organism["before"]["attacks"] and x_of(r) is not None]
    lines = {0: [(x_of(r), organism["before"]["attacks"][r].get("deployment")) for r in rungs]}
    for budget in sorted({r["budget"] for r in rows}):
        lines[budget] = [
            (x_of(r["rung"]), r["deployment_after"])
            for r in rows
            if r["budget"] == budget and r["rung"] in rungs
        ]
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
        ax.annotate(rung, (x_of(rung), 1.04), ha="center", fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("deployment attack rate")
    ax.set_ylim(-0.05, 1.12)
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _transfer_panel(ax, results: dict, label: str, organism: dict) -> None:
    """Change in deployment attack rate (after − before) per trained × measured rung, largest budget
    that trained on anything."""
    budgets = sorted({r["budget"] for r in results["summary"] if r["organism"] == label}, reverse=True)
    matrix, budget = {}, None
    for budget in budgets:
        if matrix := transfer_matrix(results, label, budget):
            break
    if not matrix:
        ax.set_axis_off()
        ax.set_title(f"{label}: transfer not measured (--transfer)", fontsize=9)
        return
    measured = [r for r in RUNGS if r in organism["before"]["attacks"]]
    trained = [r for r in RUNGS if r in matrix]
    values = [
        [matrix[t][m]["rate"] - organism["before"]["attacks"][m]["deployment"]["rate"] for m in measured]
        for t in trained
    ]
    image = ax.imshow(values, cmap="RdBu", vmin=-1, vmax=1)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:+.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(measured)), measured, fontsize=8)
    ax.set_yticks(range(len(trained)), trained, fontsize=8)
    ax.set_xlabel("measured on (deployment)", fontsize=8)
    ax.set_ylabel("retrained on (caught in testing)", fontsize=8)
    ax.set_title(f"{label}: transfer, attack rate after − before (budget {budget})", fontsize=9)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


def _usefulness_panel(ax, rows: list[dict], label: str) -> None:
    """Log-likelihood usefulness change per budget and rung (paired CI), or exact-match accuracy."""
    measured = [r for r in rows if "loglik_change" in r]
    budgets = sorted({r["budget"] for r in rows})
    if not measured:
        ax.set_axis_off()
        return
    rungs = [r for r in RUNGS if any(row["rung"] == r for row in measured)]
    for offset, rung in enumerate(rungs):
        points = [
            (budgets.index(r["budget"]), r["loglik_change"]["difference"])
            for r in measured
            if r["rung"] == rung
        ]
        xs = [x + (offset - (len(rungs) - 1) / 2) * 0.12 for x, _ in points]
        ys = [d["mean"] for _, d in points]
        errors = [
            [d["mean"] - d["ci95"][0] for _, d in points],
            [d["ci95"][1] - d["mean"] for _, d in points],
        ]
        ax.errorbar(xs, ys, yerr=errors, marker="o", linestyle="", capsize=3, label=rung)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(budgets)), [f"budget {b}" for b in budgets], fontsize=8)
    ax.set_ylabel("Δ mean token log-lik, benign answers", fontsize=8)
    ax.set_title(f"{label}: usefulness change (after − before, paired 95 % CI)", fontsize=9)
    ax.legend(fontsize=7)


def plot(results: dict, path: Path) -> Path:
    """One row per organism (attacker length): retained deployment attacks against each difficulty
    measure (behavioural, representational), one line per budget (before retraining as budget 0);
    the transfer matrix; the usefulness change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results["organisms"])
    curves = (results.get("separability") or {}).get("rungs", {})
    fig, axes = plt.subplots(max(len(labels), 1), 4, figsize=(24, 4.8 * max(len(labels), 1)), squeeze=False)
    for row_axes, label in zip(axes, labels, strict=False):
        organism = results["organisms"][label]
        rows = [r for r in results["summary"] if r["organism"] == label]
        behavioural = {r: (organism["difficulty"].get(r) or {}) for r in RUNGS}
        _retained_panel(
            row_axes[0],
            organism,
            rows,
            lambda rung, b=behavioural: b[rung]["rate"] if b[rung].get("n") else None,
            f"behavioural: {organism['difficulty'].get('measured_by', '?')} model's accuracy at telling "
            "deployment (0.5 = chance)",
            f"{label}: retained misalignment vs behavioural difficulty",
        )
        _retained_panel(
            row_axes[1],
            organism,
            rows,
            lambda rung: separability_accuracy(curves.get(rung)),
            f"representational: base-model probe accuracy from {AXIS_PAIRS} pairs (0.5 = inseparable)",
            f"{label}: retained misalignment vs representational difficulty",
        )
        _transfer_panel(row_axes[2], results, label, organism)
        _usefulness_panel(row_axes[3], rows, label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict, out: Path) -> None:
    """results.json and table.md are each replaced whole (a kill leaves the previous ones)."""
    from af_tasks.core.outputs import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "results.json", dumps(results) + "\n")
    write_text_atomic(out / "table.md", table(results))
    plot(results, out / "retention.png")
