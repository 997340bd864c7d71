"""Checks of the numbers and switches a task is given (``-T name=value``), before any sample is built.

Why: ``-T`` values arrive as YAML scalars, unchecked against the annotations, so ``max_turns=0`` or
``judge_threshold=4`` would otherwise surface mid-eval (or never). Each check names the argument and
the range it must lie in. No Inspect import.
"""

from __future__ import annotations

import math
from typing import Any

from af_tasks.core.errors import SettingError

FLAGS = {"-T": "task", "-M": "model", "-S": "scorer"}
"""Inspect's flag for each kind of argument, as the message names it."""


def _fail(name: str, value: Any, wanted: str, flag: str) -> SettingError:
    return SettingError(f"{FLAGS[flag]} argument {name}={value!r}: must be {wanted} ({flag} {name}=...)")


def whole(name: str, value: Any, low: int, high: int | None = None, flag: str = "-T") -> int:
    """``value`` as an int in [low, high]; booleans and non-integral numbers are refused."""
    wanted = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(name, value, wanted, flag)
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        raise _fail(name, value, wanted, flag)
    return number


def fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0, flag: str = "-T") -> float:
    """``value`` as a finite float in [low, high]."""
    wanted = f"a number in [{low:g}, {high:g}]"
    if isinstance(value, bool):
        raise _fail(name, value, wanted, flag)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(name, value, wanted, flag) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(name, value, wanted, flag)
    return number


def switch(name: str, value: Any, flag: str = "-T") -> bool:
    """``value`` as a bool (``true`` / ``false``; YAML already parsed most)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(name, value, "true or false", flag)


def protocol_limits(max_turns: Any, max_tokens: Any) -> tuple[int, int]:
    """The scratchpad protocol's limits, checked: at least one turn of at least one token."""
    return whole("max_turns", max_turns, 1), whole("max_tokens", max_tokens, 1)


def judge_settings(judge_votes: Any, judge_threshold: Any) -> tuple[int, float]:
    """The AF judge's vote count (>= 1) and yes-fraction threshold (in [0, 1])."""
    return whole("judge_votes", judge_votes, 1), fraction("judge_threshold", judge_threshold)


def text(name: str, value: Any, flag: str = "-T") -> str | None:
    """``value`` as a non-empty string, or None when not given (a revision, a name)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _fail(name, value, "a non-empty string (quote one that YAML reads as a number)", flag)
