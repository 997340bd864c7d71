"""Device lists for data-parallel work (``devices=0,1``): one model replica per entry.

Why one parser: the ``organism/`` provider (``-M devices=...``), the SAE extraction (``--devices``)
and the retention experiment (``--devices``) read the same text the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from af_tasks.core.errors import SettingError


def parse_devices(value: str | int | Sequence[str | int] | None) -> list[str] | None:
    """``"0,1"`` → ``["cuda:0", "cuda:1"]``; ``"cpu,cpu"``, ``"cuda:1"``, ``"cuda"`` kept as they are;
    a list (e.g. ``-M devices=[0,1]`` parsed by Inspect) is read item by item; None / empty → None.
    A device may repeat (two replicas on one device: the CPU tests)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else value
    devices = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if text.isdigit():
            devices.append(f"cuda:{text}")
        elif text in ("cpu", "cuda", "mps") or (text.startswith("cuda:") and text[5:].isdigit()):
            devices.append(text)
        else:
            raise SettingError(
                f"devices: {text!r} is not a device; give GPU indices (0,1), cuda:N or cpu, comma-separated"
            )
    return devices or None


def cuda_index(device: str) -> int | None:
    """The GPU index of ``cuda:N`` (0 for ``cuda``), None for any other device."""
    if device == "cuda":
        return 0
    return int(device[5:]) if device.startswith("cuda:") else None

