"""Inspect registry entry point for solvers (kept light: no torch/transformers imports)."""

from solvers.replay import replay_text
from solvers.scratchpad import scratchpad_protocol

__all__ = ["replay_text", "scratchpad_protocol"]
