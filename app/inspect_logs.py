"""Reading a user's Inspect log: one place that turns a missing, corrupt, truncated or unfinished log
into one line that names it and says how to recover.

An interrupted ``inspect eval`` leaves a log with status ``started`` (samples in a buffer beside it):
``inspect log recover LOG`` rebuilds it, ``inspect eval-retry LOG`` finishes it. A log that ended in
``error`` or ``cancelled`` holds only part of its samples: figures from it would look complete and
not be, so it is refused too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from af_tasks.core.errors import InputError, MissingFileError, reading

UNFINISHED = ("started", "error", "cancelled")


def read_user_log(path: str | Path, argument: str = "LOG", header_only: bool = False) -> Any:
    """The ``EvalLog`` at ``path``, finished (status ``success``); ``InputError`` otherwise."""
    from inspect_ai.log import read_eval_log

    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{argument} {path} does not exist; pass an Inspect .eval or .json log")
    if path.is_dir():
        raise InputError(
            f"{argument} {path} is a folder, not a log; pass one of its .eval files "
            f"(inspect log list --log-dir {path})"
        )
    with reading(
        path,
        "Inspect log",
        f"it is corrupt or truncated (a crashed eval: inspect log recover {path}; else rerun the eval)",
    ):
        log = read_eval_log(str(path), header_only=header_only)
    if log.status in UNFINISHED:
        what = "unfinished (interrupted or still running)" if log.status == "started" else "incomplete"
        raise InputError(
            f"{argument} {path} is {what}: status {log.status}; finish it with "
            f"`inspect eval-retry {path}` (after a crash, `inspect log recover {path}` first)"
        )
    return log


def sample_field(log_path: str | Path, sample: Any, key: str, task_hint: str) -> Any:
    """``sample.metadata[key]``, or one line saying the log is not from the task it should be."""
    metadata = sample.metadata or {}
    if key not in metadata:
        raise InputError(
            f"{log_path}: sample {sample.id} has no {key!r} metadata; expected a log of {task_hint}"
        )
    return metadata[key]
