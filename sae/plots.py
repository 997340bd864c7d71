"""The report's pictures: feature distributions by group, probe ROC curves, probe scores by group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from af_tasks.core.stats import roc_points


def _strip(ax, columns: dict[str, np.ndarray], title: str) -> None:
    rng = np.random.default_rng(0)
    for position, (_name, values) in enumerate(columns.items()):
        jitter = rng.uniform(-0.15, 0.15, len(values))
        ax.scatter(np.full(len(values), position) + jitter, values, s=8, alpha=0.6)
        if len(values):
            ax.hlines(np.mean(values), position - 0.3, position + 0.3, color="black")
    ax.set_xticks(range(len(columns)), list(columns), rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)


def _labelled_columns(feats, labels, column) -> dict[str, np.ndarray]:
    columns = {}
    for name, (x, _raw, _n) in feats.items():
        columns[f"{name} AF"] = column(x[labels[name]])
        columns[f"{name} aligned"] = column(x[~labels[name]])
    return columns


def plot_report(report, feats, groups, labels, summary_idx, probes, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    shown = summary_idx[:6]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for ax, feature in zip(axes.flat, shown, strict=False):
        columns = _labelled_columns(feats, labels, lambda x, f=feature: x[:, f])
        columns |= {name: x[:, feature] for name, (x, _r, _n) in groups.items()}
        _strip(ax, columns, f"SAE feature {feature} ({report['config']['pooling']} over span)")
    fig.suptitle("AF features (chosen on the training split) by group", fontsize=11)
    fig.tight_layout()
    written.append(out_dir / "features.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(probes), figsize=(5 * len(probes), 4.5), squeeze=False)
    for ax, (index, (representation, probe)) in zip(axes.flat, enumerate(probes.items()), strict=True):
        for name in feats:
            if name == "train":
                continue
            scores = probe.decision(feats[name][index]).tolist()
            points = roc_points(scores, labels[name].tolist())
            auc = report["probes"][representation][name]["auroc"]
            ax.plot(*zip(*points, strict=True), label=f"{name} (AUROC {auc:.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"probe on {representation}")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    written.append(out_dir / "roc.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    probe = probes["sae"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    columns = _labelled_columns(feats, labels, probe.predict)
    columns |= {name: probe.predict(x) for name, (x, _r, _n) in groups.items()}
    _strip(ax, columns, "SAE-feature probe: P(alignment faking) by group")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    fig.tight_layout()
    written.append(out_dir / "probe_scores.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def plot_named(report: dict, groups: dict, out_dir: Path) -> Path:
    """One panel per named feature: each group's per-sample values of the report's statistic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    statistic = report["statistic"]
    names = list(report["features"])
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 4), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        description = report["features"][name]["description"]
        columns = {group: values.values[name][statistic] for group, values in groups.items()}
        _strip(ax, columns, f"{name} ({description})" if description else name)
        ax.set_ylabel(f"per-sample {statistic}", fontsize=8)
    fig.tight_layout()
    path = out_dir / "named_features.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
