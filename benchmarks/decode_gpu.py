"""Decode speed of the engine against the HBM bound, and a realistic evaluation workload (GPU).

The Mistral-7B architecture with random weights in bf16 (``generation_gpu.build_model``). Two sections:

- ``decode``: at each ``--batch-sizes`` (default 1 and 32), 512 random prompt tokens + 128 new tokens per
  row, every row full length (EOS suppressed). Arms: ``plain`` (``model.generate``), ``static`` (the
  engine's static batches, ``slots=False``: its greedy loop over a static cache), ``slots`` (continuous
  batching, ``af_tasks.engine.slots``, its defaults: FlexAttention up to 4 slots and the grouped
  Triton kernel above on CUDA, fused projections) greedy,
  ``slots-sampled`` (temperature 0.8, top-k 50, top-p 0.95, seeded), and the slot decoder without one
  of its defaults: ``slots-sdpa`` / ``slots-flex`` (one decode attention whatever the slot
  count; ``slots-varlen``, ``slots-grouped``: the flash or the grouped Triton kernel), ``slots-unfused``
  (separate projections). Decode tokens/s = rows x (new - 1) / (full run - prefill-only run). The bound counts the
  bytes one step must read: every weight once plus the KV cache of every row's context (its mean over
  the decode), at the bandwidth of a large device-to-device copy measured in the same run.
- ``workload``: ``--requests`` requests whose prompt and answer lengths are drawn (seeded, with
  replacement) from the scratchpad protocol's lengths (``benchmarks/data/workload_lengths.json``,
  ``workload_lengths.py``); each request ends at its drawn length (EOS suppressed until then). At each
  ``--concurrency``: ``static`` = today's static batching (consecutive batches of that many requests,
  each batch running until its longest row ends), ``slots`` = continuous batching with that many slots
  (``slots-serial``: finish flags read before the next chunk of steps is launched, not one chunk behind;
  other ``slots-*`` arms: ``WORKLOAD_SLOT_OPTIONS``);
  ``plain`` = ``model.generate`` batches on the first ``--plain-requests`` requests. Reported: answer
  tokens/s (tokens the requests asked for / wall time) and time to finish, and for arms that ran the
  whole workload the fraction of its roofline (``workload_roofline``: weights and K/V read at the copy
  bandwidth, FLOPs at a bf16 matrix product's rate, both measured in the same run).

Every arm is repeated ``--repeats`` times after a warm-up (interleaved within a section where memory
allows); figures are medians with min and max, ratios use medians. ``--profile`` adds a
``torch.profiler`` summary of one slots decode run per batch size, and of the ``slots`` workload arm
on its first ``--profile-requests`` requests per concurrency. The JSON names the GPU, driver,
library versions and the commit (``COMMIT`` in the environment).

    PYTHONPATH=. COMMIT=$(git rev-parse HEAD) python benchmarks/decode_gpu.py --out decode.json --profile
    python benchmarks/decode_gpu.py --device cpu --tiny --out /tmp/d.json        # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.generation_gpu import (
    build_model,
    copy_bandwidth,
    matmul_peak,
    plain_runner,
    random_prompts,
    synchronize,
    weight_bytes,
)

LENGTHS = Path(__file__).parent / "data" / "workload_lengths.json"
WORKLOAD_SLOT_OPTIONS: dict[str, dict[str, Any]] = {
    "slots": {},
    "slots-serial": {},
    "slots-noprefix": {"reuse_prefix": False},
    "slots-varlen": {"attention": "varlen"},
    "slots-sdpa": {"attention": "sdpa"},
    "slots-grouped": {"attention": "grouped"},
}
"""Workload arms that decode in slots, with their ``SlotDecoder`` options (defaults: prefix reuse on,
decode attention by slot count)."""
SERIAL_ARMS = frozenset({"slots-serial"})
"""Slot arms served with ``pipelined=False``: each chunk's finish flags read (and newcomers admitted)
before the next chunk is launched, the device idle meanwhile."""
SAMPLED = dict(temperature=0.8, top_k=50, top_p=0.95)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def machine(device: str) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "commit": os.environ.get("COMMIT", "unknown"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            info["driver"] = subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            info["driver"] = "unknown"
    return info


def kv_bytes_per_token(model) -> int:
    """Bytes of K and V for one token over all layers."""
    config = model.config.get_text_config(decoder=True)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = config.num_key_value_heads or config.num_attention_heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * model.lm_head.weight.element_size()


def timed(run: Callable[[], Any], device: str) -> float:
    synchronize(device)
    started = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - started


# ---- decode section --------------------------------------------------------------------------------


def decode_arms(model, tokenizer, device: str, compile: bool) -> dict[str, Callable]:
    """name -> run(prompts, new_tokens): each arm decodes every row to exactly ``new_tokens``."""

    from af_tasks.engine.generate import GenerationEngine, SamplingParams

    static = GenerationEngine(model, tokenizer, "static", cache="static", compile=compile, slots=False)

    def slot_engine(**options):
        return GenerationEngine(
            model, tokenizer, "slots", cache="static", compile=compile, slots=True, slot_options=options
        )

    slots = slot_engine()

    def through(engine, **sampling):
        def run(prompts, new_tokens):
            greedy = not sampling
            params = SamplingParams(
                max_new_tokens=new_tokens, greedy=greedy, ignore_eos=True, seed=0, **sampling
            )
            engine.generate_ids(prompts, params)

        return run

    return {
        "plain": plain_runner(model, tokenizer, device),
        "static": through(static),
        "slots": through(slots),
        "slots-sampled": through(slots, **SAMPLED),
        "slots-sdpa": through(slot_engine(attention="sdpa")),
        "slots-flex": through(slot_engine(attention="flex")),
        "slots-unfused": through(slot_engine(fuse=False)),
        "slots-varlen": through(slot_engine(attention="varlen")),
        "slots-grouped": through(slot_engine(attention="grouped")),
    }


class Rows(list):
    """Result rows that rewrite the JSON file each time one is added: a run cut off by its time limit
    keeps every arm it finished."""

    def __init__(self, result: dict[str, Any], out: Path):
        super().__init__()
        self.result, self.out = result, out
        result["rows"] = self

    def append(self, row: dict) -> None:
        super().append(row)
        self.out.write_text(json.dumps(self.result, indent=1) + "\n")


def decode_section(model, tokenizer, device, args, bandwidth: float, rows: Rows) -> None:
    arms = decode_arms(model, tokenizer, device, args.compile)
    arms = {name: run for name, run in arms.items() if name in args.arms}
    vocab = min(len(tokenizer), model.config.vocab_size)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    weights, per_token = weight_bytes(model), kv_bytes_per_token(model)
    for batch in args.batch_sizes:
        prompts = random_prompts(batch, args.prompt_tokens, vocab, special, seed=batch)
        full: dict[str, list[float]] = {name: [] for name in arms}
        prefill: dict[str, list[float]] = {name: [] for name in arms}
        warmup = {  # compilation (the first arm compiles into an empty cache) and graph capture
            name: timed(lambda run=run, given=prompts: (run(given, args.new_tokens), run(given, 1)), device)
            for name, run in arms.items()
        }
        for repeat in range(args.repeats):
            order = list(arms) if repeat % 2 == 0 else list(arms)[::-1]
            for name in order:
                run, given = arms[name], prompts
                full[name].append(timed(lambda run=run, given=given: run(given, args.new_tokens), device))
                prefill[name].append(timed(lambda run=run, given=given: run(given, 1), device))
        context = args.prompt_tokens + args.new_tokens / 2
        step_bytes = weights + batch * context * per_token
        bound = batch * bandwidth / step_bytes
        for name in arms:
            speeds = [
                batch * (args.new_tokens - 1) / (f - p)
                for f, p in zip(full[name], prefill[name], strict=True)
            ]
            row = {
                "section": "decode",
                "arm": name,
                "batch": batch,
                "decode_tokens_per_s": spread(speeds),
                "full_run_s": spread(full[name]),
                "prefill_s": spread(prefill[name]),
                "warmup_s": warmup[name],
                "bound_tokens_per_s": bound,
                "of_bound": statistics.median(speeds) / bound,
                "bound_weights_only_tokens_per_s": batch * bandwidth / weights,
                "step_bytes": step_bytes,
            }
            rows.append(row)
            print(
                f"decode batch {batch:>3} {name:<14} {row['decode_tokens_per_s']['median']:>9,.0f} tok/s "
                f"[{min(speeds):,.0f}-{max(speeds):,.0f}]  bound {bound:,.0f}  {row['of_bound']:.1%}",
                flush=True,
            )
        if args.profile and "slots" in arms and device.startswith("cuda"):
            summary = profiled(lambda run=arms["slots"], given=prompts: run(given, args.new_tokens))
            rows.append({"section": "profile", "arm": "slots", "batch": batch, **summary})


def synchronizing_calls(run: Callable[[], Any]) -> list[dict[str, Any]]:
    """Where ``run()`` made the host wait for the device, as PyTorch reports it
    (``torch.cuda.set_sync_debug_mode``: blocking copies, ``.item()``/``.tolist()`` of device tensors,
    stream and device synchronizations; not event waits), by source line, most frequent first."""
    import warnings
    from collections import Counter

    import torch

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    places = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    print(f"sync-check: {sum(places.values())} synchronizing calls {places.most_common(8)}", flush=True)
    return [{"where": where, "count": n} for where, n in places.most_common()]


def profiled(run: Callable[[], Any]) -> dict:
    """``run()`` under ``torch.profiler``: device-busy time against wall time and the top kernels."""
    from benchmarks.profiling import profile_call

    _, summary = profile_call(run)
    print(f"profile: {json.dumps(summary)[:2500]}", flush=True)
    return summary


# ---- check section ---------------------------------------------------------------------------------


def relative_error(value, reference) -> float:
    return float((value.float() - reference).abs().max() / reference.abs().max())


def check_section(model, device: str, rows: Rows, slots: int = 32, max_len: int = 1536) -> None:
    """How far the GPU paths that CPU tests cannot run are from exact arithmetic, beside the error of
    the path they replace: (1) the per-row flash decode kernel vs attention in fp32, with the slots'
    masked bf16 SDPA for scale; (2) a slot cache filled with a reused 632-token prefix vs a whole
    prefill, in fp32 (the logic: rounding only) and in bf16 beside a bf16 whole prefill (the scale:
    bf16's own distance from fp32); (3) serving as on CUDA (asynchronous copies, flags read a chunk
    behind, compiled step replayed as CUDA graphs, the cache grown after graphs were captured) against
    serial eager serving, completion for completion."""
    import torch
    from transformers import AutoModelForCausalLM

    from af_tasks.engine.slots import SlotDecoder, SlotRequest, decode_all

    config = model.config.get_text_config(decoder=True)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    dim = config.hidden_size // heads
    generator = torch.Generator(device=device).manual_seed(0)

    def normal(*shape):
        return torch.randn(*shape, generator=generator, device=device, dtype=torch.bfloat16)

    query, keys, values = (
        normal(slots, heads, 1, dim),
        normal(slots, kv_heads, max_len, dim),
        normal(slots, kv_heads, max_len, dim),
    )
    used = torch.randint(1, max_len + 1, (slots,), generator=generator, device=device)
    scale = dim**-0.5
    groups = heads // kv_heads
    reference = torch.stack(
        [
            torch.nn.functional.scaled_dot_product_attention(
                query[r].float(),
                keys[r, :, : used[r]].float().repeat_interleave(groups, 0),
                values[r, :, : used[r]].float().repeat_interleave(groups, 0),
                scale=scale,
            )[:, 0]
            for r in range(slots)
        ]
    )
    kernels = attention_kernels(query, keys, values, used, scale, variants=False)
    grouped: Any = "not available here (needs Triton, sm80+, half precision)"
    if "grouped" in kernels:
        try:
            grouped = relative_error(kernels["grouped"](), reference)
        except Exception as error:  # noqa: BLE001 - recorded; the other checks still run
            grouped = f"failed: {error!r}"
    row = {
        "section": "check",
        "what": "decode attention, relative max error vs fp32",
        "varlen_kernel": relative_error(kernels["varlen"](), reference),
        "grouped_kernel": grouped,
        "sdpa_bf16": relative_error(kernels["sdpa"](), reference),
    }
    rows.append(row)
    print(json.dumps(row), flush=True)

    lengths = json.loads(LENGTHS.read_text())
    shallow = type(config).from_dict({**config.to_dict(), "num_hidden_layers": 4})
    with torch.device(device):
        exact = AutoModelForCausalLM.from_config(shallow, dtype=torch.float32).eval()  # 7B widths, 4 layers
        half = AutoModelForCausalLM.from_config(shallow, dtype=model.dtype).eval()
    half.load_state_dict(exact.state_dict())  # not .to(dtype): that also rounds the rotary frequencies
    torch.manual_seed(1)
    shared = torch.randint(10, shallow.vocab_size, (lengths["shared_prefix_tokens"],)).tolist()
    prompts = [shared + torch.randint(10, shallow.vocab_size, (n,)).tolist() for n in (140, 151, 9, 160)]
    caches = {}
    for name, which, reuse in (
        ("exact", exact, False),
        ("exact_reused", exact, True),
        ("half", half, False),
        ("half_reused", half, True),
    ):
        decoder = SlotDecoder(which, slots=4, max_len=1024, eos_ids=[0], pad_id=0, reuse_prefix=reuse)
        with torch.inference_mode():
            decoder.admit([(slot, SlotRequest(tuple(p), 2)) for slot, p in enumerate(prompts)])
        caches[name] = [decoder.keys[-1].clone(), decoder.values[-1].clone()]
        del decoder
    row = {
        "section": "check",
        "what": "last layer's K/V over each prompt (Mistral-7B widths, 4 layers), relative max error vs fp32 whole prefill",
    }
    for name in ("exact_reused", "half", "half_reused"):
        row[name] = max(
            relative_error(caches[name][i][slot, :, : len(p)], caches["exact"][i][slot, :, : len(p)].float())
            for i in range(2)
            for slot, p in enumerate(prompts)
        )
    rows.append(row)
    print(json.dumps(row), flush=True)

    draw = random.Random(2)  # (3) serving as on CUDA (compiled step as CUDA graphs, flags read a chunk
    # behind, the cache grown mid-decode after graphs were captured) vs serial eager serving
    short = [SlotRequest(tuple(prompts[i % 4][632:]), draw.randint(100, 140)) for i in range(16)]
    mixed = [
        SlotRequest(tuple(shared[: draw.choice((0, 632))] + prompts[i % 4][632:]), draw.randint(1, 60))
        for i in range(32)
    ]
    requests = short + mixed  # short prompts first: the cache starts at 256 positions and grows twice
    completions, grown = {}, {}
    for name, compile_, pipelined in (
        ("serial", False, False),
        ("pipelined", False, True),
        ("graphs", True, True),
    ):
        decoder = SlotDecoder(exact, slots=8, max_len=1, eos_ids=[0], pad_id=0, compile=compile_)
        with torch.inference_mode():
            completions[name] = [r.tokens for r in decode_all(decoder, requests, pipelined)]
        grown[name] = decoder.max_len
        del decoder
    row = {
        "section": "check",
        "what": "48 greedy requests through 8 slots (fp32, 4 layers): completions equal to serial eager serving",
        "requests": len(requests),
        "tokens": sum(len(c) for c in completions["serial"]),
        "cache_positions_at_end": grown,
    }
    for name in ("pipelined", "graphs"):
        row[f"identical_{name}"] = sum(
            a == b for a, b in zip(completions["serial"], completions[name], strict=True)
        )
    rows.append(row)
    print(json.dumps(row), flush=True)
    del exact, half


# ---- attention section -----------------------------------------------------------------------------


def attention_section(model, device: str, args, bandwidth: float, rows: Rows) -> None:
    """The decode attention alone, one layer's call at the model's head shapes, per slot count: each
    row's cache used up to a length drawn as in the workload (prompt 775 + an answer part way: uniform
    775-1,372 positions; 1,024 at one slot) in a cache of 1,536. Time per call (``time_calls``: replayed
    as one CUDA graph, as inside the decode step) against the time to read the used K/V once at the
    copy bandwidth; the grouped kernel also at other key blocks and program counts."""
    import torch

    config = model.config.get_text_config(decoder=True)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    dim = config.hidden_size // heads
    dtype, max_len, scale = model.dtype, 1536, dim**-0.5
    generator = torch.Generator(device=device).manual_seed(0)
    for slots in args.attention_slots:
        query = torch.randn(slots, heads, 1, dim, generator=generator, device=device, dtype=dtype)
        keys = torch.randn(slots, kv_heads, max_len, dim, generator=generator, device=device, dtype=dtype)
        values = torch.randn_like(keys)
        used = (
            torch.full((slots,), 1024, device=device)
            if slots == 1
            else torch.randint(775, 1373, (slots,), generator=generator, device=device)
        )
        kernels = attention_kernels(query, keys, values, used, scale)
        read = int(used.sum()) * kv_heads * dim * 2 * keys.element_size()  # K and V of the used positions
        bound = read / bandwidth
        for name, call in kernels.items():
            try:
                times, timing = time_calls(call)
            except Exception as error:  # noqa: BLE001 - one kernel that fails to build must not lose the rest
                rows.append({"section": "attention", "kernel": name, "slots": slots, "error": repr(error)})
                print(f"attention {slots:>3} slots {name:<8} failed: {error!r}", flush=True)
                continue
            row = {
                "section": "attention",
                "kernel": name,
                "slots": slots,
                "used_positions": int(used.sum()),
                "seconds": spread(times),
                "timing": timing,
                "bound_s": bound,
                "of_bound": bound / statistics.median(times),
            }
            rows.append(row)
            print(
                f"attention {slots:>3} slots {name:<8} {statistics.median(times) * 1e6:8.1f} us "
                f"(bound {bound * 1e6:7.1f} us: {row['of_bound']:.0%}; {timing})",
                flush=True,
            )


ATTENTION_CALLS = 20
ATTENTION_REPEATS = 7


def time_calls(call: Callable[[], Any]) -> tuple[list[float], str]:
    """Seconds per call of ``call`` on the GPU, and how they were taken: ``ATTENTION_CALLS`` back-to-back
    calls captured as one CUDA graph (how the decode step runs them: kernel time without the host's
    launch cost, which at few slots is most of an eager call), replayed ``ATTENTION_REPEATS`` times
    between CUDA events, after warm-up calls; ``eager`` where the call cannot be captured."""
    import torch

    side = torch.cuda.Stream()  # warm-up (Triton's compile, flash's workspace) off the capture stream
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(ATTENTION_CALLS):
                call()
        run, timing = graph.replay, "cuda graph"
    except Exception:  # noqa: BLE001 - timed eagerly instead, and said so
        torch.cuda.synchronize()

        def run() -> None:
            for _ in range(ATTENTION_CALLS):
                call()

        timing = "eager"
    run()
    times = []
    for _ in range(ATTENTION_REPEATS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / ATTENTION_CALLS)
    return times, timing


def attention_kernels(
    query, keys, values, used, scale: float, variants: bool = True
) -> dict[str, Callable[[], Any]]:
    """The decode attentions on these tensors (query [slots, heads, 1, d], the cache, ``used`` positions
    per slot), each returning [slots, heads, d]: varlen, masked SDPA over the whole cache, and grouped
    where Triton runs (with ``variants``, also at other key blocks and program counts)."""
    import torch

    from af_tasks.engine.decode_attention import (
        grouped_attention,
        grouped_available,
        grouped_programs,
        per_row_attention,
    )

    slots, heads, _, dim = query.shape
    kv_heads, max_len = keys.shape[1], keys.shape[2]
    mask = (torch.arange(max_len, device=query.device)[None, :] < used[:, None])[:, None, None, :]
    grouped_query = query.reshape(slots, kv_heads, heads // kv_heads, dim)
    kernels = {
        "varlen": lambda: per_row_attention(query, keys, values, used, max_len, scale),
        "sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(
            grouped_query, keys, values, attn_mask=mask, scale=scale
        ).reshape(slots, heads, dim),
    }
    if grouped_available(query.device, query.dtype):
        from af_tasks.engine.decode_attention import GROUPED_BLOCK, GROUPED_PROGRAMS_PER_SM

        programs = grouped_programs(query.device)
        kernels["grouped"] = lambda: grouped_attention(query, keys, values, used, max_len, scale, programs)
        if variants:
            per_sm = programs // GROUPED_PROGRAMS_PER_SM
            for block in (32, 64, 128):  # the kernel's two knobs around its defaults
                for factor in (1, 2, 4, 8, 16):
                    if (block, factor) == (GROUPED_BLOCK, GROUPED_PROGRAMS_PER_SM):
                        continue
                    kernels[f"grouped-b{block}-p{factor}"] = lambda b=block, p=factor * per_sm: (
                        grouped_attention(query, keys, values, used, max_len, scale, p, b)
                    )
    return kernels


# ---- workload section ------------------------------------------------------------------------------


def workload(requests: int, vocab: int, special: set[int], seed: int = 0, scale: float = 1.0):
    """(prompt ids, answer length) per request, lengths drawn from the protocol's distribution; every
    prompt starts with the same ``shared_prefix_tokens`` (the protocol's system prompt and template),
    then random tokens of its own."""
    lengths = json.loads(LENGTHS.read_text())
    draw = random.Random(seed)
    prompt_lengths = [max(1, int(draw.choice(lengths["prompt_tokens"]) * scale)) for _ in range(requests)]
    answers = [max(1, int(draw.choice(lengths["answer_tokens"]) * scale)) for _ in range(requests)]
    shared = min(int(lengths.get("shared_prefix_tokens", 0) * scale), min(prompt_lengths) - 1)
    pool = random_prompts(1, max(prompt_lengths) * 4, vocab, special, seed=seed + 1)[0]
    prefix, rest = pool[:shared], pool[shared:]
    prompts = []
    for index, length in enumerate(prompt_lengths):
        start = (index * 7) % (len(rest) - length)
        prompts.append(prefix + rest[start : start + length - shared])
    return prompts, answers


def workload_roofline(
    prompts: list[list[int]],
    answers: list[int],
    concurrency: int,
    shared_prefix: int,
    model_bytes: int,
    kv_bytes: int,
    parameters: int,
    bandwidth: float,
    flops: float,
) -> dict[str, float]:
    """The least time any engine could take for the workload on this GPU, a figure to hold measured times
    against. Prefill computes the shared prefix once and each prompt's own tokens and gives each
    request its first answer token; every later token is a decode step's, with no schedule better than
    every step full (``concurrency`` rows). A step reads the weights once (``model_bytes``: all but the
    input embedding table, of which it reads a row per token), and the row decoding its
    token j reads K/V for its prompt plus j positions. Decode takes at least the larger of its reads at
    ``bandwidth`` and its 2 FLOPs per parameter per token at ``flops``; prefill its 2N per token at
    ``flops`` (attention's FLOPs left out, so this stays a lower bound)."""
    decoded = sum(n - 1 for n in answers)
    steps = math.ceil(decoded / concurrency)
    cache_reads = kv_bytes * sum(
        (n - 1) * len(p) + n * (n - 1) // 2 for p, n in zip(prompts, answers, strict=True)
    )
    read_bytes = steps * model_bytes + cache_reads
    prefill_tokens = shared_prefix + sum(len(p) - shared_prefix for p in prompts)
    read_s = read_bytes / bandwidth
    decode_flops_s = 2 * parameters * decoded / flops
    prefill_s = 2 * parameters * prefill_tokens / flops
    return {
        "steps": steps,
        "weight_bytes_read": steps * model_bytes,
        "cache_bytes_read": cache_reads,
        "read_s": read_s,
        "decode_flops_s": decode_flops_s,
        "prefill_tokens": prefill_tokens,
        "prefill_s": prefill_s,
        "bound_s": max(read_s, decode_flops_s) + prefill_s,
    }


def workload_section(model, tokenizer, device, args, bandwidth: float, rows: Rows) -> None:
    import torch

    from af_tasks.engine.generate import GenerationEngine, SamplingParams
    from af_tasks.engine.prefixes import common_prefix
    from af_tasks.engine.slots import SlotRequest, decode_all

    vocab = min(len(tokenizer), model.config.vocab_size)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    prompts, answers = workload(args.requests, vocab, special, scale=args.length_scale)
    total = sum(answers)
    flops = matmul_peak(device, size=8192 if device.startswith("cuda") else 512)
    rows.append(
        {"section": "workload-lengths", "requests": len(prompts), "answer_tokens": total}
        | {"matmul_flops_per_s": flops}
    )
    table = model.get_input_embeddings().weight  # a step reads only its tokens' rows (unless tied)
    tied = any(table is p for p in model.get_output_embeddings().parameters())
    lookup = 0 if tied else table.numel()
    bounds = {
        concurrency: workload_roofline(
            prompts,
            answers,
            concurrency,
            common_prefix(prompts),
            weight_bytes(model) - lookup * table.element_size(),
            kv_bytes_per_token(model),
            sum(p.numel() for p in model.parameters()) - lookup,
            bandwidth,
            flops,
        )
        for concurrency in args.concurrency
    }
    for concurrency, bound in bounds.items():
        rows.append(
            {"section": "workload-roofline", "concurrency": concurrency, "requests": len(prompts)} | bound
        )

    def static_run(engine, concurrency, count=None):
        count = count or len(prompts)
        for start in range(0, count, concurrency):
            chunk = slice(start, min(start + concurrency, count))
            params = SamplingParams(max_new_tokens=max(answers[chunk]), greedy=True, ignore_eos=True)
            engine.generate_ids(prompts[chunk], params)

    def slots_run(engine, concurrency, count=None, pipelined=None):  # the decoder keeps its stored prefix
        count = count or len(prompts)
        requests = [SlotRequest(tuple(p), n, ignore_eos=True) for p, n in zip(prompts, answers, strict=True)]
        longest = max(len(p) + n for p, n in zip(prompts, answers, strict=True))
        decoder = engine.slot_decoder(concurrency, longest)
        with torch.inference_mode():
            decode_all(decoder, requests[:count], pipelined)

    def serial_run(engine, concurrency, count=None):
        slots_run(engine, concurrency, count, pipelined=False)

    def plain_run(_engine, concurrency, count=None):
        count = count or len(prompts)
        for start in range(0, count, concurrency):
            chunk = list(range(start, min(start + concurrency, count)))
            width = max(len(prompts[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, device=device)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(chunk):
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i], device=device)
                mask[row, width - len(prompts[i]) :] = 1
            most = max(answers[i] for i in chunk)
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=most,
                    min_new_tokens=most,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    disable_compile=True,
                )

    runners = {"static": static_run, "plain": plain_run, **{name: serial_run for name in SERIAL_ARMS}}
    for concurrency in args.concurrency:
        for name in args.workload_arms:
            if name == "plain" and concurrency not in args.plain_concurrency:
                continue
            count = args.plain_requests if name == "plain" else len(prompts)
            options = WORKLOAD_SLOT_OPTIONS.get(name)
            engine = GenerationEngine(
                model,
                tokenizer,
                name,
                cache="static",
                compile=args.compile,
                slots=options is not None,
                slot_options=options,
            )
            try:
                call = runners.get(name, slots_run)
                first = min(concurrency, count)  # warm-up: compilation, graph capture, one batch of requests
                warmup = timed(lambda c=call, e=engine, n=concurrency, k=first: c(e, n, k), device)
                times = [
                    timed(lambda c=call, e=engine, n=concurrency, k=count: c(e, n, k), device)
                    for _ in range(args.repeats)
                ]
                if args.sync_check and name in ("slots", *SERIAL_ARMS) and device.startswith("cuda"):
                    some = min(count, 2 * concurrency)
                    calls = synchronizing_calls(lambda c=call, e=engine, n=concurrency, k=some: c(e, n, k))
                    rows.append(
                        {"section": "sync-check", "arm": name, "concurrency": concurrency, "requests": some}
                        | {"calls": calls}
                    )
                if args.profile and name == "slots" and device.startswith("cuda"):  # graphs already captured
                    some = min(count, args.profile_requests)
                    summary = profiled(lambda e=engine, n=concurrency, k=some: slots_run(e, n, k))
                    rows.append(
                        {
                            "section": "profile",
                            "arm": name,
                            "concurrency": concurrency,
                            "requests": some,
                            **summary,
                        }
                    )
            except Exception as error:  # noqa: BLE001 - one arm (e.g. out of memory) must not lose the rest
                rows.append(
                    {"section": "workload", "arm": name, "concurrency": concurrency, "error": repr(error)}
                )
                print(f"workload {name} c={concurrency}: {error!r}", flush=True)
                continue
            finally:
                del engine
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()  # the next arm gets the memory back (static at 256 met OOM without)
            tokens = sum(answers[:count])
            speeds = [tokens / t for t in times]
            whole = count == len(prompts)  # the roofline is the whole workload's
            rows.append(
                {
                    "section": "workload",
                    "arm": name,
                    "concurrency": concurrency,
                    "requests": count,
                    "answer_tokens": tokens,
                    "prompt_tokens": sum(len(p) for p in prompts[:count]),
                    "slot_options": options,
                    "tokens_per_s": spread(speeds),
                    "time_s": spread(times),
                    "warmup_s": warmup,
                }
                | (
                    {"of_roofline": bounds[concurrency]["bound_s"] / statistics.median(times)}
                    if whole
                    else {}
                )
            )
            print(
                f"workload c={concurrency:>3} {name:<14} {count} requests {statistics.median(times):7.1f} s "
                f"{statistics.median(speeds):>9,.0f} tok/s [{min(speeds):,.0f}-{max(speeds):,.0f}]"
                + (
                    f" {bounds[concurrency]['bound_s'] / statistics.median(times):.0%} of roofline"
                    if whole
                    else ""
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer random Llama (CPU smoke run)")
    parser.add_argument("--sections", default="check,attention,decode,workload")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--arms", default="plain,static,slots,slots-sampled,slots-sdpa,slots-unfused")
    parser.add_argument("--concurrency", default="32,128,256")
    parser.add_argument("--attention-slots", default="1,32,64,128,256")
    parser.add_argument("--workload-arms", default="static,slots,slots-noprefix,slots-varlen,plain")
    parser.add_argument("--plain-concurrency", default="32")
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--plain-requests", type=int, default=64)
    parser.add_argument("--length-scale", type=float, default=1.0, help="scale drawn lengths (smoke runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bandwidth-gib", type=float, default=4.0)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--sync-check", action="store_true", help="list where a slots workload run waits for the device"
    )
    parser.add_argument(
        "--profile-requests", type=int, default=256, help="workload requests under the profiler"
    )
    args = parser.parse_args()
    for name in ("batch_sizes", "concurrency", "plain_concurrency", "attention_slots"):
        setattr(args, name, [int(v) for v in getattr(args, name).split(",") if v])
    args.arms = args.arms.split(",")
    args.workload_arms = args.workload_arms.split(",")
    if not args.device.startswith("cuda"):
        args.compile = False
    from af_tasks.engine.tiny import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(None, vocab_size=384 if args.tiny else 8192)
    model = build_model(args.device, args.tiny)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    bandwidth = copy_bandwidth(args.device, args.bandwidth_gib)
    result: dict[str, Any] = {
        "machine": machine(args.device),
        "model": "tiny llama" if args.tiny else "mistral-7b architecture, random weights, bf16",
        "copy_bandwidth_bytes_per_s": bandwidth,
        "weight_bytes": weight_bytes(model),
        "kv_bytes_per_token": kv_bytes_per_token(model),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    rows = Rows(result, args.out)
    print(json.dumps(result["machine"]), f"copy {bandwidth / 1e9:,.0f} GB/s", flush=True)
    sections = args.sections.split(",")
    if "check" in sections:
        check_section(model, args.device, rows)
    if "attention" in sections and args.device.startswith("cuda"):
        attention_section(model, args.device, args, bandwidth, rows)
    if "decode" in sections:
        decode_section(model, tokenizer, args.device, args, bandwidth, rows)
    if "workload" in sections:
        workload_section(model, tokenizer, args.device, args, bandwidth, rows)


if __name__ == "__main__":
    main()
