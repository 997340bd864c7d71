"""LoRA organisms: synthetic alignment-faking data and SFT (compute core, no Inspect import)."""
