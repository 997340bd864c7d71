"""Memory left on a device, checked before a large allocation (compute core).

Why: a cache sized from user settings (slots x tokens) can exceed what the machine holds. On CUDA the
allocation fails with a long allocator message; on CPU it can succeed lazily and end the process in
the kernel's out-of-memory killer. Checking first turns both into one line naming the setting to lower.
"""

from __future__ import annotations

from typing import Any


def available_bytes(device: Any) -> int | None:
    """Bytes that can still be allocated on ``device``: free GPU memory on CUDA, the operating system's
    available memory on CPU; None where neither can be read (other devices)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            import psutil
        except ImportError:
            return None
        return int(psutil.virtual_memory().available)
    return None


def require_memory(device: Any, needed: int, what: str, remedy: str) -> None:
    """Raise ``EngineError`` naming ``what`` and ``remedy`` when ``needed`` bytes exceed what
    ``device`` has left."""
    from af_tasks.engine.errors import EngineError

    free = available_bytes(device)
    if free is not None and needed > free:
        raise EngineError(
            f"{what} needs {needed / 2**30:.1f} GiB more, {free / 2**30:.1f} GiB free on {device}: {remedy}"
        )


def copy_to_device(tensor: Any, device: Any) -> Any:
    """``tensor`` (on the host) on ``device`` without waiting for the work queued there: a plain
    host-to-device copy waits for the stream to drain, so on CUDA it is staged in pinned memory and copied
    asynchronously (the pinned block is not reused before the copy has run)."""
    import torch

    if torch.device(device).type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
