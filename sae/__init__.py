"""Activation extraction, SAEs, statistics and probes (compute core, no Inspect import)."""
