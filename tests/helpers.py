"""Test helpers: local artifacts that stand in for hub downloads (no network in CI)."""

from __future__ import annotations

import json
from pathlib import Path

from af.tiny import build_tiny_llama, train_tiny_tokenizer  # noqa: F401  (re-exported for tests)

EMBEDDED_MODEL = Path("models/smollm2-135m-instruct")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
