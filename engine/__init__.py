"""Compute on models: the generation engine, the organism loader, model preparation (no Inspect)."""
