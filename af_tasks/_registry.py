"""Inspect registry entry point for tasks (kept light: no torch/transformers imports)."""

from af_tasks.free_tier import free_tier

__all__ = ["free_tier"]
