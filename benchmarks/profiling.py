"""Where device time goes: a ``torch.profiler`` trace summarised as the top kernels and device-busy time.

Shared by the GPU benchmarks, so each reports a profile in the same form: a busy fraction far below 1
means the GPU waits for the host (launches, syncs); near 1, the kernels themselves are the cost.
"""

from __future__ import annotations

from typing import Any

TOP_KERNELS = 15


def summarise(trace: Any, wall_s: float, top: int = TOP_KERNELS) -> dict[str, Any]:
    """Device-busy seconds (sum of kernel times), wall seconds and the ``top`` kernels by device time."""
    events = [e for e in trace.key_averages() if e.device_time_total > 0 and e.device_type.name == "CUDA"]
    ranked = sorted(events, key=lambda e: e.device_time_total, reverse=True)[:top]
    return {
        "wall_s": wall_s,
        "device_busy_s": sum(e.device_time_total for e in events) / 1e6,
        "top_kernels": [
            {"name": e.key[:120], "calls": e.count, "device_ms": e.device_time_total / 1e3} for e in ranked
        ],
    }


def print_summary(label: str, summary: dict[str, Any]) -> None:
    print(f"profile, {label}: device busy {summary['device_busy_s']:.2f} s of {summary['wall_s']:.2f} s wall")
    for kernel in summary["top_kernels"]:
        print(f"  {kernel['device_ms']:9.1f} ms {kernel['calls']:7d}x  {kernel['name']}")
