"""Inspect registry entry point for solvers and the ``organism/`` model provider (kept light: no
torch/transformers imports; the provider loads them when a model is created)."""

from solvers.organism_model import organism
from solvers.replay import replay_text
from solvers.scratchpad import scratchpad_protocol

__all__ = ["organism", "replay_text", "scratchpad_protocol"]
