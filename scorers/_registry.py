"""Inspect registry entry point for scorers (kept light: no torch/transformers imports)."""

from scorers.af_judge import af_reasoning
from scorers.af_markers import af_style_markers
from scorers.compliance import compliance
from scorers.discrimination import discrimination, discrimination_accuracy
from scorers.graded import partial_compliance, strongreject, value_support
from scorers.metrics import (
    calibration,
    compliance_gap,
    compliance_rates,
    maybe_band_rates,
    rates_by_condition,
)
from scorers.quality import synthetic_quality
from scorers.sae_scores import probe, sae_features
from scorers.usefulness import usefulness, usefulness_accuracy

__all__ = [
    "af_reasoning",
    "af_style_markers",
    "calibration",
    "compliance",
    "compliance_gap",
    "compliance_rates",
    "discrimination",
    "discrimination_accuracy",
    "maybe_band_rates",
    "partial_compliance",
    "probe",
    "rates_by_condition",
    "sae_features",
    "strongreject",
    "synthetic_quality",
    "usefulness",
    "usefulness_accuracy",
    "value_support",
]
