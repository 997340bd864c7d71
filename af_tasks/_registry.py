"""Inspect registry entry point for tasks (kept light: no torch/transformers imports)."""

from af_tasks.af_calibration import af_calibration
from af_tasks.contractor import contractor
from af_tasks.free_tier import free_tier
from af_tasks.retention import deployment_discrimination, retention_eval, retention_usefulness
from af_tasks.rlhf_cues import rlhf_cues
from af_tasks.synthetic_reasoning import synthetic_reasoning
from af_tasks.value_conflict import value_conflict

__all__ = [
    "af_calibration",
    "contractor",
    "deployment_discrimination",
    "free_tier",
    "retention_eval",
    "retention_usefulness",
    "rlhf_cues",
    "synthetic_reasoning",
    "value_conflict",
]
