"""Inspect solvers (scratchpad protocol) and the protocol parser (``solvers.transcript``)."""
