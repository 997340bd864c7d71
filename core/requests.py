"""Harmful-request sources for elicitation (no Inspect import).

``bundled`` is the offline set written for this project (requests only, never answers). Hub sets
are pinned to a revision, fetched into the Hugging Face hub cache (``huggingface_hub``; offline, a
cached snapshot serves) and read with ``datasets``; a local JSONL/JSON/CSV file works too. Every set
loads as a :class:`RequestSet` that carries its revision and a content fingerprint, which the tasks
write into the eval log. Every row problem names the file, the row and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
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
    """A Hugging Face dataset of requests: repository, split, the column that holds the text, and the
    revision (a commit sha) loaded unless the task is given another (``-T requests_revision=...``)."""

    repo: str
    split: str
    text_field: str
    category: str
    revision: str


UNPINNED = "main"
"""Stand-in default for a hub set whose commit sha could not be looked up offline when the pins were
written: the branch, not a commit. The log still records the commit the branch resolved to
(``requests_commit``). Replace it with that set's commit sha from huggingface.co/datasets/<repo>/commits."""

HUB_SOURCES: dict[str, HubRequestSource] = {
    # TODO: pin walledai/AdvBench to its commit sha (not knowable offline when this was written).
    "advbench": HubRequestSource("walledai/AdvBench", "train", "prompt", "advbench", UNPINNED),
    # The revision of LLM-LAT/harmful-dataset pinned (with its parquet file's sha256) by public research
    # code; not checked against the hub from here.
    "llm-lat": HubRequestSource(
        "LLM-LAT/harmful-dataset", "train", "prompt", "llm_lat", "8bfba31bc6d93a5b71808fee5275ef4b6330ed91"
    ),
}
"""The hub request sets, each with its default revision: the one place the pins live."""

HUB_DATA_FILES = ("README.md", "*.parquet", "*.jsonl", "*.json", "*.csv", "*.arrow")
"""What is fetched of a hub set's repository: its data files and the card that maps them to splits."""

_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RequestSet:
    """Requests and where they came from: what an eval log records to trace a run to its data."""

    source: str
    """"bundled", the hub repository (walledai/AdvBench) or the file's path."""
    requests: tuple[HarmfulRequest, ...]
    revision: str | None = None
    """The hub revision asked for (None: not a hub set)."""
    commit: str | None = None
    """The commit sha that revision resolved to in the hub cache."""

    @property
    def sha256(self) -> str:
        return fingerprint(self.requests)

    def metadata(self) -> dict[str, Any]:
        """The keys the tasks add to the eval log's metadata (``inspect view``: the task's info)."""
        return {
            "requests_source": self.source,
            "requests_revision": self.revision,
            "requests_commit": self.commit,
            "requests_sha256": self.sha256,
            "requests_count": len(self.requests),
        }


def fingerprint(requests: tuple[HarmfulRequest, ...] | list[HarmfulRequest]) -> str:
    """sha256 of the requests as loaded (id, category, text; in order) in canonical JSON: the same
    records give the same digest whatever file format, column name or whitespace they came in."""
    records = [{"category": r.category, "id": r.request_id, "text": r.text} for r in requests]
    canonical = json.dumps(records, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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


FIRST_BUNDLED = 120
"""The bundled set's first rows: all it held before it grew to 400 (unchanged and in place since). The
SAE corpus and the tests' tiny tokenizer read only these, so the project SAE (and the demo's printed
figures) and the tiny test models did not move when requests were added."""


def load_bundled_requests() -> list[HarmfulRequest]:
    """The bundled set: 400 requests, 40 in each of 10 harm categories, written for this project."""
    resource = resources.files("af_tasks").joinpath("data", "harmful_requests.jsonl")
    with resources.as_file(resource) as path:
        return load_local_requests(path)


def hub_snapshot(source: HubRequestSource, revision: str) -> Path:
    """The set's repository at ``revision`` in the Hugging Face hub cache (downloaded if reachable;
    offline, ``HF_HUB_OFFLINE=1``, a cached snapshot of that revision serves)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                source.repo, repo_type="dataset", revision=revision, allow_patterns=list(HUB_DATA_FILES)
            )
        )
    except Exception as error:  # the hub client raises many types for "unreachable" / "no such revision"
        raise RequestsUnavailable(
            f"could not load {source.repo} at revision {revision} from the Hugging Face hub or its cache: "
            f"{type(error).__name__}: {error}. Offline, use requests='bundled' or a local file; "
            "another revision: -T requests_revision=<commit sha>."
        ) from error


def load_hub_requests(source: HubRequestSource, revision: str | None = None) -> RequestSet:
    """Fetch a request set at ``revision`` (default: the source's pin) and read it with ``datasets``."""
    from datasets import load_dataset

    revision = revision or source.revision
    snapshot = hub_snapshot(source, revision)
    try:
        dataset = load_dataset(str(snapshot), split=source.split)
    except Exception as error:  # datasets raises many types for "unreadable"
        raise RequestsUnavailable(
            f"could not read split {source.split} of {source.repo} at revision {revision} ({snapshot}): "
            f"{type(error).__name__}: {error}"
        ) from error
    if source.text_field not in dataset.column_names:
        raise DatasetRowError(
            f"{source.repo}: column '{source.text_field}' missing (columns: {dataset.column_names})"
        )
    requests = tuple(
        request_from_row(
            {"request": row[source.text_field], "id": f"{source.category}-{number:04d}"},
            number,
            source.repo,
            source.category,
        )
        for number, row in enumerate(dataset, start=1)
    )
    commit = snapshot.name if _COMMIT.fullmatch(snapshot.name) else None
    return RequestSet(source.repo, requests, revision=revision, commit=commit)


def request_set(source: str = BUNDLED, revision: str | None = None) -> RequestSet:
    """Resolve a request source: "bundled", a hub key (advbench, llm-lat; at ``revision``, default
    its pin) or a file path."""
    if revision is not None and source not in HUB_SOURCES:
        raise SettingError(
            f"task argument requests_revision={revision!r} applies only to the hub request sets "
            f"({', '.join(sorted(HUB_SOURCES))}), not requests={source!r}: drop it"
        )
    if source == BUNDLED:
        return RequestSet(BUNDLED, tuple(load_bundled_requests()))
    if source in HUB_SOURCES:
        return load_hub_requests(HUB_SOURCES[source], revision)
    if Path(source).suffix in (".jsonl", ".json", ".csv"):
        return RequestSet(source, tuple(load_local_requests(source)))
    raise SettingError(
        f"unknown request source {source!r}: use 'bundled', one of {sorted(HUB_SOURCES)}, "
        "or a .jsonl/.json/.csv path"
    )


def load_requests(source: str = BUNDLED, revision: str | None = None) -> list[HarmfulRequest]:
    """The requests of :func:`request_set`, without their provenance."""
    return list(request_set(source, revision).requests)


def _check_unique_ids(requests: list[HarmfulRequest], source: str) -> None:
    seen: dict[str, int] = {}
    for number, request in enumerate(requests, start=1):
        if request.request_id in seen:
            raise DatasetRowError(
                f"{source}: row {number}: field 'id' duplicates row {seen[request.request_id]} "
                f"({request.request_id!r})"
            )
        seen[request.request_id] = number
