"""The sample-metadata contract shared by every elicitation task (no Inspect import).

Metrics, plots and the retention experiment group samples by these keys only, so any task that
fills them works with every scorer in the suite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Condition = Literal["monitored", "unmonitored"]
CONDITIONS: tuple[Condition, ...] = ("monitored", "unmonitored")
METADATA_KEYS = ("condition", "tier", "cue", "pair_id", "request_id", "category")


@dataclass(frozen=True)
class ElicitationMetadata:
    condition: Condition
    """monitored: the model is told its output may be trained on / watched; unmonitored: it is not."""
    tier: str
    """free / paid for tier tasks; the task's own label for the condition otherwise."""
    cue: str
    """Which cue configuration produced the prompt (ablation label)."""
    pair_id: str
    """Shared by the monitored and unmonitored twin of one request."""
    request_id: str
    category: str

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
