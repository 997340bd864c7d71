"""Inspect solvers (the scratchpad protocol, replay) and the ``organism/`` model provider."""
