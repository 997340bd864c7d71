"""Feature references (``L40_F15484`` or a bare index) and which SAE each is read from: the pure part
of named features, shared by presets, the CLI, the scorers and ``af_tasks.sae.named``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from af_tasks.core.errors import SettingError

_NAMED = re.compile(r"^L(\d+)_F(\d+)$")


@dataclass(frozen=True)
class FeatureRef:
    """``index`` of the SAE reading at ``layer`` (None: the default SAE's layer)."""

    index: int
    layer: int | None = None

    @property
    def name(self) -> str:
        return f"L{self.layer}_F{self.index}" if self.layer is not None else str(self.index)


def parse_features(spec: str | Sequence[str | int] | None) -> list[FeatureRef]:
    """``"L40_F15484,L40_F8921"`` or ``"123,456"`` (or a list of either) → feature references."""
    if spec is None or spec == "":
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    refs = []
    for item in items:
        text = str(item).strip()
        if match := _NAMED.match(text):
            refs.append(FeatureRef(int(match.group(2)), int(match.group(1))))
        elif text.isdigit():
            refs.append(FeatureRef(int(text)))
        else:
            raise SettingError(f"feature {text!r}: expected L<layer>_F<index> (e.g. L40_F15484) or an index")
    return refs


@dataclass
class FeatureReading:
    """One SAE at one hook and the features read from it."""

    hook: str
    sae_source: str
    features: list[FeatureRef]
    sae: Any = None
