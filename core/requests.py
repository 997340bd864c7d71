"""Harmful-request sources for elicitation (no Inspect import).

``bundled`` is the offline set written for this project (requests only, never answers). Hub sets
are fetched with ``datasets`` when the hub is reachable; a local JSONL/JSON/CSV file works too.
Every row problem names the file, the row and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from af_tasks.core.errors import AfError, MissingFileError, SettingError
from af_tasks.core.rows import read_rows, require_rows

BUNDLED = "bundled"
TEXT_FIELDS = ("request", "prompt", "goal")
"""Column names accepted as the request text in local files (first one present wins)."""


class DatasetRowError(AfError, ValueError):
    """A dataset row is malformed; the message names the source, row number (1-based) and field."""


class RequestsUnavailable(AfError, RuntimeError):
    """A request source could not be reached or read."""


@dataclass(frozen=True)
class HarmfulRequest:
    request_id: str
    category: str
    text: str


@dataclass(frozen=True)
class HubRequestSource:
    """A Hugging Face dataset of requests: repository, split and the column that holds the text."""

    repo: str
    split: str
    text_field: str
    category: str


HUB_SOURCES: dict[str, HubRequestSource] = {
    "advbench": HubRequestSource("walledai/AdvBench", "train", "prompt", "advbench"),
    "llm-lat": HubRequestSource("LLM-LAT/harmful-dataset", "train", "prompt", "llm_lat"),
}


def request_from_row(row: Any, row_number: int, source: str, default_category: str) -> HarmfulRequest:
    if not isinstance(row, dict):
        raise DatasetRowError(f"{source}: row {row_number}: expected an object, got {type(row).__name__}")
    field = next((name for name in TEXT_FIELDS if name in row), None)
    if field is None:
        raise DatasetRowError(
            f"{source}: row {row_number}: field 'request' missing (accepted names: {', '.join(TEXT_FIELDS)})"
        )
    text = row[field]
    if not isinstance(text, str) or not text.strip():
        raise DatasetRowError(f"{source}: row {row_number}: field '{field}' must be a non-empty string")
    category = row.get("category", default_category)
    if not isinstance(category, str) or not category.strip():
        raise DatasetRowError(f"{source}: row {row_number}: field 'category' must be a non-empty string")
    request_id = str(row.get("id", f"{category}-{row_number:04d}"))
    return HarmfulRequest(request_id=request_id, category=category, text=text.strip())


def load_local_requests(path: str | Path, default_category: str = "uncategorised") -> list[HarmfulRequest]:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise MissingFileError(f"request file {path} {what}; pass -T requests=<a .jsonl/.json/.csv file>")
    rows = require_rows(read_rows(path, DatasetRowError), path, "one request per row with a 'request' field")
    requests = [request_from_row(row, number, str(path), default_category) for number, row in rows]
    _check_unique_ids(requests, str(path))
    return requests


def load_bundled_requests() -> list[HarmfulRequest]:
    resource = resources.files("af_tasks").joinpath("data", "harmful_requests.jsonl")
    with resources.as_file(resource) as path:
        return load_local_requests(path)


def load_hub_requests(source: HubRequestSource) -> list[HarmfulRequest]:
    """Fetch a request set with ``datasets``; ``source.repo`` may also be a local dataset directory."""
    from datasets import load_dataset

    try:
        dataset = load_dataset(source.repo, split=source.split)
    except Exception as error:  # datasets raises many types for "unreachable"
        raise RequestsUnavailable(
            f"could not load {source.repo} (split {source.split}) from the Hugging Face hub: "
            f"{type(error).__name__}: {error}. Offline, use requests='bundled' or a local file."
        ) from error
    if source.text_field not in dataset.column_names:
        raise DatasetRowError(
            f"{source.repo}: column '{source.text_field}' missing (columns: {dataset.column_names})"
        )
    return [
        request_from_row(
            {"request": row[source.text_field], "id": f"{source.category}-{number:04d}"},
            number,
            source.repo,
            source.category,
        )
        for number, row in enumerate(dataset, start=1)
    ]


def load_requests(source: str = BUNDLED) -> list[HarmfulRequest]:
    """Resolve a request source: "bundled", a hub key (advbench, llm-lat) or a file path."""
    if source == BUNDLED:
        return load_bundled_requests()
    if source in HUB_SOURCES:
        return load_hub_requests(HUB_SOURCES[source])
    if Path(source).suffix in (".jsonl", ".json", ".csv"):
        return load_local_requests(source)
    raise SettingError(
        f"unknown request source {source!r}: use 'bundled', one of {sorted(HUB_SOURCES)}, "
        "or a .jsonl/.json/.csv path"
    )


def _check_unique_ids(requests: list[HarmfulRequest], source: str) -> None:
    seen: dict[str, int] = {}
    for number, request in enumerate(requests, start=1):
        if request.request_id in seen:
            raise DatasetRowError(
                f"{source}: row {number}: field 'id' duplicates row {seen[request.request_id]} "
                f"({request.request_id!r})"
            )
        seen[request.request_id] = number
