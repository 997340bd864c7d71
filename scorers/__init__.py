"""Inspect scorers and metrics; ``scorers.stats`` and ``scorers.judging`` are Inspect-free."""
