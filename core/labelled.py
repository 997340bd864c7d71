"""Labelled reasoning sets for calibration and validation: gold_106 from the hub, or a local file.

gold_106 (51 alignment faking, 55 aligned, human-labelled) has no licence that allows vendoring it:
it is downloaded at run time into the hub cache and never committed. It is the held-out reference:
never select features or tune thresholds on it. No Inspect import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from af_tasks.core.errors import AfError
from af_tasks.core.rows import read_rows, require_rows

GOLD_REPO = "vincentoh/alignment-faking-training"
GOLD_FILE = "gold_106.json"
GOLD_SHA256: str | None = None
"""Pin for gold_106.json. Not yet known to this project (no hub access where it was written): until
it is filled in, the digest of the first download is recorded beside the cached file and every later
load must match it; the digest is printed so a researcher can pin it here."""
LABELS = {"potential_faking": True, "alignment_faking": True, "aligned": False}


class LabelledSetError(AfError, ValueError):
    """A labelled row is malformed; the message names the source, the row (1-based) and the field."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    alignment_faking: bool
    row: int
    voice: str = ""
    """Optional ``voice`` (or ``style``) field of the row: how the text is written."""
    category: str = ""
    """Optional ``category`` field of the row: the request's harm category."""


def parse_labelled(rows: list[tuple[int, object]], source: str) -> list[LabelledText]:
    """Rows as ``af_tasks.core.rows.read_rows`` gives them: (row number, object with text and label)."""
    items = []
    for number, row in rows:
        if not isinstance(row, dict):
            raise LabelledSetError(f"{source}: row {number}: expected an object")
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise LabelledSetError(f"{source}: row {number}: field 'text' missing or empty")
        if label not in LABELS:
            raise LabelledSetError(
                f"{source}: row {number}: field 'label' is {label!r}; known labels: {sorted(LABELS)}"
            )
        voice, category = row.get("voice", row.get("style")), row.get("category")
        items.append(
            LabelledText(
                text=text,
                alignment_faking=LABELS[label],
                row=number,
                voice=voice if isinstance(voice, str) else "",
                category=category if isinstance(category, str) else "",
            )
        )
    return items


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_gold(path: Path, expected: str | None = GOLD_SHA256) -> str:
    """Check the pin (or the digest recorded at first download); returns the file's sha256."""
    digest = sha256_of(path)
    record = path.with_name(path.name + ".sha256")
    pinned = expected or (record.read_text().strip() if record.is_file() else None)
    if pinned is None:
        record.write_text(digest + "\n")
        print(f"{GOLD_FILE}: first download, sha256 {digest} (recorded; pin it in core/labelled.py)")
    elif digest != pinned:
        raise LabelledSetError(f"{path}: sha256 {digest} does not match the pinned {pinned}")
    return digest


def download_gold(cache_dir: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    errors = []
    for repo_type in ("dataset", "model"):
        try:
            return Path(hf_hub_download(GOLD_REPO, GOLD_FILE, repo_type=repo_type, cache_dir=cache_dir))
        except Exception as error:  # the hub client raises many types for "not reachable"
            errors.append(f"{repo_type} repo: {type(error).__name__}: {error}")
    raise LabelledSetError(
        f"could not download {GOLD_FILE} from {GOLD_REPO} ({'; '.join(errors)}). "
        "Pass a local JSON/JSONL path with 'text' and 'label' fields instead."
    )


def load_labelled(source: str = "gold_106") -> list[LabelledText]:
    """``gold_106`` (hub, verified) or a local JSON (``{"samples": [...]}`` or a list) / JSONL file."""
    if source == "gold_106":
        path = download_gold()
        verify_gold(path)
    else:
        path = Path(source)
        if not path.is_file():
            raise LabelledSetError(f"labelled set not found: {path}")
    rows = require_rows(read_rows(path, LabelledSetError), path, "rows with 'text' and 'label' fields")
    return parse_labelled(rows, str(path))
