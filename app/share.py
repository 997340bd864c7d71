"""`af organism export`: an organism folder as an upload-ready folder, and its upload to the hub.

The export holds only what a user of the organism needs — the adapter's safetensors weights, its
``adapter_config.json`` with the base named by its hub id, the tokenizer files, ``organism.json`` and a
model card — and never checkpoints, optimizer or RNG state, pickles, or a local absolute path (checked
on the finished folder before it is published). ``push`` uploads it with ``huggingface_hub.HfApi``;
the token comes from ``HF_TOKEN`` only and never appears in what is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from af_tasks.core.errors import AfError, InputError, MissingFileError, SettingError, first_line
from af_tasks.core.hashing import sha256_file
from af_tasks.core.model_card import EVAL_SUMMARY, base_hub_id, model_argument, model_card
from af_tasks.core.organism import ADAPTER_CONFIG, ADAPTER_WEIGHTS, ORGANISM_FILE, read_json, read_record
from af_tasks.core.outputs import MARKER, published_dir, write_text_atomic

EXPORT_KIND = "organism-export"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)
"""Tokenizer files copied when present (plain text, JSON or sentencepiece protobuf: none a pickle)."""
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKEN_ENV = "HF_TOKEN"


class PushError(AfError, RuntimeError):
    """The upload to the hub failed; the message says why and that the exported folder is whole."""


def organism_card(directory: Path) -> dict[str, Any]:
    """The folder's training record; a folder that is not an organism is refused naming it."""
    if not directory.is_dir():
        raise MissingFileError(f"DIR {directory} does not exist; pass an organism folder written by af train")
    missing = [
        name for name in (ORGANISM_FILE, ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (directory / name).is_file()
    ]
    if missing:
        raise InputError(
            f"DIR {directory} is not an organism folder (no {', '.join(missing)}); "
            "pass a folder written by af train"
        )
    return read_record(directory / ORGANISM_FILE)


def _local(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("/", "~"))


def shared_record(card: dict[str, Any], base: str | None) -> dict[str, Any]:
    """The record as shared: the base by its hub id, data files by name, no local folders."""
    shared = json.loads(json.dumps(card))
    shared.pop("merged_dir", None)
    for key in ("base_model", "base_model_requested"):
        shared[key] = base
    shared["base_model_hub_id"] = base
    hyper = shared["hyperparameters"]
    hyper["base_model"] = base
    if hyper.get("data"):
        hyper["data"] = Path(hyper["data"]).name
    if card["hyperparameters"].get("data") and isinstance(shared.get("data_source"), str):
        shared["data_source"] = Path(shared["data_source"]).name

    def scrub(value: Any) -> Any:  # any other local absolute path: its last part only
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return Path(value).name if _local(value) else value

    return scrub(shared)


def is_pickle(path: Path) -> bool:
    """A Python pickle, bare (protocol 2+ opcode) or in a torch zip archive (``data.pkl``)."""
    with path.open("rb") as handle:
        head = handle.read(2)
    if head[:1] == b"\x80" and head[1:2] in {bytes([n]) for n in range(2, 6)}:
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def check_shareable(folder: Path, local_paths: set[str]) -> None:
    """The finished export holds no pickle, nothing under a pickle's name, no checkpoint folder and no
    local path (``local_paths``: the folders it came from); raises ``InputError`` naming the file."""
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            raise InputError(f"export {folder}: unexpected folder {path.name}")
        if path.suffix in PICKLE_SUFFIXES or is_pickle(path):
            raise InputError(f"export {folder}: {path.name} is a pickle; not shared")
        if path.suffix in (".json", ".md", ".jinja", ".txt"):
            text = path.read_text("utf-8", errors="replace")
            for local in sorted(local_paths, key=len, reverse=True):
                if local in text:
                    raise InputError(f"export {folder}: {path.name} names the local path {local}")


def export_organism(
    directory: Path, out: Path, base_model: str | None = None, repo: str | None = None
) -> Path:
    """Write ``directory``'s upload-ready copy to ``out`` (this command's folder: a foreign one is
    refused before anything is read); returns ``out``. ``base_model``: the base's hub id, when the
    record knows none (a local base) or to override it; ``repo``: the hub repo the card says to
    download from."""
    from af_tasks.core.model_card import hub_id
    from af_tasks.core.outputs import check_output_dir

    check_output_dir(out, EXPORT_KIND, "OUT")  # before anything is read: a refusal costs nothing
    card = organism_card(directory)
    recorded = card.get("base_model")  # records written before hub ids were: the base's own folder says
    base = hub_id(base_model) if base_model else base_hub_id(card) or (recorded and hub_id(str(recorded)))
    if base_model and base is None:
        raise SettingError(f"--base-model {base_model}: not a hub id (a local path); pass the base's hub id")
    if base is None:
        raise SettingError(
            f"{directory / ORGANISM_FILE}: the base model is a local folder with no known hub id; "
            "pass --base-model HUB_ID (the hub id it was downloaded from)"
        )
    summary_file = directory / EVAL_SUMMARY
    summary = read_json(summary_file) if summary_file.is_file() else None
    adapter = read_json(directory / ADAPTER_CONFIG)
    adapter["base_model_name_or_path"] = base
    record = shared_record(card, base)
    if not record.get("adapter_sha256"):  # a record written before it was kept: the shared file's
        record["adapter_sha256"] = sha256_file(directory / ADAPTER_WEIGHTS)
    base_path = card.get("base_model")
    local_paths = {str(directory.resolve()), str(Path.cwd()), str(Path.home())}
    if _local(base_path):
        local_paths.add(str(Path(base_path).expanduser()))
    local_paths = {path for path in local_paths if len(path) > 1}  # "/" is in every text
    with published_dir(out, EXPORT_KIND, "OUT") as staging:
        shutil.copyfile(directory / ADAPTER_WEIGHTS, staging / ADAPTER_WEIGHTS)
        for name in TOKENIZER_FILES:
            if (directory / name).is_file():
                shutil.copyfile(directory / name, staging / name)
        write_text_atomic(staging / ADAPTER_CONFIG, json.dumps(adapter, indent=2) + "\n")
        write_text_atomic(staging / ORGANISM_FILE, json.dumps(record, indent=2) + "\n")
        if summary is not None:
            write_text_atomic(staging / EVAL_SUMMARY, json.dumps(summary, indent=2) + "\n")
        folder = f"organisms/{out.name}"
        readme = model_card(record, model_argument(folder), summary, name=out.name, download=repo or "REPO")
        write_text_atomic(staging / "README.md", readme)
        marker = staging / MARKER
        marker_text = marker.read_text()
        marker.unlink()  # checked without it: the marker is the suite's, not the share's
        check_shareable(staging, local_paths)
        marker.write_text(marker_text)
        for path in staging.iterdir():
            path.chmod(0o644)  # temp files are private; a shared folder is readable
    return out


def hub_token() -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise SettingError(
            f"--push-to-hub needs a Hugging Face token in the {TOKEN_ENV} environment variable"
        )
    return token


def push(folder: Path, repo: str, token: str, private: bool = False, revision: str | None = None) -> str:
    """Upload ``folder`` (an export) to the model repo ``repo`` (created if absent; ``revision`` a
    branch, created if absent); returns the commit URL. Failures are one ``PushError`` line without
    the token."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id=repo, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message="Upload alignment-faking model organism (af organism export)",
            ignore_patterns=[MARKER],
        )
    except Exception as error:  # noqa: BLE001 - network, auth, offline mode: all one line for the user
        reason = first_line(error).replace(token, "***")
        raise PushError(
            f"could not upload {folder} to the hub repo {repo}: {type(error).__name__}: {reason}; "
            f"the export in {folder} is complete: push it again once the hub is reachable"
        ) from None
    return str(getattr(commit, "commit_url", commit))
