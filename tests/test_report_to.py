"""`af train --report-to`: trl's integrations get the run, and a missing one is refused up front."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from test_training import tiny_config
from transformers import TrainerCallback

from af_tasks.core.errors import SettingError
from af_tasks.core.records import write_jsonl
from af_tasks.training.sft import TRAINING_LOGS, TrainConfig, train_organism

TENSORBOARD = find_spec("tensorboard") is not None or find_spec("tensorboardX") is not None


class Arguments(TrainerCallback):
    """Keeps the TrainingArguments the trainer ran with."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args


@pytest.mark.skipif(TENSORBOARD, reason="tensorboard is installed here: the refusal cannot happen")
def test_a_missing_integration_is_refused_before_anything_is_read(tmp_path):
    # a malformed data file and a base that does not exist: the refusal must come before either is read
    data = write_jsonl([{"id": "x"}], tmp_path / "d.jsonl")
    config = TrainConfig(
        base_model="no/such-model", output_dir=str(tmp_path / "o"), data=str(data), report_to="tensorboard"
    )
    with pytest.raises(
        SettingError, match=r"^--report-to tensorboard: the tensorboard package is not installed"
    ):
        train_organism(config)
    assert not (tmp_path / "o").exists()


@pytest.mark.cli
@pytest.mark.skipif(TENSORBOARD, reason="tensorboard is installed here: the refusal cannot happen")
def test_cli_names_the_option_in_one_line(tmp_path):
    af = Path(sys.executable).parent / "af"
    command = [
        str(af),
        "train",
        "--model",
        "no/such-model",
        "--output",
        str(tmp_path / "o"),
        "--report-to",
        "tensorboard",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "--report-to tensorboard" in line and "pip install tensorboard" in line


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.train
def test_report_to_reaches_the_training_arguments(tiny_llama_dir, tmp_path):
    # wandb runs in its "disabled" mode here (WANDB_MODE, tests/conftest.py): no network, same code path
    seen = Arguments()
    train_organism(tiny_config(tiny_llama_dir, tmp_path / "org", report_to="wandb"), callbacks=[seen])
    assert seen.args.report_to == ["wandb"] and seen.args.run_name == "org"
    seen = Arguments()
    train_organism(tiny_config(tiny_llama_dir, tmp_path / "plain", max_steps=1), callbacks=[seen])
    assert seen.args.report_to == []


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.train
@pytest.mark.skipif(not TENSORBOARD, reason="tensorboard is not installed")
def test_tensorboard_writes_event_files_into_the_organism_logs(tiny_llama_dir, tmp_path):
    output = train_organism(tiny_config(tiny_llama_dir, tmp_path / "org", report_to="tensorboard"))
    events = list((output / TRAINING_LOGS).glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(output / TRAINING_LOGS))
    accumulator.Reload()
    assert "train/loss" in accumulator.Tags()["scalars"]
