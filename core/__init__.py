"""Pure domain of the suite: the scratchpad protocol parser, prompts, the metadata contract, rows and
labelled sets, statistics, presets, records and styles. No torch, no Inspect."""
