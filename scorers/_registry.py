"""Inspect registry entry point for scorers (kept light: no torch/transformers imports)."""

from scorers.af_judge import af_reasoning
from scorers.af_markers import af_style_markers
from scorers.compliance import compliance
from scorers.metrics import compliance_gap, compliance_rates, rates_by_condition
from scorers.quality import synthetic_quality

__all__ = [
    "af_reasoning",
    "af_style_markers",
    "compliance",
    "compliance_gap",
    "compliance_rates",
    "rates_by_condition",
    "synthetic_quality",
]
