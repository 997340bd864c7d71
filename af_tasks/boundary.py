"""The suite's error boundary inside Inspect: an ``AfError`` leaves a task, scorer or the ``organism/``
provider as one line, not a traceback.

Why: ``inspect eval`` / ``eval-set`` / ``eval-retry`` / ``score`` print an exception that inherits
Inspect's ``PrerequisiteError`` as its message alone (exit status 1), whatever exception group it
travelled in; anything else becomes a 35-270-line traceback with the message at the bottom. And
``inspect score`` turns any ``ValueError`` raised while building a scorer into "the scorer couldn't be
loaded", hiding the real message. So every entry point re-raises the suite's errors as
``InspectUserError`` (a ``PrerequisiteError``, never a ``ValueError``), once, here. ``AF_DEBUG=1``
lets the original through with its traceback. Errors that are not ``AfError`` (bugs) keep theirs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from inspect_ai._util.error import PrerequisiteError

from af_tasks.core.errors import AfError, debug_requested

P = ParamSpec("P")
R = TypeVar("R")


class InspectUserError(PrerequisiteError, AfError):
    """An ``AfError`` as Inspect prints it: ``error: <message>`` on one line. The message is
    escaped for rich (Inspect renders it as markup, so ``[...]`` in a path would vanish)."""

    def __init__(self, error: AfError):
        from rich.markup import escape

        text = " ".join(str(error).split())  # one line, whatever the library wrote
        super().__init__(escape(f"error: {text}"))
        self.args = (text,)
        self.error = error


@functools.cache
def _keeping(kind: type[AfError]) -> type[InspectUserError]:
    """``InspectUserError`` that is also ``kind``, so Python callers' ``except DatasetRowError`` (or
    ``ValueError``...) still catch what a task or the provider raises."""
    return type(kind.__name__, (InspectUserError, kind), {"__module__": kind.__module__})


@contextmanager
def user_errors(keep_type: bool = True) -> Iterator[None]:
    """Inside this block an ``AfError`` becomes an ``InspectUserError`` (with ``AF_DEBUG=1`` it is
    re-raised under a ``RuntimeError`` instead, so Inspect shows the whole traceback). ``keep_type``:
    also an instance of the original class; scorers pass False, because ``inspect score`` reports any
    ``ValueError`` raised while building a scorer as "couldn't be loaded", hiding the message."""
    try:
        yield
    except InspectUserError:
        raise
    except AfError as error:
        if debug_requested():
            raise RuntimeError(f"error: {error}") from error
        raise (_keeping(type(error)) if keep_type else InspectUserError)(error) from error


def boundary(factory: Callable[P, R]) -> Callable[P, R]:
    """Decorates a ``@task`` factory (under the Inspect decorator) so that what it raises while
    building crosses into Inspect as one line. Keeps the signature and docstring, which Inspect reads
    for ``-T`` arguments."""
    return _wrap(factory, keep_type=True)


def scorer_boundary(factory: Callable[P, R]) -> Callable[P, R]:
    """``boundary`` for a ``@scorer`` factory: the error is not also a ``ValueError`` (see
    ``user_errors``)."""
    return _wrap(factory, keep_type=False)


def _wrap(factory: Callable[P, R], keep_type: bool) -> Callable[P, R]:
    @functools.wraps(factory)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with user_errors(keep_type):
            return factory(*args, **kwargs)

    return wrapper
