"""Output folders a command owns: it writes only into a folder it created (or that an earlier run of
the same command created), and what it leaves behind is whole.

- ``claim_output_dir``: a marker file (``.af-output.json``, its ``kind``) makes a folder this command's;
  a non-empty folder without it — a model, another tool's output, the user's files — is refused with
  ``OutputExistsError`` before anything is written, and so is one of another kind.
- ``owned_output``: the same, and a folder created by this run is removed again if the run fails before
  it holds anything worth resuming from.
- ``atomic_dir`` / ``write_text_atomic`` / ``write_file_atomic``: a result is built in a hidden sibling
  and renamed into place, so a kill leaves the old result or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from af_tasks.core.errors import OutputExistsError

MARKER = ".af-output.json"


@dataclass(frozen=True)
class Claim:
    path: Path
    kind: str
    fresh: bool
    """True when the folder was absent or empty: nothing in it predates this run."""
    created: Path | None
    """The outermost folder this run created (``path`` or an ancestor), None if ``path`` existed."""


def marker_kind(path: Path) -> str | None:
    """The kind of output ``path`` holds by its marker, or None without a readable one."""
    try:
        return str(json.loads((path / MARKER).read_text())["kind"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _visible(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.name != MARKER]


def check_output_dir(path: Path, kind: str, argument: str, legacy: Iterable[str] = ()) -> bool:
    """Whether ``path`` may be written as output of ``kind``, without writing anything; raises
    ``OutputExistsError`` naming ``path`` and ``argument`` otherwise. True when it already holds
    output of ``kind`` (to resume or reuse). ``legacy``: files (relative paths) that show a folder was
    written by this command before markers existed."""
    path = Path(path)
    if not path.exists():
        return False
    if not path.is_dir():
        raise OutputExistsError(f"{argument} {path} is a file, not a folder; choose another {argument}")
    found = marker_kind(path)
    if found == kind:
        return True
    if found is not None:
        raise OutputExistsError(
            f"{argument} {path} holds {found} output, not {kind}; choose another {argument}"
        )
    if not _visible(path):
        return False
    if any((path / name).is_file() for name in legacy):
        return True
    raise OutputExistsError(
        f"{argument} {path} is not empty and was not written by this command (no {MARKER}); "
        f"choose another {argument} or an empty folder — nothing was changed"
    )


def claim_output_dir(path: Path, kind: str, argument: str = "--output", legacy: Iterable[str] = ()) -> Claim:
    """Make ``path`` this command's output folder of ``kind`` (creating it and its marker), or refuse
    (``OutputExistsError``, nothing written); see ``check_output_dir``."""
    path = Path(path)
    ours = check_output_dir(path, kind, argument, legacy)
    fresh = not ours and (not path.exists() or not _visible(path))
    created = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    path.mkdir(parents=True, exist_ok=True)
    if marker_kind(path) != kind:
        write_text_atomic(path / MARKER, json.dumps({"kind": kind}) + "\n")
    return Claim(path, kind, fresh, created)


def release(claim: Claim) -> None:
    """Undo a fresh claim: the folders this run created are removed, a folder that was there empty
    is emptied again."""
    if not claim.fresh:
        return
    if claim.created is not None:
        shutil.rmtree(claim.created, ignore_errors=True)
        return
    for child in claim.path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextmanager
def owned_output(
    path: Path,
    kind: str,
    argument: str = "--output",
    legacy: Iterable[str] = (),
    keep: Callable[[Path], bool] = lambda path: False,
) -> Iterator[Claim]:
    """``claim_output_dir``, and on failure (an error or an interrupt) a fresh claim is released
    (``release``) unless ``keep(path)`` says the folder holds something to resume from."""
    claim = claim_output_dir(path, kind, argument, legacy)
    try:
        yield claim
    except BaseException:
        if not keep(claim.path):
            release(claim)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """``path`` holds the old text or the new one, never part of either (temp sibling + rename)."""
    write_file_atomic(path, lambda temp: temp.write_text(text))


def write_file_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temp)`` fills a hidden sibling of ``path`` (same suffix, so writers that pick a format
    by extension — matplotlib's ``savefig`` — pick the right one), which then replaces ``path``
    whole; on failure the sibling is removed and ``path`` is as it was."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temp))
        os.chmod(temp, 0o644)  # mkstemp makes it private; the result is for everyone
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yields a hidden sibling folder to build ``target`` in; on success it replaces ``target`` (an
    earlier result is removed only once the new one is complete), on failure it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; the result is for everyone
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def published_dir(target: Path, kind: str, argument: str, legacy: Iterable[str] = ()) -> Iterator[Path]:
    """A result folder written whole: ``target`` is checked first (``check_output_dir``: a foreign
    folder is refused before any work), the result is built in a hidden sibling (yielded) that carries
    the marker, and replaces ``target`` only once complete (``atomic_dir``)."""
    target = Path(target)
    check_output_dir(target, kind, argument, legacy)
    created = next((p for p in reversed([target, *target.parents]) if not p.exists()), None)
    try:
        with atomic_dir(target) as staging:
            write_text_atomic(staging / MARKER, json.dumps({"kind": kind}) + "\n")
            yield staging
    except BaseException:
        if created is not None and created != target:  # ancestors made for the staging folder
            shutil.rmtree(created, ignore_errors=True)
        raise
