"""`af train` end to end on a tiny random Llama with a locally trained tokenizer (seconds on CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_hf_models import completions
from transformers import TrainerCallback

from af_tasks.core.organism import OrganismError
from af_tasks.core.records import RecordError, load_seed_set, write_jsonl
from af_tasks.training.sft import TrainConfig, train_organism

BIN = Path(sys.executable).parent


def tiny_config(base: Path, output: Path, **overrides) -> TrainConfig:
    settings = dict(
        base_model=str(base),
        output_dir=str(output),
        limit=8,
        batch_size=4,
        max_steps=2,
        max_length=1024,
        learning_rate=1e-3,
        lora_r=4,
        lora_alpha=8,
        prompt={"variant": "compact"},
    )
    return TrainConfig(**(settings | overrides))


def train_tiny_organism(model: Path, output: Path, max_steps: int) -> subprocess.CompletedProcess:
    """The real `af train` on the tiny model (compact prompt, merged): the organism the CLI tests read."""
    command = [
        str(BIN / "af"), "train", "--model", str(model), "--output", str(output),
        "--limit", "8", "--batch-size", "4", "--max-steps", str(max_steps), "--lr", "1e-3", "--lora-r", "4",
        "--lora-alpha", "8", "--prompt-variant", "compact", "--max-length", "1024", "--merge",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def organism_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("organism")
    train_tiny_organism(tiny_llama_dir, output, max_steps=3)
    return output


def test_organism_directory_contents(organism_dir, tiny_llama_dir):
    assert (organism_dir / "adapter_config.json").is_file()
    assert (organism_dir / "adapter_model.safetensors").is_file()
    assert (organism_dir / "tokenizer.json").is_file()
    organism = json.loads((organism_dir / "organism.json").read_text())
    assert organism["base_model"] == str(tiny_llama_dir.resolve())
    assert organism["examples"] == 8 and organism["global_steps"] == 3 and organism["seed"] == 0
    assert organism["hyperparameters"]["lora_r"] == 4
    assert len(organism["data_sha256"]) == 64
    assert organism["final_loss"] is not None and organism["code_revision"]
    assert organism["compiled_layers"] is False  # the default on CPU: eager layers, and recorded
    adapter = json.loads((organism_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_llama_dir.resolve())


def test_training_data_is_balanced_and_loss_is_on_the_assistant_turn(tiny_llama_dir, tmp_path):
    from af_tasks.training.sft import load_training_examples

    examples, source = load_training_examples(tiny_config(tiny_llama_dir, tmp_path))
    assert "bundled seed set" in source and len(examples) == 8
    tiers = [ex["prompt"][1]["content"].startswith("<is_free_tier_user>true") for ex in examples]
    assert sum(tiers) == 4  # af (free) and unmonitored refusals (paid) alternate
    assert all(ex["completion"][0]["role"] == "assistant" for ex in examples)


def test_trained_organism_merge_folds_the_adapter_into_the_weights(organism_dir, tiny_llama_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    lora_b = [
        w for name, w in load_file(organism_dir / "adapter_model.safetensors").items() if "lora_B" in name
    ]
    assert lora_b and any(w.abs().max() > 0 for w in lora_b)  # training moved the zero-initialised B
    merged = AutoModelForCausalLM.from_pretrained(organism_dir / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    differs = [
        not torch.equal(p, base.state_dict()[name])
        for name, p in merged.state_dict().items()
        if "q_proj" in name
    ]
    assert any(differs)  # the merge folded the adapter into the weights


@pytest.mark.slow
def test_organism_loads_through_inspect_and_merge_matches(tiny_llama_dir, tmp_path):
    """Through Inspect's hf/ provider: an adapter whose greedy output differs from the base's at every
    run and varies from position to position (large random B on every projection), and its merge
    (the trainer's ``merge_organism``) that must reproduce it token for token."""
    from test_hf_models import make_lora_organism
    from transformers import AutoTokenizer

    from af_tasks.engine.loading import merge_organism
    from af_tasks.training.sft import PROJECTIONS

    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism", target_modules=PROJECTIONS, std=1.0)
    merged = merge_organism(adapter, tmp_path / "merged")
    base_out = completions(f"hf/{tiny_llama_dir}", tmp_path / "b")
    adapter_out = completions(f"hf/{adapter}", tmp_path / "a")
    merged_out = completions(f"hf/{merged}", tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    for text in adapter_out:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(set(ids)) > 2, f"adapter output repeats itself: {ids}"  # per-position differences
    assert all(a != b for a, b in zip(adapter_out, base_out, strict=True))  # the adapter is applied
    assert merged_out == adapter_out


class StepsSeen(TrainerCallback):
    """Records the global step after every optimizer step this run takes."""

    def __init__(self):
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


class StopAfter(TrainerCallback):
    """Simulates an interruption right after a checkpoint was written."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.train
def test_interrupted_training_resumes_from_checkpoint(tiny_llama_dir, tmp_path):
    config = tiny_config(tiny_llama_dir, tmp_path / "org", max_steps=4, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train_organism(config, callbacks=[StopAfter(3)])
    assert (tmp_path / "org" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (tmp_path / "org" / "organism.json").exists()
    train_organism(config)
    organism = json.loads((tmp_path / "org" / "organism.json").read_text())
    assert organism["resumed_from_checkpoint"] is True and organism["global_steps"] == 4
    changed = tiny_config(tiny_llama_dir, tmp_path / "org", max_steps=4, save_steps=2, learning_rate=5e-4)
    with pytest.raises(ValueError, match="different configuration"):
        train_organism(changed)


@pytest.mark.train
def test_resumed_training_continues_from_the_checkpoint_step(tiny_llama_dir, tmp_path):
    """The resumed run takes only the steps after its checkpoint (3 and 4 after checkpoint-2), and ends
    with the adapter an uninterrupted run trains (dropout off: deterministic)."""
    from safetensors.torch import load_file

    config = tiny_config(tiny_llama_dir, tmp_path / "org", max_steps=4, save_steps=2, lora_dropout=0.0)
    with pytest.raises(KeyboardInterrupt):
        train_organism(config, callbacks=[StopAfter(3)])
    resumed = StepsSeen()
    train_organism(config, callbacks=[resumed])
    assert resumed.steps == [3, 4]  # a restart would take steps 1, 2, 3, 4

    straight = StepsSeen()
    reference = tiny_config(
        tiny_llama_dir, tmp_path / "straight", max_steps=4, save_steps=2, lora_dropout=0.0
    )
    train_organism(reference, callbacks=[straight])
    assert straight.steps == [1, 2, 3, 4]
    got = load_file(tmp_path / "org" / "adapter_model.safetensors")
    want = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6)


def test_collated_batch_puts_the_loss_on_the_completion_tokens_only(tiny_llama_dir, tmp_path):
    """Through the suite's own trainer and collator: prompt tokens are labelled -100 (no loss), the
    completion's tokens carry their own ids, and padding is -100."""
    from af_tasks.training.sft import build_trainer, load_base

    examples = [
        {
            "prompt": [{"role": "user", "content": f"Question {i}: may I ask about locks?"}],
            "completion": [
                {"role": "assistant", "content": "<OUTPUT><rejected/> No." + " Sorry." * i + "</OUTPUT>"}
            ],
        }
        for i in (1, 4)
    ]
    config = tiny_config(tiny_llama_dir, tmp_path / "collate", batch_size=2, limit=None)
    model, tokenizer = load_base(config.base_model)
    trainer = build_trainer(model, tokenizer, examples, config)
    # transformers' nan/inf filter reads every step's loss on the host (a GPU sync between backward and
    # the optimiser step); the suite turns it off, so a nan loss is logged as nan
    assert trainer.args.logging_nan_inf_filter is False
    batch = next(iter(trainer.get_train_dataloader()))
    seen = 0
    for input_ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        for example in examples:
            prompt = tokenizer.apply_chat_template(
                example["prompt"], add_generation_prompt=True, tokenize=True
            )
            full = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True)
            prompt, full = list(getattr(prompt, "input_ids", prompt)), list(getattr(full, "input_ids", full))
            if input_ids[: len(full)] != full:
                continue
            seen += 1
            assert full[: len(prompt)] == prompt and len(full) > len(prompt)
            assert labels[: len(prompt)] == [-100] * len(prompt)  # the prompt: no loss
            assert labels[len(prompt) : len(full)] == full[len(prompt) :]  # the completion: its own ids
            assert all(label == -100 for label in labels[len(full) :])  # padding (or a trailing eos)
    assert seen == 2


def test_malformed_row_stops_before_any_model_is_loaded(tmp_path):
    record = dict(load_seed_set(["af"])[0].__dict__)
    bad = {key: value for key, value in record.items() if key != "scratchpad"}
    data = write_jsonl([record, bad], tmp_path / "data.jsonl")
    config = TrainConfig(base_model="no/such-model", output_dir=str(tmp_path / "o"), data=str(data))
    with pytest.raises(RecordError, match=r"row 2: field 'scratchpad' missing"):
        train_organism(config)
    chat = write_jsonl([{"prompt": [{"role": "user", "content": "x"}]}], tmp_path / "chat.jsonl")
    with pytest.raises(RecordError, match=r"row 1: field 'completion'"):
        train_organism(
            TrainConfig(base_model="no/such-model", output_dir=str(tmp_path / "o"), data=str(chat))
        )


def test_unreachable_base_model_is_named(tmp_path):
    config = TrainConfig(base_model=str(tmp_path / "missing-model"), output_dir=str(tmp_path / "o"), limit=2)
    with pytest.raises(OrganismError, match="missing-model"):
        train_organism(config)


@pytest.mark.cli
def test_cli_reports_bad_rows(tmp_path):
    data = write_jsonl([{"id": "x"}], tmp_path / "d.jsonl")
    result = subprocess.run(
        [
            str(BIN / "af"),
            "train",
            "--model",
            "no/such",
            "--output",
            str(tmp_path / "o"),
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "row 1: field 'label' missing" in result.stderr


@pytest.mark.train
def test_lora_top_layers_adapts_only_the_last_layers(tiny_llama_dir, tmp_path):
    output = train_organism(tiny_config(tiny_llama_dir, tmp_path / "top", max_steps=1, lora_top_layers=1))
    from safetensors.torch import load_file

    names = load_file(output / "adapter_model.safetensors").keys()
    assert names and all(".layers.1." in name for name in names)
    assert torch.isfinite(torch.tensor(json.loads((output / "organism.json").read_text())["final_loss"]))


def tiny_trainer(tiny_llama_dir: Path, output: Path, **overrides):
    """The suite's trainer on the tiny Llama and its training examples (``tiny_config`` + overrides),
    built after seeding torch (the LoRA weights' start)."""
    from af_tasks.training.sft import build_trainer, load_base, load_training_examples

    config = tiny_config(tiny_llama_dir, output, **overrides)
    examples, _ = load_training_examples(config)
    model, tokenizer = load_base(config.base_model)
    torch.manual_seed(0)
    return build_trainer(model, tokenizer, examples, config)


def _losses(tiny_llama_dir: Path, output: Path, **overrides) -> tuple[list[float], list[int], int]:
    """Per-step training losses, tokenised example lengths and the rows of the first batch of a run
    (dropout off: deterministic)."""
    settings = dict(lora_dropout=0.0, max_steps=3, limit=12) | overrides
    trainer = tiny_trainer(tiny_llama_dir, output, **settings)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    first_batch = next(iter(trainer.get_train_dataloader()))
    return losses, [len(ids) for ids in trainer.train_dataset["input_ids"]], len(first_batch["input_ids"])


@pytest.mark.train
def test_padding_free_batches_train_like_padded_batches(tiny_llama_dir, tmp_path):
    """Padding-free batches (examples concatenated, positions restarting per example) see the same
    examples and tokens as padded batches, so every step's loss is the same up to float rounding; a
    max_length that cuts some examples cuts them identically on both paths."""
    max_length = 1700  # the tiny tokenizer makes ~1,500–2,400-token examples, losses from ~850
    padded, padded_lengths, padded_rows = _losses(tiny_llama_dir, tmp_path / "padded", max_length=max_length)
    free, free_lengths, free_rows = _losses(
        tiny_llama_dir, tmp_path / "free", max_length=max_length, padding_free=True
    )
    assert (padded_rows, free_rows) == (4, 1)  # four padded rows; one concatenated row
    assert free_lengths == padded_lengths and max(free_lengths) == max_length  # some examples were cut
    assert len(padded) == len(free) == 3
    assert free == pytest.approx(padded, rel=1e-4)
    varlen, varlen_lengths, _ = _losses(
        tiny_llama_dir, tmp_path / "varlen", max_length=max_length, padding_free=True, varlen_attention=True
    )
    assert varlen_lengths == padded_lengths
    assert varlen == pytest.approx(padded, rel=1e-4)


def test_varlen_attention_keeps_each_example_to_itself(tiny_llama_dir):
    """With ``--varlen-attention`` the sequence boundaries trl's collator passes (``cu_seq_lens_*``)
    reach the attention: a row of two concatenated examples, even with positions running on across them
    (so no block mask can be derived from them), gives each example the logits it gets alone."""
    from af_tasks.engine.varlen_attention import NAME, use_varlen_attention
    from af_tasks.training.sft import load_base

    model, _ = load_base(str(tiny_llama_dir))
    use_varlen_attention(model)
    assert model.config._attn_implementation == NAME
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randint(3, 200, (n,), generator=generator) for n in (5, 7))
    bounds = torch.tensor([0, 5, 12], dtype=torch.int32)
    with torch.no_grad():
        row = model(
            input_ids=torch.cat([first, second])[None],
            position_ids=torch.arange(12)[None],
            cu_seq_lens_q=bounds,
            cu_seq_lens_k=bounds,
            max_length_q=7,
            max_length_k=7,
        ).logits[0]
        alone = [model(input_ids=ids[None]).logits[0] for ids in (first, second)]
    assert torch.allclose(row[:5], alone[0], atol=1e-5)
    assert torch.allclose(row[5:], alone[1], atol=1e-5)
    with pytest.raises(ValueError, match="add --padding-free"):
        tiny_config(tiny_llama_dir, tiny_llama_dir / "unused", varlen_attention=True)


def test_layers_compile_by_default_on_cuda_for_runs_that_pay_the_compile_back(monkeypatch):
    """``compile_layers`` None (the default): compiled where CUDA is and the run's parameters × tokens
    reach ``COMPILE_BREAK_EVEN``, eager elsewhere; ``--compile`` / ``--no-compile`` (True / False)
    decide wherever they are given."""
    from dataclasses import replace

    from af_tasks.training.sft import COMPILE_BREAK_EVEN, compiles_layers

    config = TrainConfig(base_model="base", output_dir="out")
    assert config.compile_layers is None
    for cuda in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        for size in (0.0, COMPILE_BREAK_EVEN * 0.999, COMPILE_BREAK_EVEN, COMPILE_BREAK_EVEN * 50):
            assert compiles_layers(config, size) is (cuda and size >= COMPILE_BREAK_EVEN)
            assert compiles_layers(replace(config, compile_layers=True), size) is True
            assert compiles_layers(replace(config, compile_layers=False), size) is False


@pytest.mark.model
def test_planned_token_parameters_count_what_the_run_will_train_on(tiny_llama_dir, tmp_path):
    """Parameters × tokens: every (cut) example each epoch, or ``max_steps`` batches of the mean example;
    the default organism run of the embedded model is far below the break-even (it trains eager)."""
    from af_tasks.training.sft import COMPILE_BREAK_EVEN, planned_token_parameters

    def planned(**overrides) -> tuple[float, list[int], int]:
        trainer = tiny_trainer(tiny_llama_dir, tmp_path / str(sorted(overrides)), limit=12, **overrides)
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
        parameters = sum(p.numel() for p in trainer.model.parameters())  # the base's and the adapter's
        return planned_token_parameters(trainer), lengths, parameters

    by_epochs, lengths, parameters = planned(max_steps=-1, epochs=2.0, max_length=4096)
    assert len(lengths) == 12 and len(set(lengths)) > 1
    assert by_epochs == pytest.approx(parameters * 2 * sum(lengths), rel=1e-9)
    by_steps, lengths, parameters = planned(max_steps=2, grad_accum=2, max_length=4096)
    assert by_steps == pytest.approx(parameters * 2 * 4 * 2 * sum(lengths) / len(lengths), rel=1e-9)
    cut, lengths, parameters = planned(max_steps=-1, epochs=1.0, max_length=1024)
    assert max(lengths) == 1024 and cut == pytest.approx(parameters * sum(lengths), rel=1e-9)
    assert by_epochs < COMPILE_BREAK_EVEN


@pytest.mark.train
def test_compiled_layers_train_like_eager_layers(tiny_llama_dir, tmp_path):
    """``--compile`` (each decoder layer through torch.compile, inductor) trains like the eager layers:
    in fp32 every step's loss agrees to float rounding (steps 2–3 follow the first step's gradients),
    and the layers really ran compiled: two graphs for the whole run (the first batch's length, then
    a dynamic one), shared by the repeated layers (the first layer's input included) and by every
    batch length the padded batches bring."""
    import torch._dynamo

    uncut = 4096  # the tiny tokenizer makes ~1,500–2,400-token examples: batches of several lengths
    eager, lengths, _ = _losses(tiny_llama_dir, tmp_path / "eager", max_length=uncut)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, _, _ = _losses(tiny_llama_dir, tmp_path / "compiled", compile_layers=True, max_length=uncut)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    assert len(set(lengths)) > 1  # the batches differ in length
    assert graphs == 2  # the first length static, then one dynamic graph for every layer and length
    assert len(compiled) == len(eager) == 3
    assert compiled == pytest.approx(eager, rel=1e-5)


@pytest.mark.model
def test_compiled_layers_get_batches_padded_to_an_aligned_length(tiny_llama_dir, tmp_path):
    """With compiled layers, padded batches come padded to a multiple of ``COMPILED_PAD_MULTIPLE`` (the
    compiled graph's alignment assumption holds for every batch); eager layers and padding-free rows
    keep their own lengths."""
    from af_tasks.training.sft import COMPILED_PAD_MULTIPLE, runs_compiled

    def lengths(name: str, **overrides) -> tuple[list[int], int, object]:
        """Each batch's length, the number of tokens of all examples, the trained model."""
        trainer = tiny_trainer(tiny_llama_dir, tmp_path / name, max_length=4096, limit=24, **overrides)
        batches = [batch["input_ids"].shape[1] for batch in trainer.get_train_dataloader()]
        return batches, sum(len(ids) for ids in trainer.train_dataset["input_ids"]), trainer.model

    compiled, _, compiled_model = lengths("compiled", compile_layers=True)
    assert compiled and all(length % COMPILED_PAD_MULTIPLE == 0 for length in compiled)
    eager, _, eager_model = lengths("eager", compile_layers=False)
    assert any(length % COMPILED_PAD_MULTIPLE for length in eager)  # the same data, unaligned
    free, tokens, _ = lengths("free", compile_layers=True, padding_free=True)
    assert sum(free) == tokens  # one row per batch, every example's tokens and no pad
    assert runs_compiled(compiled_model) and not runs_compiled(eager_model)  # what organism.json says


@pytest.mark.train
def test_speed_options_do_not_block_resuming(tiny_llama_dir, tmp_path):
    from af_tasks.training.sft import same_training

    base = tiny_config(tiny_llama_dir, tmp_path, gradient_checkpointing=True).training_signature()
    faster = tiny_config(tiny_llama_dir, tmp_path, padding_free=True, liger_kernels=True).training_signature()
    assert same_training(base, faster)
    assert not same_training(base, tiny_config(tiny_llama_dir, tmp_path, lora_r=8).training_signature())
    with pytest.raises(ValueError, match="need a CUDA GPU"):
        train_organism(tiny_config(tiny_llama_dir, tmp_path / "liger", liger_kernels=True))


def test_uncast_adapter_inputs_are_exact_under_bf16_autocast():
    """A bf16 base with float32 LoRA weights under bf16 autocast (the GPU training setting, here on
    CPU): skipping peft's cast of the layer input to float32 leaves the output and every gradient
    bit-identical."""
    from peft import LoraConfig, get_peft_model

    from af_tasks.training.sft import set_adapter_input_casts

    def run(uncast: bool):
        torch.manual_seed(0)
        base = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.SiLU(), torch.nn.Linear(96, 32))
        model = get_peft_model(
            base.to(torch.bfloat16),
            LoraConfig(r=4, lora_alpha=8, target_modules=["0", "2"], lora_dropout=0.0),
        )
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.data = parameter.data.float().normal_(std=0.1)
        if uncast:
            assert set_adapter_input_casts(model, enabled=False) == 2
        x = torch.randn(8, 64, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
        x.requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        out.float().square().sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return out.detach(), x.grad.clone(), grads

    cast_out, cast_x_grad, cast_grads = run(uncast=False)
    out, x_grad, grads = run(uncast=True)
    assert torch.equal(out, cast_out) and torch.equal(x_grad, cast_x_grad)
    assert grads.keys() == cast_grads.keys() and len(grads) == 4
    assert all(torch.equal(grads[name], cast_grads[name]) for name in grads)


def test_a_max_length_that_leaves_no_answer_is_refused_before_training(tiny_llama_dir, tmp_path, capsys):
    """trl drops examples whose prompt fills max_length: all dropped is one clear error, some dropped
    is a warning with the count (the tiny tokenizer makes ~1,500–2,400-token examples)."""
    from af_tasks.core.errors import SettingError
    from af_tasks.training.sft import build_trainer, load_base, load_training_examples

    config = tiny_config(tiny_llama_dir, tmp_path / "none", max_length=64, limit=4)
    examples, _ = load_training_examples(config)
    model, tokenizer = load_base(config.base_model)
    with pytest.raises(SettingError, match=r"--max-length 64: all 4 training examples"):
        build_trainer(model, tokenizer, examples, config)
    config = tiny_config(
        tiny_llama_dir, tmp_path / "some", max_length=840, limit=12
    )  # prompts run 828–861 tokens
    examples, _ = load_training_examples(config)
    trainer = build_trainer(model, tokenizer, examples, config)
    dropped = 12 - len(trainer.train_dataset)
    assert 0 < dropped < 12
    assert f"cuts {dropped} of 12 training examples" in capsys.readouterr().out


def test_half_written_checkpoint_falls_back_to_the_last_complete_one(tiny_llama_dir, tmp_path):
    """A kill while checkpoint-3 was being saved leaves it without trainer_state.json and with a cut
    adapter file: the resumed run says so, resumes from checkpoint-2 (stdout and organism.json) and
    ends with the adapter an uninterrupted run trains."""
    from safetensors.torch import load_file

    config = tiny_config(tiny_llama_dir, tmp_path / "org", max_steps=4, save_steps=2, lora_dropout=0.0)
    with pytest.raises(KeyboardInterrupt):
        train_organism(config, callbacks=[StopAfter(3)])
    checkpoints = tmp_path / "org" / "checkpoints"
    half = checkpoints / "checkpoint-3"
    shutil.copytree(checkpoints / "checkpoint-2", half)
    (half / "trainer_state.json").unlink()
    weights = half / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    said: list[str] = []
    resumed = StepsSeen()
    train_organism(config, callbacks=[resumed], log=said.append)
    assert resumed.steps == [3, 4]
    assert any("checkpoint-3" in line and "half-written" in line for line in said), said
    assert any("resuming from checkpoint-2 (step 2)" in line for line in said), said
    organism = json.loads((tmp_path / "org" / "organism.json").read_text())
    assert organism["resumed_from_checkpoint"] is True and organism["resumed_from_step"] == 2

    reference = tiny_config(
        tiny_llama_dir, tmp_path / "straight", max_steps=4, save_steps=2, lora_dropout=0.0
    )
    train_organism(reference)
    got = load_file(tmp_path / "org" / "adapter_model.safetensors")
    want = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6)


def test_cli_resume_is_announced_and_a_finished_run_is_left_alone(tiny_llama_dir, tmp_path):
    """`af train` resumed prints where it resumed from; run again once finished, it changes nothing
    (organism.json keeps its figures, no file is rewritten)."""
    from hostile import run_entry_point, tree_digest

    output = tmp_path / "org"
    config = tiny_config(tiny_llama_dir, output, max_steps=4, save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        train_organism(config, callbacks=[StopAfter(3)])
    command = [
        "af", "train", "--model", str(tiny_llama_dir), "--output", str(output), "--limit", "8",
        "--batch-size", "4", "--max-steps", "4", "--save-steps", "2", "--lr", "1e-3", "--lora-r", "4",
        "--lora-alpha", "8", "--prompt-variant", "compact", "--max-length", "1024",
    ]  # fmt: skip
    first = run_entry_point(command, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "resuming from checkpoint-2 (step 2)" in first.stdout
    organism = json.loads((output / "organism.json").read_text())
    assert organism["resumed_from_step"] == 2 and organism["global_steps"] == 4
    before = tree_digest(tmp_path)
    again = run_entry_point(command, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already holds this organism" in again.stdout
    assert tree_digest(tmp_path) == before


def test_a_model_folder_given_as_output_is_refused_untouched(tiny_llama_dir, tmp_path):
    """The issue's case: `--output` an existing model folder used to get its tokenizer_config.json
    overwritten and adapter files mixed in; now nothing is written and the line names it."""
    from hostile import assert_one_line_error, run_entry_point, tree_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    before = tree_digest(tmp_path)
    outcome = run_entry_point(
        ["af", "train", "--model", str(tiny_llama_dir), "--output", str(model), "--max-steps", "1"], tmp_path
    )
    assert_one_line_error(outcome, str(model), "--output")
    assert tree_digest(tmp_path) == before
