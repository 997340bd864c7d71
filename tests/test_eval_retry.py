"""``inspect eval-retry`` on the suite's own runs: where the retried log goes, and an eval killed with
SIGKILL mid-run resumed on both local providers (``organism/`` and ``hf/``) with no sample lost or
duplicated and the finished ones kept, not redone.

Where the log goes is Inspect's choice: ``eval-retry`` writes into ``--log-dir``, else ``$INSPECT_LOG_DIR``,
else ``./logs`` of the shell — not beside the log it retries. The README steers users to
``inspect eval-retry LOG --log-dir "$(dirname LOG)"``; both behaviours are pinned here so the README
stays true if Inspect changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hostile import BIN, INSPECT_TERMINAL
from inspect_ai.log import read_eval_log, read_eval_log_sample_summaries

pytestmark = pytest.mark.cli  # every test runs `inspect eval` / `eval-retry` in a subprocess

LIMIT = 6


def inspect_run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **INSPECT_TERMINAL, "AF_DEBUG": ""}
    return subprocess.run(
        [str(BIN / "inspect"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def logs_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eval")) if folder.is_dir() else []


@pytest.fixture(scope="module")
def cancelled_log(tiny_llama_dir, tmp_path_factory) -> Path:
    """A free_tier log of the tiny model through organism/ (offline, fast). It finished: a log cut
    short by a kill is retried in test_killed_eval_resumes_without_loss_or_duplicates."""
    from inspect_ai import eval as inspect_eval

    root = tmp_path_factory.mktemp("retry-origin")
    [log] = inspect_eval(
        "af_tasks/free_tier",
        model=f"organism/{tiny_llama_dir}",
        task_args={"prompt_variant": "compact", "max_tokens": 4, "max_turns": 1},
        limit=LIMIT,
        log_dir=str(root / "runs" / "exp1"),
        display="none",
    )
    assert log.status == "success", log.error
    return Path(log.location)


def test_retry_writes_beside_the_log_when_told(cancelled_log, tmp_path):
    """With ``--log-dir`` set to the log's folder the retried log lands beside the original, which is
    left as it was; nothing is written where the command ran."""
    original = cancelled_log.read_bytes()
    folder = cancelled_log.parent
    before = set(logs_in(folder))
    done = inspect_run(["eval-retry", str(cancelled_log), "--log-dir", str(folder)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [retried] = set(logs_in(folder)) - before
    log = read_eval_log(str(retried))
    assert log.status == "success"
    assert log.eval.task_id == read_eval_log(str(cancelled_log), header_only=True).eval.task_id
    assert len({(s.id, s.epoch) for s in log.samples}) == len(log.samples) == LIMIT
    assert cancelled_log.read_bytes() == original
    assert not (tmp_path / "logs").exists()


def test_retry_without_log_dir_writes_to_the_shells_logs(cancelled_log, tmp_path):
    """Inspect's default (why the README says ``--log-dir``): ``./logs`` of the shell, not the log's
    folder."""
    folder = cancelled_log.parent
    before = set(logs_in(folder))
    env_dir = {key: value for key, value in os.environ.items() if key != "INSPECT_LOG_DIR"}
    done = subprocess.run(
        [str(BIN / "inspect"), "eval-retry", str(cancelled_log)],
        cwd=tmp_path,
        env={**env_dir, **INSPECT_TERMINAL},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(logs_in(folder)) == before
    assert len(logs_in(tmp_path / "logs")) == 1


def kill_after_samples(command: list[str], log_dir: Path, cwd: Path, at_least: int) -> Path:
    """Start ``command``, SIGKILL it once its log holds ``at_least`` finished samples; the log."""
    env = {**os.environ, **INSPECT_TERMINAL, "AF_DEBUG": ""}
    process = subprocess.Popen(
        [str(BIN / "inspect"), *command], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, (
                f"the eval ended before it was killed:\n{process.stderr.read()[-3000:]}"
            )
            for log in logs_in(log_dir):
                try:
                    if len(read_eval_log_sample_summaries(str(log))) >= at_least:
                        process.send_signal(signal.SIGKILL)
                        process.wait(30)
                        return log
                except Exception:  # noqa: BLE001 - a log being written may not read yet
                    pass
            time.sleep(0.2)
        raise AssertionError("no samples were written in time")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


PROVIDERS = {
    "organism": ["-M", "do_sample=false"],
    "hf": ["-M", "do_sample=false"],
}


@pytest.mark.slow
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_killed_eval_resumes_without_loss_or_duplicates(provider, embedded_model_dir, tmp_path):
    logs = tmp_path / "logs"
    model = f"{provider}/{embedded_model_dir.resolve()}"
    command = ["eval", "af_tasks/free_tier", "--model", model, *PROVIDERS[provider], "--limit", str(LIMIT)]
    command += ["-T", "prompt_variant=compact", "-T", "max_turns=1", "-T", "max_tokens=12"]
    command += ["--max-connections", "1", "--log-buffer", "1", "--log-dir", str(logs), "--display", "none"]
    killed = kill_after_samples(command, logs, tmp_path, at_least=2)

    header = read_eval_log(str(killed), header_only=True)
    assert header.status == "started", "a killed eval leaves a log marked as still running"
    finished = {s.id: s.uuid for s in read_eval_log(str(killed)).samples}
    assert 2 <= len(finished) < LIMIT

    done = inspect_run(["eval-retry", str(killed), "--log-dir", str(logs), "--log-buffer", "1"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [resumed] = [log for log in logs_in(logs) if log != killed]
    log = read_eval_log(str(resumed))
    assert log.status == "success", log.error
    ids = [sample.id for sample in log.samples]
    assert len(ids) == len(set(ids)) == LIMIT, "no sample lost, none duplicated"
    kept = {s.id: s.uuid for s in log.samples if s.id in finished}
    assert kept == finished, "samples finished before the kill are kept, not run again"
