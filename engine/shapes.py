"""Shape buckets, compile limits and compile options shared by the compiled paths (compute core).

Why: compiled decode steps are specialised on shapes, so batch sizes and cache lengths are rounded to a
few buckets, and dynamo must be allowed one graph per bucket a process meets.
"""

from __future__ import annotations


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


SHAPE_GRAPHS = 256
"""Graphs one compiled decode step may hold: one per (batch bucket, cache length) that a process meets.
Dynamo's default limit (8) ended a long-lived process (the retention experiment's evals: batch buckets
1-64 × several prompt widths) with FailOnRecompileLimitHit under ``fullgraph=True``."""


def allow_shape_graphs(limit: int = SHAPE_GRAPHS) -> None:
    """Raise dynamo's per-function recompile limit to ``limit`` (never lower it): the decode step is
    specialised on shapes by design (``dynamic=False``), so each new shape is a graph, not a fault."""
    import torch._dynamo

    config = torch._dynamo.config
    for name in (
        "recompile_limit",
        "cache_size_limit",
        "accumulated_recompile_limit",
        "accumulated_cache_size_limit",
    ):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), limit))


def batch_bucket(size: int) -> int:
    """The power of two at or above ``size``: compiled decode steps are specialised on batch size."""
    return 1 << max(0, size - 1).bit_length()


COMPILE_OPTIONS = {"emulate_precision_casts": True}
"""Inductor options for compiled model layers (SAE extraction, LoRA training): inductor rounds every
intermediate that eager rounds (a bf16 ``.to`` inside a fused kernel stays a bf16 rounding). Without it a
fused RMSNorm kept fp32 intermediates and hooked bf16 activations moved by ~0.5 % (relative norm, tiny
Llama on CPU); with it they equalled eager's there (CI checks it). The fused kernels are memory-bound,
so the extra roundings should cost no time."""
