"""The ``af`` command line, model presets and embedded-model preparation."""
