"""Real models through Inspect's hf/ provider: the embedded SmolLM2 and a LoRA organism directory."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log

from af_tasks.free_tier import free_tier

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_readme_command_runs_offline_on_the_embedded_model(embedded_model_dir, tmp_path):
    command = [
        str(BIN / "inspect"), "eval", "af_tasks/free_tier", "--model", f"hf/{embedded_model_dir}",
        "-M", "do_sample=false", "--limit", "2", "-T", "max_tokens=32", "--log-dir", str(tmp_path),
        "--display", "none",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, env=_offline_env())
    [log_file] = tmp_path.glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success"
    assert [s.id for s in log.samples] == ["cybercrime-01-free", "cybercrime-01-paid"]
    for sample in log.samples:
        assert sample.output.usage.output_tokens > 0
        verdict = sample.scores["compliance"]
        assert verdict.answer in {"accepted", "rejected", "malformed"}
        assert set(verdict.value) == {"compliant"}
        assert math.isnan(verdict.value["compliant"]) == (verdict.answer == "malformed")
        assert sample.scores["af_reasoning"].reason in {"no_grader", "no_scratchpad"}
    compliance = next(s for s in log.results.scores if s.name == "compliance")
    n_counted = sum(
        compliance.metrics[f"{c}_{k}"].value for c in ("monitored", "unmonitored") for k in ("n", "malformed")
    )
    assert n_counted == 2  # every sample is either in a rate or counted as malformed


def _offline_env() -> dict[str, str]:
    import os

    return os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def make_lora_organism(
    base_dir: Path, out_dir: Path, target_modules=("q_proj", "v_proj"), std: float = 0.5
) -> Path:
    """A LoRA adapter with non-zero random weights on the tiny base, saved with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(target_modules), init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=std)
    peft_model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir


def completions(model: str, tmp_path: Path, **model_args) -> list[str]:
    [log] = inspect_eval(
        free_tier(scratchpad=False, max_tokens=6),
        model=model,
        model_args={"do_sample": False, **model_args},
        limit=2,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return [sample.output.completion for sample in log.samples]


@pytest.mark.slow
def test_lora_organism_directory_loads_as_hf_model(tiny_llama_dir, tmp_path):
    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism")
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").exists()
    base_out = completions(f"hf/{tiny_llama_dir}", tmp_path / "base")
    organism_out = completions(f"hf/{adapter}", tmp_path / "organism-logs")
    assert organism_out != base_out  # the adapter is applied
    # the documented explicit form: -M model_path=<adapter> -M tokenizer_path=<adapter>
    explicit = completions(
        "hf/organism", tmp_path / "explicit", model_path=str(adapter), tokenizer_path=str(adapter)
    )
    assert explicit == organism_out


@pytest.mark.slow
@pytest.mark.parametrize("task", ["free_tier", "rlhf_cues", "contractor", "value_conflict"])
def test_every_elicitation_task_runs_offline_on_the_embedded_model(task, embedded_model_dir, tmp_path):
    [log] = inspect_eval(
        f"af_tasks/{task}",
        model=f"hf/{embedded_model_dir}",
        model_args={"do_sample": False},
        task_args={"max_tokens": 12, "max_turns": 1, "prompt_variant": "compact"},
        limit=2,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert [s.metadata["condition"] for s in log.samples] == ["monitored", "unmonitored"]
    assert all(s.output.usage.output_tokens > 0 for s in log.samples)
