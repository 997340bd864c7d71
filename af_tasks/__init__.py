"""Inspect tasks for eliciting alignment faking; the Inspect entry point is ``af_tasks._registry``."""
