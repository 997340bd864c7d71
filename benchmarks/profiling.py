"""Where device time goes: a ``torch.profiler`` trace summarised as the top kernels and device-busy time.

Shared by the GPU benchmarks, so each reports a profile in the same form: a busy fraction far below 1
means the GPU waits for the host (launches, syncs); near 1, the kernels themselves are the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TOP_KERNELS = 15


def profile_call(run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """``run()`` once under ``torch.profiler`` (CPU and CUDA), the GPU synchronised before and after:
    (the trace, its ``summarise``)."""
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        run()
        torch.cuda.synchronize()
    return trace, summarise(trace, time.perf_counter() - started)


def summarise(trace: Any, wall_s: float, top: int = TOP_KERNELS) -> dict[str, Any]:
    """Device-busy seconds (sum of kernel times), wall seconds and the ``top`` kernels by device time."""
    events = [e for e in trace.key_averages() if e.device_time_total > 0 and e.device_type.name == "CUDA"]
    ranked = sorted(events, key=lambda e: e.device_time_total, reverse=True)[:top]
    return {
        "wall_s": wall_s,
        "device_busy_s": sum(e.device_time_total for e in events) / 1e6,
        "idle": idle_gaps(trace),
        "top_kernels": [
            {"name": e.key[:120], "calls": e.count, "device_ms": e.device_time_total / 1e3} for e in ranked
        ],
    }


def idle_gaps(trace: Any, top: int = 8, min_us: float = 100.0) -> dict[str, Any]:
    """Where the device waited: the gaps of at least ``min_us`` between kernels (all streams merged),
    their total, and for the ``top`` longest the host ops that ran during them (by overlap). A gap
    under a sync op (``aten::item``, ``cudaStreamSynchronize``, a blocking copy) is a wait the code
    chose; under Python-level ops only, the host was too slow to keep the queue full."""
    from torch.autograd import DeviceType

    events = list(trace.events())
    kernels = sorted(
        (e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA
    )
    if not kernels:
        return {"gaps_over_us": min_us, "idle_in_gaps_s": 0.0, "gaps": 0, "largest": []}
    host = [e for e in events if e.device_type == DeviceType.CPU]
    gaps, end = [], kernels[0][1]
    for start, stop in kernels[1:]:
        if start - end >= min_us:
            gaps.append((end, start))
        end = max(end, stop)
    largest = []
    for begin, finish in sorted(gaps, key=lambda gap: gap[0] - gap[1])[:top]:
        during: dict[str, float] = {}
        for e in host:
            overlap = min(finish, e.time_range.end) - max(begin, e.time_range.start)
            if overlap > 0:
                during[e.name] = max(during.get(e.name, 0.0), overlap)
        ranked = sorted(during.items(), key=lambda item: -item[1])[:10]
        largest.append(
            {
                "at_ms": (begin - kernels[0][0]) / 1e3,
                "ms": (finish - begin) / 1e3,
                "host_ops": [{"name": name[:100], "ms": ms / 1e3} for name, ms in ranked],
            }
        )
    return {
        "gaps_over_us": min_us,
        "idle_in_gaps_s": sum(b - a for a, b in gaps) / 1e6,
        "gaps": len(gaps),
        "kernels_span_s": (end - kernels[0][0]) / 1e6,
        "largest": largest,
    }


def print_summary(label: str, summary: dict[str, Any]) -> None:
    print(f"profile, {label}: device busy {summary['device_busy_s']:.2f} s of {summary['wall_s']:.2f} s wall")
    for kernel in summary["top_kernels"]:
        print(f"  {kernel['device_ms']:9.1f} ms {kernel['calls']:7d}x  {kernel['name']}")
    gaps = summary.get("idle")
    if gaps:
        print(
            f"  device idle in {gaps['gaps']} gaps of >= {gaps['gaps_over_us']:g} us: "
            f"{gaps['idle_in_gaps_s']:.3f} s; longest:"
        )
        for gap in gaps["largest"]:
            ops = ", ".join(f"{op['name']} {op['ms']:.1f}" for op in gap["host_ops"][:6])
            print(f"    {gap['ms']:7.2f} ms at {gap['at_ms']:8.1f} ms: {ops}")
