"""`af sae` shows progress bars on stderr for its long steps; stdout keeps the result; Inspect scorers
(the same extraction) never show one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sae_helpers import save_tiny_topk_sae

from af_tasks.sae.activations import iter_token_activations
from af_tasks.sae.generalization import out_of_fold
from af_tasks.sae.progress import PROGRESS_ENV, shown
from af_tasks.sae.reader import load_reader

HOOK = "blocks.1.hook_resid_post"
TEXTS = [f"<SCRATCHPAD_REASONING>Thought number {i}.</SCRATCHPAD_REASONING>" for i in range(6)]


@pytest.fixture(scope="module")
def reader(tiny_llama_dir):
    return load_reader(str(tiny_llama_dir), device="cpu")


def read_all(reader) -> int:
    return len(list(iter_token_activations(reader, TEXTS, [HOOK], batch_size=2, progress="reading test")))


@pytest.mark.model
def test_reading_activations_shows_a_bar_when_the_command_turns_bars_on(reader, capsys, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")  # pytest's stderr is no terminal: force the bar
    with shown():
        assert read_all(reader) == 3
    captured = capsys.readouterr()
    assert "reading test" in captured.err and "3/3" in captured.err
    assert captured.out == ""


@pytest.mark.model
def test_no_bar_outside_a_command_or_when_hidden_or_not_a_terminal(reader, capsys, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    read_all(reader)  # what an Inspect scorer runs: Inspect's display owns the terminal
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(PROGRESS_ENV, "0")
    with shown():
        read_all(reader)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv(PROGRESS_ENV)
    with shown():  # stderr is captured here, not a terminal: tqdm stays quiet
        read_all(reader)
    assert capsys.readouterr().err == ""


def test_fitting_out_of_fold_probes_shows_a_bar(capsys, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "1")
    labels = np.array([True, False] * 6)
    x = labels[:, None].astype(float) + np.arange(12)[:, None] * 0.01
    folds = [f"style{i % 3}" for i in range(12)]

    def fit(train_x, train_y, groups):
        return lambda test_x: test_x[:, 0]

    with shown():
        scores, members = out_of_fold(x, labels, folds, fit, folds, progress="leave-one-style-out test")
    assert len(members) == 3 and not np.isnan(scores).any()
    assert "leave-one-style-out test" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.train
@pytest.mark.cli
def test_af_sae_probe_bars_go_to_stderr_and_stdout_stays_the_report(tiny_llama_dir, tmp_path):
    sae = save_tiny_topk_sae(tmp_path / "sae", HOOK, d_sae=256, k=8)
    af = Path(sys.executable).with_name("af")
    command = [
        str(af), "sae", "probe", "--model", str(tiny_llama_dir), "--sae", str(sae), "--hook", HOOK,
        "--out", str(tmp_path / "report"), "--max-tokens", "128",
        "--no-generalization", "--no-independent", "--no-extra-training",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=os.environ | {PROGRESS_ENV: "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for step in ("reading train", "reading held_out", "fitting probes"):
        assert f"{step}: 100%" in done.stderr, step
    lines = done.stdout.splitlines()
    assert lines[0].startswith("AUROC of each offline detector") and lines[-1].startswith("report: ")
    assert "\r" not in done.stdout and "%|" not in done.stdout
