"""Named features (``L40_F15484``): a few chosen SAE/transcoder features read per sample, and how
they separate reference AF from aligned reasoning.

Published feature interpretations are hypotheses: this module reports each named feature's
per-sample max / mean / active-token count, its distribution on the reference halves (two-sample
KS, AUROC with a bootstrap CI) and on organism groups — nothing is selected or tuned on the
reference set. Every layer involved is read in one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from af_tasks.core.errors import SettingError
from af_tasks.core.feature_stats import bootstrap_mean_ci
from af_tasks.core.features import FeatureReading

STATISTICS = ("max", "mean", "active_tokens")


def load_replicas(
    model: str, adapter: str | None, devices: list[str], make_readings, compile: bool | None = None
) -> list[tuple[Any, list[FeatureReading]]]:
    """(reader, its readings with SAEs on its device) per device; ``make_readings()`` gives fresh,
    unloaded readings (each replica loads its own SAEs)."""
    from af_tasks.sae.reader import load_reader

    replicas = []
    for device in devices:
        reader = load_reader(model, adapter, device, compile)
        replicas.append((reader, load_readings(reader, make_readings())))
    return replicas


def load_readings(reader, readings: list[FeatureReading]) -> list[FeatureReading]:
    """Loads each SAE and checks it against the model and its features' indices, before any forward."""
    from af_tasks.sae.saes import SaeError, check_compatible, load_sae

    for reading in readings:
        reading.sae = load_sae(reading.sae_source, reader.device)
        check_compatible(reading.sae, reading.hook, reader.hidden_size, reader.name, reading.sae_source)
        d_sae = int(reading.sae.cfg.d_sae)
        outside = [f.name for f in reading.features if not 0 <= f.index < d_sae]
        if outside:
            raise SaeError(f"features {outside} are outside SAE {reading.sae_source} (d_sae={d_sae})")
    return readings


@dataclass
class NamedValues:
    """Per-sample figures: ``values[name][statistic]`` is an [n_texts] array."""

    values: dict[str, dict[str, np.ndarray]]
    n_tokens: np.ndarray
    truncated: int = 0

    def sample(self, i: int) -> dict[str, dict[str, float]]:
        return {
            name: {stat: float(v[i]) if stat != "active_tokens" else int(v[i]) for stat, v in stats.items()}
            for name, stats in self.values.items()
        }


def named_values(
    reader,
    readings: list[FeatureReading],
    texts: Sequence[str],
    span: str = "reasoning",
    max_tokens: int = 1024,
    batch_size: int = 8,
    replicas: list[tuple[Any, list[FeatureReading]]] | None = None,
) -> NamedValues:
    """One forward pass (stopped at the deepest hooked layer); each SAE encodes on the device and
    only its named columns are pooled. ``replicas``: (reader, its readings) per device, the texts
    split across them (``af_tasks.sae.parallel``); default: ``reader`` alone."""
    from af_tasks.core.hooks import parse_hook
    from af_tasks.sae.activations import ExtractionStats, iter_token_activations, pool
    from af_tasks.sae.parallel import pool_on_replicas
    from af_tasks.sae.saes import encoder

    def columns(reading: FeatureReading):
        encode = encoder(reading.sae)
        index = [f.index for f in reading.features]
        return lambda acts: encode(acts)[:, index]

    hooks = {parse_hook(r.hook).name: r for r in readings}
    if len(hooks) != len(readings):
        raise SettingError("two SAEs read the same hook; give each hook one SAE")
    replicas = replicas or [(reader, readings)]

    def extract(replica: int, share: list[str], share_stats: ExtractionStats):
        here, here_readings = replicas[replica]
        batches = iter_token_activations(here, share, list(hooks), span, max_tokens, batch_size, share_stats)
        transforms = {parse_hook(r.hook).name: columns(r) for r in here_readings}
        return pool(batches, len(share), transforms=transforms)

    stats = ExtractionStats()
    devices = [here.device for here, _ in replicas]
    pooled = pool_on_replicas(extract, devices, texts, batch_size, stats)
    empty = np.zeros(len(texts), dtype=np.float32)
    n_tokens = next(iter(pooled.values())).n_tokens if pooled else np.zeros(len(texts), dtype=np.int64)
    values: dict[str, dict[str, np.ndarray]] = {}
    for name, reading in hooks.items():
        here = pooled.get(name)  # None when no text had a token in the span
        for column, feature in enumerate(reading.features):
            values[feature.name] = {
                stat: getattr(here, stat)[:, column] if here is not None else empty for stat in STATISTICS
            }
    return NamedValues(values, n_tokens, len(stats.truncated))


def _fires(values: dict[str, np.ndarray]) -> dict:
    from af_tasks.core.stats import rate_json

    return rate_json(int((values["active_tokens"] > 0).sum()), len(values["active_tokens"]))


def compare_named(
    groups: dict[str, NamedValues],
    reference_af: str,
    reference_aligned: str,
    descriptions: dict[str, str],
    statistic: str = "max",
    seed: int = 0,
) -> dict:
    """Per feature: each group's mean ``statistic`` (bootstrap CI) and firing rate (Wilson CI);
    reference AF vs aligned by KS and AUROC (bootstrap CI); every other group vs reference AF by KS."""
    from scipy.stats import ks_2samp

    from af_tasks.sae.probes import auroc_with_ci

    if statistic not in STATISTICS:
        raise SettingError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    names = list(groups[reference_af].values)
    features = {}
    for name in names:
        af = groups[reference_af].values[name][statistic]
        aligned = groups[reference_aligned].values[name][statistic]
        entry: dict[str, Any] = {
            "description": descriptions.get(name, ""),
            "groups": {
                group: {
                    statistic: bootstrap_mean_ci(values.values[name][statistic], seed),
                    "fires": _fires(values.values[name]),
                }
                for group, values in groups.items()
            },
        }
        if len(af) >= 2 and len(aligned) >= 2:
            scores = np.concatenate([af, aligned])
            labels = np.array([True] * len(af) + [False] * len(aligned))
            entry["reference_af_vs_aligned"] = {
                "ks_pvalue": float(ks_2samp(af, aligned).pvalue),
                "auroc": auroc_with_ci(scores, labels, seed),
            }
        entry["vs_reference_af_ks_pvalue"] = {
            group: float(ks_2samp(values.values[name][statistic], af).pvalue)
            for group, values in groups.items()
            if group not in (reference_af, reference_aligned) and len(values.n_tokens) >= 2 and len(af) >= 2
        }
        features[name] = entry
    return {
        "statistic": statistic,
        "reference": {"af": reference_af, "aligned": reference_aligned},
        "sizes": {group: len(values.n_tokens) for group, values in groups.items()},
        "truncated_texts": {group: values.truncated for group, values in groups.items()},
        "features": features,
    }


def named_headline(report: dict) -> list[str]:
    lines = []
    stat = report["statistic"]
    for name, entry in report["features"].items():
        label = f"{name} ({entry['description']})" if entry["description"] else name
        parts = []
        for group, figures in entry["groups"].items():
            mean = figures[stat]
            parts.append(f"{group} {mean['mean']:.3g} [{mean['ci95'][0]:.3g}, {mean['ci95'][1]:.3g}]")
        lines.append(f"{label}: per-sample {stat}: " + "; ".join(parts))
        if "reference_af_vs_aligned" in entry:
            ref = entry["reference_af_vs_aligned"]
            auroc = ref["auroc"]
            lines.append(
                f"  AF vs aligned: AUROC {auroc['auroc']:.3f} [{auroc['ci95'][0]:.3f}, {auroc['ci95'][1]:.3f}] "
                f"(n={auroc['n_pos']}+{auroc['n_neg']}), KS p={ref['ks_pvalue']:.3g}"
            )
    return lines
