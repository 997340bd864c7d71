"""The one base of every error the suite reports to its user.

Each error says what is wrong and names the file, folder or argument at fault; the ``af`` command
catches ``AfError`` once and prints it as one line (``error: ...``, exit status 1). Subclasses also
derive from the builtin they refine (``ValueError``, ``RuntimeError``...), so existing handlers keep
working.
"""

from __future__ import annotations


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
