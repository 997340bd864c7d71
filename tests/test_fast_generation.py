"""The fast generation path: engine, request batcher and the organism/ Inspect provider.

The reference everywhere is plain transformers: ``model.generate`` on one unpadded prompt at a time
(for an organism: peft's unmerged model), greedy, compared token for token.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model
from inspect_ai.solver import generate
from test_hf_models import _offline_env

from af_tasks.core.organism import OrganismError
from af_tasks.engine.generate import GenerationEngine, SamplingParams
from af_tasks.solvers.batcher import RequestBatcher

BIN = Path(sys.executable).parent
NEW_TOKENS = 24
CHATS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name three prime numbers and say briefly why each one is prime."},
    ],
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "One, two, three."},
        {"role": "user", "content": "Now backwards."},
    ],
]


def plain_generate(model, tokenizer, chat, max_new_tokens: int = NEW_TOKENS) -> list[int]:
    """Greedy ``model.generate`` on one chat, no padding; new tokens up to and including EOS."""
    import torch

    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
    input_ids = torch.tensor([ids["input_ids"]])
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return out[0, input_ids.shape[1] :].tolist()


def assert_matches_reference(completions, references, eos_ids):
    for completion, reference in zip(completions, references, strict=True):
        assert completion.token_ids == reference[: len(completion.token_ids)]
        if completion.stop_reason == "stop":
            assert completion.token_ids[-1] in eos_ids
        else:
            assert completion.token_ids == reference and len(reference) == NEW_TOKENS


# --- request batcher (no model) -------------------------------------------------------------------


def test_batcher_batches_concurrent_requests_by_key_and_answers_each():
    calls: list[tuple[str, list[int]]] = []

    def run_batch(key, items):
        calls.append((key, list(items)))
        if key == "boom":
            raise ValueError("generation failed")
        return [f"{key}:{item}" for item in items]

    batcher = RequestBatcher(run_batch, max_batch=3, window_s=0.05)

    async def main():
        jobs = [batcher.submit("a", i) for i in range(5)] + [batcher.submit("b", i) for i in range(2)]
        return await asyncio.gather(*jobs)

    results = asyncio.run(main())
    assert results == [f"a:{i}" for i in range(5)] + ["b:0", "b:1"]
    assert calls == [("a", [0, 1, 2]), ("a", [3, 4]), ("b", [0, 1])]  # at most max_batch, by key

    async def failing():  # every request of a failed batch gets the error; a new event loop works
        return await asyncio.gather(*(batcher.submit("boom", i) for i in range(2)), return_exceptions=True)

    errors = asyncio.run(failing())
    assert all(isinstance(e, ValueError) and "generation failed" in str(e) for e in errors)
    assert batcher.batch_sizes == [3, 2, 2]  # failed batches are not counted
    batcher.close()


def test_batcher_cancelled_request_does_not_strand_the_others():
    def run_batch(key, items):
        return list(items)

    batcher = RequestBatcher(run_batch, max_batch=8, window_s=0.2)

    async def main():
        first = asyncio.ensure_future(batcher.submit("k", 0))
        rest = [asyncio.ensure_future(batcher.submit("k", i)) for i in (1, 2)]
        await asyncio.sleep(0.05)
        first.cancel()  # the leader, while waiting for its window
        return await asyncio.gather(*rest)

    assert asyncio.run(main()) == [1, 2]
    assert batcher.batch_sizes == [2]
    batcher.close()


# --- model resolution errors ----------------------------------------------------------------------


def test_a_bad_directory_is_named_in_the_error(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    with pytest.raises(OrganismError, match=r"not-a-model: not a model or organism directory"):
        GenerationEngine.load(str(empty), device="cpu")
    with pytest.raises(OrganismError, match=r"missing-dir: no such model directory"):
        GenerationEngine.load(str(tmp_path / "missing-dir"), device="cpu")
    with pytest.raises(OrganismError, match="not-a-model: not a model or organism directory"):
        get_model(f"organism/{empty}", device="cpu")  # through Inspect's registry (entry point)


# --- organism dir: tiny random Llama + a LoRA adapter with non-zero B -----------------------------


def make_varied_organism(tiny_dir: Path, out: Path) -> Path:
    """The tiny Llama with larger random weights (at the default init it repeats one token, which would
    hide position or padding errors) and a LoRA adapter with non-zero B on attention and MLP, saved
    with its tokenizer and the base as an absolute path."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(2)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, 0.2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    for directory in (out / "base", out / "organism"):
        tokenizer.save_pretrained(directory)
    model.save_pretrained(out / "base")
    base = AutoModelForCausalLM.from_pretrained(out / "base")
    targets = ["q_proj", "v_proj", "o_proj", "down_proj"]
    organism = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    )
    with torch.no_grad():
        for name, parameter in organism.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    organism.save_pretrained(out / "organism")
    return out / "organism"


@pytest.fixture(scope="module")
def tiny_organism(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_varied_organism(tiny_llama_dir, tmp_path_factory.mktemp("organism"))


def test_organism_dir_merged_equals_peft_unmerged_generate(tiny_organism):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = tiny_organism.parent / "base"
    engine = GenerationEngine.load(str(tiny_organism), device="cpu")
    assert engine.name == f"{base_dir}+{tiny_organism}"
    assert not any("lora" in name for name, _ in engine.model.named_parameters())  # merged
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    base_out = [plain_generate(base, engine.tokenizer, chat) for chat in CHATS[:2]]
    unmerged = PeftModel.from_pretrained(base, str(tiny_organism)).eval()
    references = [plain_generate(unmerged, engine.tokenizer, chat) for chat in CHATS]
    assert all(len(set(tokens)) > 5 for tokens in references)  # not a repeated token
    assert all(r != b for r, b in zip(references, base_out, strict=False))  # the adapter matters

    completions = engine.generate(CHATS, SamplingParams(max_new_tokens=NEW_TOKENS))
    assert_matches_reference(completions, references, engine.eos_ids)
    assert [c.input_tokens for c in completions] == [len(p) for p in engine.encode(CHATS)]
    assert len({c.input_tokens for c in completions}) > 2  # really padded: prompts of different lengths

    engine.cache = "static"  # the CUDA path's cache, checked on CPU
    assert engine.generate(CHATS, SamplingParams(max_new_tokens=NEW_TOKENS)) == completions


# --- the embedded SmolLM2 --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_engine(embedded_model_dir) -> GenerationEngine:
    return GenerationEngine.load(str(embedded_model_dir), device="cpu")


@pytest.fixture(scope="module")
def smollm2_references(smollm2_engine) -> list[list[int]]:
    return [plain_generate(smollm2_engine.model, smollm2_engine.tokenizer, chat) for chat in CHATS]


@pytest.mark.slow
def test_engine_batched_greedy_equals_plain_generate(smollm2_engine, smollm2_references):
    params = SamplingParams(max_new_tokens=NEW_TOKENS)
    completions = smollm2_engine.generate(CHATS, params)  # one left-padded batch of 5
    assert_matches_reference(completions, smollm2_references, smollm2_engine.eos_ids)
    assert {c.stop_reason for c in completions} == {"stop", "max_tokens"}  # both kinds of row occur
    assert completions[2].text == smollm2_engine.tokenizer.decode(
        completions[2].token_ids, skip_special_tokens=True
    )


def test_grouped_decode_attention_equals_repeated_kv_heads():
    """One query token against grouped K/V with a left-padding mask: the same output as transformers'
    SDPA with K/V repeated per query head (the path compilation would take)."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv

    from af_tasks.engine.generate import gqa_decode_sdpa

    torch.manual_seed(0)
    batch, heads, kv_heads, length, dim = 3, 8, 2, 11, 16
    module = torch.nn.Module()
    module.num_key_value_groups = heads // kv_heads
    query = torch.randn(batch, heads, 1, dim, dtype=torch.float64)
    key = torch.randn(batch, kv_heads, length, dim, dtype=torch.float64)
    value = torch.randn(batch, kv_heads, length, dim, dtype=torch.float64)
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    mask[1, ..., :4] = False  # a left-padded row
    output, _ = gqa_decode_sdpa(module, query, key, value, mask, scaling=0.3)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, repeat_kv(key, 4), repeat_kv(value, 4), attn_mask=mask, scale=0.3
    ).transpose(1, 2)
    assert output.shape == (batch, 1, heads, dim)
    torch.testing.assert_close(output, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_grouped_decode_attention_and_generate_path_equal_plain_generate(smollm2_engine, smollm2_references):
    """The CUDA defaults checked on CPU: SmolLM2 has grouped KV heads (9 query, 3 KV), so the grouped
    decode attention is exercised for every decode step; the transformers-generate path (sampling and
    stop strings use it) gives the same greedy tokens as the engine's own loop."""
    from af_tasks.engine.generate import GQA_DECODE_ATTENTION

    params = SamplingParams(max_new_tokens=NEW_TOKENS)
    grouped = GenerationEngine(
        smollm2_engine.model, smollm2_engine.tokenizer, "grouped", cache="static", grouped_decode=True
    )
    assert grouped.attention == GQA_DECODE_ATTENTION
    assert_matches_reference(grouped.generate(CHATS, params), smollm2_references, grouped.eos_ids)
    assert smollm2_engine.model.config._attn_implementation == "sdpa"  # restored after the call
    via_generate = GenerationEngine(smollm2_engine.model, smollm2_engine.tokenizer, "hf", own_loop=False)
    completions = via_generate.generate(CHATS, params)
    assert_matches_reference(completions, smollm2_references, via_generate.eos_ids)


def _messages(chat):
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser, "assistant": ChatMessageAssistant}
    return [kinds[turn["role"]](content=turn["content"]) for turn in chat]


@pytest.mark.slow
def test_inspect_eval_through_organism_provider_equals_plain_generate(
    embedded_model_dir, smollm2_engine, smollm2_references, tmp_path
):
    [log] = inspect_eval(
        Task(
            dataset=[Sample(input=_messages(chat), id=i + 1) for i, chat in enumerate(CHATS)],
            solver=generate(),
        ),
        model=f"organism/{embedded_model_dir}",
        model_args={"do_sample": False, "device": "cpu", "batch_window_ms": 1000},
        max_tokens=NEW_TOKENS,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert len(log.samples) == len(CHATS)
    for sample in log.samples:
        reference = smollm2_references[sample.id - 1]
        eos = reference[-1] in smollm2_engine.eos_ids
        assert sample.output.completion == smollm2_engine.tokenizer.decode(
            reference[:-1] if eos else reference
        )
        assert sample.output.usage.output_tokens == len(reference)
        assert sample.output.stop_reason == ("stop" if eos else "max_tokens")
        assert sample.output.metadata["batch_size"] == len(CHATS)  # one batch for all samples


@pytest.mark.slow
def test_cli_with_model_args_runs_offline(embedded_model_dir, smollm2_engine, smollm2_references, tmp_path):
    task_file = tmp_path / "tiny_task.py"
    task_file.write_text(
        "from inspect_ai import Task, task\nfrom inspect_ai.dataset import Sample\n"
        "from inspect_ai.solver import generate\n\n@task\ndef tiny():\n"
        f"    return Task(dataset=[Sample(input={CHATS[2][0]['content']!r})], solver=generate())\n"
    )
    command = [
        str(BIN / "inspect"), "eval", task_file.name, "--model", f"organism/{embedded_model_dir.resolve()}",
        "-M", "do_sample=false", "-M", "device=cpu", "-M", "compile=false", "-M", "batch_window_ms=10",
        "--max-tokens", str(NEW_TOKENS), "--log-dir", str(tmp_path / "logs"), "--display", "none",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env=_offline_env(), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    [log_file] = (tmp_path / "logs").glob("*.eval")
    [sample] = read_eval_log(str(log_file)).samples
    reference = smollm2_references[2]
    assert reference[-1] in smollm2_engine.eos_ids
    assert sample.output.completion == smollm2_engine.tokenizer.decode(reference[:-1])


@pytest.mark.slow
def test_stop_strings_and_ignore_eos(smollm2_engine, smollm2_references):
    chat, reference = CHATS[1], smollm2_references[1]
    [full] = smollm2_engine.generate([chat], SamplingParams(max_new_tokens=12, ignore_eos=True))
    assert full.token_ids == reference[:12] and full.stop_reason == "max_tokens"
    stop = " prime"
    assert stop in smollm2_engine.tokenizer.decode(reference[:4])
    [cut] = smollm2_engine.generate([chat], SamplingParams(max_new_tokens=12, stop=(stop,)))
    assert cut.stop_reason == "stop" and cut.text.endswith(stop) and full.text.startswith(cut.text)
    assert cut.output_tokens <= 4


def generation_benchmark():
    """``benchmarks/generation_gpu.py`` as a module (benchmarks/ is not an installed package)."""
    import importlib.util

    path = Path(__file__).parent.parent / "benchmarks" / "generation_gpu.py"
    spec = importlib.util.spec_from_file_location("generation_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.model
def test_gpu_benchmark_runs_on_cpu_with_a_tiny_model():
    bench = generation_benchmark()
    report = bench.run_benchmark(
        device="cpu", tiny=True, batch_sizes=[2], prompt_tokens=16, new_tokens=8, compile=False,
        continuous=False, bandwidth_gib=0.01, check_fp32=True,
    )  # fmt: skip
    assert report["gpu"] == "cpu" and report["weight_bytes"] > 0 and report["copy_bandwidth_gb_s"] > 0
    methods = [r["method"] for r in report["results"]]
    assert methods == ["plain", "engine", "engine-generate", "generate+grouped"]
    for result in report["results"]:
        assert result["all_rows_full_length"] and result["rows_equal_to_plain"] == 2
        assert result["fraction_of_bound"] > 0 and result["decode_tokens_per_s"] > 0
    assert report["fp32_exactness"]["rows_equal"] == report["fp32_exactness"]["rows"] == 8


def test_gpu_benchmark_cpu_variant_on_the_embedded_model(embedded_model_dir):
    bench = generation_benchmark()
    report = bench.run_benchmark(
        device="cpu", tiny=False, batch_sizes=[2], prompt_tokens=16, new_tokens=6, compile=False,
        continuous=False, bandwidth_gib=0.01, arms=["plain", "engine"], model_dir=str(embedded_model_dir),
    )  # fmt: skip
    assert report["model"] == str(embedded_model_dir)
    assert [r["method"] for r in report["results"]] == ["plain", "engine"]
    assert all(r["rows_equal_to_plain"] == 2 for r in report["results"])


@pytest.mark.model
@pytest.mark.parametrize("window", [16, 512])
def test_sliding_window_model_equals_plain_generate(tmp_path, window):
    """Gemma 3 mixes sliding-window and global layers. A window shorter than prompt + answer (16) sends
    greedy batches through ``generate`` with its sliding caches; a window that covers them (512) lets
    the engine's loop cache every layer in full, which attends exactly as the window would."""
    from transformers import AutoConfig

    from af_tasks.engine.tiny import build_tiny_gemma3

    directory = build_tiny_gemma3(tmp_path / "gemma", num_layers=4)
    config = AutoConfig.from_pretrained(directory)
    config.sliding_window = window
    config.save_pretrained(directory)
    engine = GenerationEngine.load(str(directory), device="cpu")
    width = max(len(prompt) for prompt in engine.encode(CHATS))
    assert engine._full_cache_fits(width, SamplingParams(max_new_tokens=NEW_TOKENS)) == (window == 512)
    references = [plain_generate(engine.model, engine.tokenizer, chat) for chat in CHATS]
    completions = engine.generate(CHATS, SamplingParams(max_new_tokens=NEW_TOKENS))
    assert_matches_reference(completions, references, engine.eos_ids)


def test_the_decode_path_passes_the_cache_without_deprecated_arguments(tiny_organism):
    """transformers deprecates ``past_key_values=`` in ``forward`` (removal in 5.40): the engine's own
    loop, static and dynamic cache alike, raises no deprecation warning and still matches itself."""
    import warnings

    from af_tasks.engine.generate import cache_keyword

    engine = GenerationEngine.load(str(tiny_organism), device="cpu")
    assert cache_keyword(engine.model) in ("cache", "past_key_values")
    for cache in ("dynamic", "static"):
        engine.cache = cache
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            engine.generate(CHATS[:2], SamplingParams(max_new_tokens=4))
        deprecations = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
        assert not deprecations, deprecations


def test_a_compiled_decode_step_may_meet_more_shapes_than_dynamo_allows_by_default(tiny_llama_dir):
    """The decode step is compiled with ``fullgraph=True, dynamic=False``: every (batch bucket, cache
    length) is a graph of its own. Dynamo's default limit (8 graphs) ended the retention experiment's
    long-lived process on a GPU with FailOnRecompileLimitHit; building the engine's step raises it."""
    import torch
    import torch._dynamo
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from af_tasks.engine.shapes import SHAPE_GRAPHS

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    config = torch._dynamo.config
    saved = config.recompile_limit
    try:
        config.recompile_limit = 8
        engine = GenerationEngine(model, tokenizer, "tiny", cache="static", compile=True)
        engine._decode_step()
        assert config.recompile_limit >= SHAPE_GRAPHS
        step = torch.compile(lambda x: x * 2, fullgraph=True, dynamic=False, backend="eager")
        for rows in range(1, 13):  # twelve shapes, as a process meets batch buckets × prompt widths
            step(torch.ones(rows, 3))
    finally:
        config.recompile_limit = saved
        torch._dynamo.reset()


@pytest.mark.slow
def test_inspect_sampling_through_organism_is_seeded_per_request(embedded_model_dir, tmp_path):
    """Sampling through ``organism/`` with ``--seed`` and two epochs: a rerun gives every sample the
    same completions (whatever order its requests reached the engine in), and the two epochs of one
    sample draw different ones."""

    def run(index: int) -> dict[tuple[int, int], str]:
        [log] = inspect_eval(
            Task(
                dataset=[Sample(input=_messages(chat), id=i + 1) for i, chat in enumerate(CHATS[:2])],
                solver=generate(),
            ),
            model=f"organism/{embedded_model_dir}",
            model_args={"device": "cpu"},
            temperature=1.0,
            top_p=0.95,
            seed=7,
            epochs=2,
            max_tokens=12,
            log_dir=str(tmp_path / str(index)),
            display="none",
        )
        assert log.status == "success", log.error
        return {(s.id, s.epoch): s.output.completion for s in log.samples}

    first, second = run(0), run(1)
    assert first == second
    assert first[(1, 1)] != first[(1, 2)] or first[(2, 1)] != first[(2, 2)]
