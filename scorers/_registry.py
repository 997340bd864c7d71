"""Inspect registry entry point for scorers (kept light: no torch/transformers imports)."""

from scorers.af_judge import af_reasoning
from scorers.compliance import compliance
from scorers.metrics import compliance_gap, compliance_rates, rates_by_condition

__all__ = ["af_reasoning", "compliance", "compliance_gap", "compliance_rates", "rates_by_condition"]
