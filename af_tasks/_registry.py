"""Inspect registry entry point for tasks (kept light: no torch/transformers imports)."""

from af_tasks.free_tier import free_tier
from af_tasks.synthetic_reasoning import synthetic_reasoning

__all__ = ["free_tier", "synthetic_reasoning"]
