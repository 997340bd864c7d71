"""The one reader of dataset files (no Inspect import): rows with the numbers errors should name."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from af_tasks.core.errors import MissingFileError


def read_rows(path: str | Path, error: type[Exception] = ValueError) -> list[tuple[int, Any]]:
    """(row number, row) pairs from a .jsonl (physical line numbers, blank lines skipped), a .json
    (a list, or ``{"samples": [...]}``) or a .csv file (data rows numbered from 1).

    A line that is not JSON raises ``error`` naming the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    text = path.read_text("utf-8")
    if path.suffix == ".csv":
        return list(enumerate(csv.DictReader(text.splitlines()), start=1))
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as problem:
            raise error(f"{path}: not valid JSON ({problem.msg}, line {problem.lineno})") from problem
        rows = data["samples"] if isinstance(data, dict) and "samples" in data else data
        if not isinstance(rows, list):
            raise error(f"{path}: expected a list of rows or {{'samples': [...]}}")
        return list(enumerate(rows, start=1))
    numbered = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            numbered.append((number, json.loads(line)))
        except json.JSONDecodeError as problem:
            raise error(f"{path}: row {number}: not valid JSON ({problem.msg})") from problem
    return numbered
