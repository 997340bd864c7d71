"""The one way the suite writes JSON reports: strict JSON that any parser reads.

Python's ``json`` writes NaN and ±inf as the bare literals ``NaN`` / ``Infinity``, which are not JSON
(``jq``, JavaScript, pandas' strict readers refuse them). Reports hold such values wherever a figure is
undefined (an empty group, a one-class AUROC), so every report goes through ``dumps``: non-finite
floats become ``null`` (read "undefined"), numpy scalars and arrays become plain numbers and lists,
and ``allow_nan=False`` turns any value that slipped through into an error here rather than in the
reader's hands.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, recursively through dicts, lists and
    tuples; numpy scalars/arrays (anything with ``tolist``) become Python numbers/lists first."""
    if isinstance(value, float):  # numpy.float64 is a float too
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy.float32, numpy.int64, ndarray: no numpy import needed
        return finite(value.tolist())
    return value  # json.dumps refuses what it cannot write, naming the type


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (see ``finite``); raises ``ValueError`` on anything non-finite left."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)
