"""Inspect registry entry point for solvers (kept light: no torch/transformers imports)."""

from solvers.scratchpad import scratchpad_protocol

__all__ = ["scratchpad_protocol"]
