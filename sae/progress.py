"""Progress bars (tqdm, on stderr) for the long steps of ``af sae``: reading activations, fitting probes.

Why a switch: the same extraction runs inside Inspect scorers, whose display owns the terminal, so bars
are off unless a command turns them on (``with shown():``). Turned on, they show only when stderr is a
terminal (stdout stays the command's result either way); ``AF_PROGRESS=1`` forces them on (a log file,
a test), ``AF_PROGRESS=0`` hides them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

PROGRESS_ENV = "AF_PROGRESS"
_shown = False


@contextlib.contextmanager
def shown() -> Iterator[None]:
    """Bars on for the steps run inside (``af sae`` wraps each command in it)."""
    global _shown
    before, _shown = _shown, True
    try:
        yield
    finally:
        _shown = before


def _disable() -> bool | None:
    """tqdm's ``disable``: True (off), False (on) or None (on only when stderr is a terminal)."""
    forced = os.environ.get(PROGRESS_ENV, "").strip()
    if not _shown or forced == "0":
        return True
    return False if forced == "1" else None


def bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it") -> Any:
    """A tqdm bar over ``iterable`` (or one to ``update`` by hand), or a silent one when bars are off."""
    from tqdm.std import tqdm

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    disable = True if total == 0 else _disable()  # nothing to do: no bar
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, dynamic_ncols=True
    )
