"""The ``af`` command line and what it drives: demo, experiments, reports (the top layer)."""
