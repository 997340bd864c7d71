"""The one reader of dataset files (no Inspect import): rows with the numbers errors should name."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from af_tasks.core.errors import InputError, MissingFileError, reading


def read_rows(path: str | Path, error: type[Exception] = ValueError) -> list[tuple[int, Any]]:
    """(row number, row) pairs from a .jsonl (physical line numbers, blank lines skipped), a .json
    (a list, or ``{"samples": [...]}``) or a .csv file (data rows numbered from 1).

    A line that is not JSON raises ``error`` naming the file and the row; a file that is not UTF-8
    text, or not CSV, raises ``InputError`` naming it; a folder or a missing path, ``MissingFileError``.
    """
    path = Path(path)
    if not path.is_file():
        kind = "is a folder, not a file" if path.is_dir() else "no such file"
        raise MissingFileError(f"{path}: {kind}")
    with reading(path, "dataset file", "save it as UTF-8 text"):
        text = path.read_text("utf-8")
    if path.suffix == ".csv":
        with reading(path, "CSV file"):
            return list(enumerate(csv.DictReader(text.splitlines(), strict=True), start=1))
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


def require_rows(rows: list[tuple[int, Any]], path: str | Path, wanted: str) -> list[tuple[int, Any]]:
    """``rows`` unless there are none: an empty file (or a CSV with only a header) is the user's
    mistake, not an empty eval."""
    if not rows:
        raise InputError(f"{path}: no rows; expected {wanted}")
    return rows
