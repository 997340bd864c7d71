"""The one base of every error the suite reports to its user.

Each error says what is wrong and names the file, folder or argument at fault; the ``af`` command
catches ``AfError`` once and prints it as one line (``error: ...``, exit status 1). Subclasses also
derive from the builtin they refine (``ValueError``, ``RuntimeError``...), so existing handlers keep
working.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AfError(Exception):
    """A problem the user can act on; the message is complete on its own (no traceback needed)."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise print their message quoted
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class SettingError(AfError, ValueError):
    """An argument or setting the suite cannot use (out of range, unknown choice)."""


class UnknownNameError(AfError, KeyError, ValueError):
    """A name that is not in a registry the suite keeps (a preset, a rung, an accelerate config...).
    Both a KeyError (a lookup failed) and a ValueError (an argument's value is wrong)."""


class MissingFileError(AfError, FileNotFoundError):
    """A file or folder the command needs does not exist; the message names it."""


class OutputExistsError(AfError, FileExistsError):
    """An output folder already holds something this command did not write; nothing was changed."""


class InputError(AfError, ValueError):
    """A file or folder the command was given exists but cannot be read as what it should be
    (truncated, corrupt, the wrong format, missing a field); the message names it."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first non-blank line of an exception's message, cut to ``limit`` characters: library errors
    can run to pages, and the one line the user sees must stay one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextmanager
def reading(path: str | Path, what: str, hint: str = "") -> Iterator[None]:
    """Reads of a user's file inside this block that fail with any library error (torch, safetensors,
    transformers, peft, sae-lens, json, zip...) become one ``InputError`` naming ``what`` and ``path``;
    the suite's own errors pass through unchanged. ``hint`` says what to do about it."""
    try:
        yield
    except AfError:
        raise
    except FileNotFoundError as error:
        raise MissingFileError(f"{what} {path} does not exist{_sentence(hint)}") from error
    except Exception as error:  # noqa: BLE001 - every library failure on this path is the file's problem
        raise InputError(
            f"could not read {what} {path}: {type(error).__name__}: {first_line(error)}{_sentence(hint)}"
        ) from error


def debug_requested() -> bool:
    """``AF_DEBUG=1`` (or ``--debug``, which sets it) shows the traceback behind a one-line error."""
    return os.environ.get("AF_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _sentence(hint: str) -> str:
    return f"; {hint}" if hint else ""
