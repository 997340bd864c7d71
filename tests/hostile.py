"""What every hostile-input case asserts: exit status, one line naming the culprit, no traceback, and a
file system left as it was.

Entry points run as their users run them (``af ...``, ``inspect eval ...``, ``inspect score ...``) in a
subprocess, so the error boundary under test is the real one, not a function called from a test.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The non-blank lines of stderr that are not Inspect's or a library's progress chatter."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_entry_point(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    """Run ``command`` (its first word a console script of this environment) with the suite's
    offline environment; returns the Outcome."""
    program = str(BIN / command[0])
    result = subprocess.run(
        [program, *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "AF_DEBUG": "", **(env or {})},
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (relative path → sha256, or 'dir'): equal before and after
    means nothing was written, removed or left behind."""
    if not root.exists():
        return {}
    digest = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        digest[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def assert_one_line_error(outcome: Outcome, *culprits: str) -> str:
    """Non-zero exit, no traceback, and exactly one error line that names every culprit given."""
    assert outcome.returncode != 0, f"exit status 0; stderr:\n{outcome.stderr}"
    text = outcome.stdout + outcome.stderr
    assert "Traceback" not in text, text
    assert "ExceptionGroup" not in text and "Exception Group" not in text, text
    errors = [line for line in outcome.error_lines if "error" in line.lower()]
    assert len(errors) == 1, f"expected one error line, got {len(errors)}:\n{outcome.stderr}"
    for culprit in culprits:
        assert culprit in errors[0], f"{culprit!r} not named in: {errors[0]}"
    return errors[0]


INSPECT_TERMINAL = {"COLUMNS": "1000"}
"""Inspect renders a ``PrerequisiteError`` with rich, which wraps at the terminal's width (80 when
output is captured): a wide terminal keeps the one line the suite writes on one line."""


def run_inspect(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    """``inspect ...`` (``command[0] == "inspect"``) as run_entry_point runs it, in a wide terminal."""
    return run_entry_point(command, cwd, env={**INSPECT_TERMINAL, **(env or {})}, timeout=timeout)


def assert_one_line_inspect_error(outcome: Outcome, *culprits: str) -> str:
    """As assert_one_line_error, for Inspect's entry points: Inspect prints a ``PrerequisiteError`` on
    stdout (between blank lines), its progress chatter on stderr, so the error line is looked for in
    both."""
    assert outcome.returncode != 0, f"exit status 0; stdout:\n{outcome.stdout}\nstderr:\n{outcome.stderr}"
    text = outcome.stdout + outcome.stderr
    assert "Traceback" not in text, text
    assert "ExceptionGroup" not in text and "Exception Group" not in text, text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1, f"expected one error line, got {len(errors)}:\n{text}"
    for culprit in culprits:
        assert culprit in errors[0], f"{culprit!r} not named in: {errors[0]}"
    return errors[0]
