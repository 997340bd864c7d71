"""Inspect scorers and metrics (thin adapters over ``af_tasks.core``)."""
