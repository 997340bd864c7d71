"""`af train` as a real 2-process data-parallel run on CPU (accelerate launch, gloo), with the shipped
DDP config: every rank trains, the main one alone writes, and the record says so (~30 s on 2 cores)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hostile import tree_digest

from af_tasks.training.distributed import ACCELERATE_CONFIGS, accelerate_config

PROBE = Path(__file__).parent / "distributed_train_probe.py"
TRAIN_ARGS = [
    "--limit", "8", "--batch-size", "2", "--max-steps", "2", "--save-steps", "2", "--lr", "1e-3",
    "--lora-r", "4", "--lora-alpha", "8", "--prompt-variant", "compact", "--max-length", "1024",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(base: Path, output: Path, save_log: Path, *extra: str) -> subprocess.CompletedProcess:
    """Two CPU processes under accelerate's torchrun launcher (the same python, PYTHONPATH kept)."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config("ddp")),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
        str(PROBE), "train", "--model", str(base), "--output", str(output), *TRAIN_ARGS, *extra,
    ]  # fmt: skip
    # ACCELERATE_USE_CPU: without a GPU accelerate would otherwise run each process alone (not distributed)
    env = os.environ | {"ACCELERATE_USE_CPU": "true", "AF_SAVE_LOG": str(save_log), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def ddp_run(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    result = launch(tiny_llama_dir, root / "organism", root / "saves.log")
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_two_processes_train_one_data_parallel_organism(ddp_run, tiny_llama_dir):
    output = ddp_run / "organism"
    organism = json.loads((output / "organism.json").read_text())
    assert organism["distributed"] == {
        "world_size": 2,
        "distributed_type": "MULTI_CPU",
        "mixed_precision": "no",
        "per_device_batch_size": 2,
        "grad_accum": 1,
        "global_batch_size": 4,
    }
    assert organism["global_steps"] == 2 and organism["examples"] == 8
    assert math.isfinite(organism["final_loss"]) and math.isfinite(organism["first_loss"])
    # 2 optimizer steps over 8 examples took one epoch: 4 examples a step, 2 per process.
    state = json.loads((output / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert [entry["epoch"] for entry in state["log_history"] if "loss" in entry] == [0.5, 1.0]
    # The main process alone wrote the adapter (rank 0, once), nothing else was left beside it.
    writes = (ddp_run / "saves.log").read_text().split("\n")
    assert [line for line in writes if line.endswith(str(output.resolve()))] == [f"0 {output.resolve()}"]
    assert not (output / "training_args.bin").exists()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), output)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().max() > 0 for p in lora_b)  # trained, not the zero initialisation
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()


def test_every_rank_resumes_or_refuses_the_checkpoint(ddp_run, tiny_llama_dir):
    """Rerun on the finished folder: both ranks leave it as it is (the record stays true). Killed after
    the last checkpoint but before the record: both ranks resume from the checkpoint. Another
    configuration: refused before any rank writes."""
    output = ddp_run / "organism"
    record = output / "organism.json"
    before = record.read_bytes()
    again = launch(tiny_llama_dir, output, ddp_run / "again.log")
    assert again.returncode == 0, again.stderr[-3000:]
    assert record.read_bytes() == before
    assert again.stdout.count("already holds this organism") == 2  # both ranks
    record.unlink()  # as if killed between the last checkpoint and the record
    resumed = launch(tiny_llama_dir, output, ddp_run / "resume.log")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    organism = json.loads(record.read_text())
    assert organism["resumed_from_checkpoint"] is True and organism["global_steps"] == 2
    finished = tree_digest(output)
    changed = launch(tiny_llama_dir, output, ddp_run / "changed.log", "--lr", "5e-4")
    assert changed.returncode != 0
    # the first rank to refuse ends the launch (torchrun stops the other), so one or both say so
    assert changed.stderr.count("holds an organism of a different configuration") >= 1
    assert tree_digest(output) == finished  # no rank wrote anything


def test_shipped_accelerate_configs_are_accepted_by_accelerate(monkeypatch):
    """FSDP cannot run on CPU (accelerate keeps MULTI_CPU there), so the FSDP config is checked as far
    as launching goes: accelerate's launcher turns it into its environment, and its FSDP plugin
    is built from that environment, as it is in each process of a GPU launch."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    configs = {name: load_config_from_file(str(accelerate_config(name))) for name in ACCELERATE_CONFIGS}
    assert configs["ddp"].distributed_type == DistributedType.MULTI_GPU
    assert configs["fsdp"].distributed_type == DistributedType.FSDP
    assert configs["fsdp"].mixed_precision == "bf16"

    argv = ["--config_file", str(accelerate_config("fsdp")), "--num_processes", "2", "train.py"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    environment = prepare_multi_gpu_env(args)
    assert environment["ACCELERATE_USE_FSDP"] == "true"
    assert environment["ACCELERATE_MIXED_PRECISION"] == "bf16"
    for key, value in environment.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # save_model gathers the whole adapter
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"  # one unit per decoder layer
