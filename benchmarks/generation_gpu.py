"""Decoding speed at 7B: plain HF ``generate`` vs the suite's engine (``af_tasks.engine.generate``), against the HBM bound.

The Mistral-7B architecture (``af_tasks.core.presets``) with random weights in bf16 (same compute and memory traffic
as the real model; no download). Prompts are random token ids (``--prompt-tokens``), every row decodes
exactly ``--new-tokens`` greedy tokens (EOS suppressed with ``min_new_tokens``), at each batch size:

- ``plain``: ``model.generate`` with its defaults (dynamic cache, eager forward);
- ``engine``: ``GenerationEngine.generate_ids`` (its own greedy loop over a static cache, decode step
  compiled with CUDA graphs, grouped-KV decode attention);
- ``engine-generate``: the engine's previous path, ``model.generate`` with a static cache and
  transformers' compiled decode step (``own_loop=False, grouped_decode=False``);
- ``generate+grouped``: that path with the grouped-KV decode attention (``own_loop=False``);
- ``continuous`` (``--continuous``): transformers' continuous batching, ``model.generate_batch``.

Each is run once to warm up (compilation, CUDA graph capture), then timed twice: the full run and a
prefill-only run (one new token), so decode speed = rows x (new - 1) tokens / (full - prefill). The
bound: decoding one step reads every weight once, so at batch B it is ``B x bandwidth / weight bytes``
tokens/s, with the bandwidth measured by a large device-to-device copy (read + write bytes / time).
Prints a table and writes JSON naming the GPU.

    PYTHONPATH=. python benchmarks/generation_gpu.py --out generation_gpu.json [--continuous]  # GPU machine
    python benchmarks/generation_gpu.py --device cpu --tiny --batch-sizes 1,4 --prompt-tokens 32 \
        --new-tokens 16 --out /tmp/g.json                                # CPU check (suite installed)
    python benchmarks/generation_gpu.py --device cpu --model-dir models/smollm2-135m-instruct \
        --batch-sizes 1,8 --prompt-tokens 128 --new-tokens 32 --arms plain,engine --out g.json  # embedded, CPU

``--profile`` adds a ``torch.profiler`` trace of one engine run at the largest batch: where device
time goes (top kernels) and how busy the GPU was. ``--check-fp32`` first runs a 2-layer random Llama
with grouped KV heads in float32 on the device through plain ``generate`` and the compiled engine and
records whether every row's tokens are equal (in bf16 they need not be).

``--devices 0,1`` instead compares data parallelism over devices (what ``-M devices=0,1`` of the
``organism/`` provider does): one engine replica per device, each fed by its own worker thread, on
``devices x --batch-sizes[-1]`` prompts (batches of that size): the 1-device arm decodes every batch on
the first device, the N-device arm one batch per device at once. Throughput (median of ``--repeats``
timed runs after a warm-up, with min and max), scaling factor and whether every row's tokens agree
between the arms; ``--devices cpu,cpu --tiny`` checks the plumbing on CPU.

    PYTHONPATH=. python benchmarks/generation_gpu.py --devices 0,1 --batch-sizes 32 --out gen_2gpu.json

(``PYTHONPATH=.`` where the suite is not installed: the GPU machine has torch + transformers only.)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from af_tasks.engine.tiny import TINY_LLAMA

TINY_ARCHITECTURE = dict(model_type="llama", vocab_size=384, **TINY_LLAMA)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build_model(device: str, tiny: bool, dtype=None, **overrides: Any):
    """The preset's architecture (or a 2-layer Llama with ``tiny``), random weights; bf16 on CUDA.
    ``overrides`` replace architecture fields (e.g. ``vocab_size`` for a real tokenizer's)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.presets import get_preset

    architecture = TINY_ARCHITECTURE if tiny else get_preset("mistral-7b").architecture
    config = AutoConfig.for_model(**(architecture | overrides))
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    return model


def weight_bytes(model) -> int:
    """Bytes of all parameters (tied weights once): what one decoding step reads."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def copy_bandwidth(device: str, gib: float, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy (each byte read once and written once)."""
    import torch

    size = int(gib * 2**30)
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        target.copy_(source)
    synchronize(device)
    elapsed = time.perf_counter() - started
    del source, target
    return 2 * size * repeats / elapsed


def matmul_peak(device: str, size: int = 8192, repeats: int = 20) -> float:
    """FLOP/s of a large matrix product on random data (bf16 on the GPU: the tensor-core ceiling as
    measured; on the CPU smoke run a small fp32 one, only so the columns fill)."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def random_prompts(batch: int, length: int, vocab: int, special: set[int], seed: int) -> list[list[int]]:
    """Token ids drawn uniformly, avoiding special tokens (pad / EOS) so no row looks padded or ended."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    for token in special:
        ids[ids == token] = (token + 1) % vocab
    return ids.tolist()


def plain_runner(model, tokenizer, device: str) -> Callable[[list[list[int]], int], list[list[int]]]:
    """``model.generate`` on equal-length prompts (no padding), its default cache, no compilation."""
    import torch

    def run(prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        input_ids = torch.tensor(prompts, device=device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                disable_compile=True,
            )
        return out[:, input_ids.shape[1] :].tolist()

    return run


def engine_runner(engine) -> Callable[[list[list[int]], int], list[list[int]]]:
    from af_tasks.engine.generate import SamplingParams

    def run(prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        params = SamplingParams(max_new_tokens=new_tokens, greedy=True, ignore_eos=True)
        return [completion.token_ids for completion in engine.generate_ids(prompts, params)]

    return run


def profile_run(run: Callable[[list[list[int]], int], list[list[int]]], prompts, new_tokens: int) -> dict:
    """One (warm) run under ``torch.profiler``, summarised (``benchmarks.profiling``)."""
    from benchmarks.profiling import profile_call

    run(prompts, new_tokens)
    _, summary = profile_call(lambda: run(prompts, new_tokens))
    return {"batch": len(prompts)} | summary


def fp32_exactness(device: str, tokenizer) -> dict:
    """The compiled engine vs plain ``generate`` on a tiny grouped-KV Llama in float32 on ``device``."""
    import torch

    from af_tasks.engine.generate import GenerationEngine

    model = build_model(device, tiny=True, dtype=torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    prompts = random_prompts(8, 48, 384, special, seed=7)
    prompts = [p[: 16 + 4 * i] for i, p in enumerate(prompts)]  # uneven lengths: left padding
    engine = GenerationEngine(
        model, tokenizer, "tiny fp32", cache="static", compile=device.startswith("cuda")
    )
    from af_tasks.engine.generate import SamplingParams

    params = SamplingParams(max_new_tokens=24, greedy=True)
    engine_rows = [c.token_ids for c in engine.generate_ids(prompts, params)]
    plain_rows = []
    for prompt in prompts:
        ids = torch.tensor([prompt], device=device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        row = out[0, len(prompt) :].tolist()
        end = next((i + 1 for i, t in enumerate(row) if t in engine.eos_ids), len(row))
        plain_rows.append(row[:end])
    return {
        "rows": len(prompts),
        "rows_equal": sum(a == b for a, b in zip(engine_rows, plain_rows, strict=True)),
        "grouped_decode_attention": engine.attention,
        "compiled": engine.compile,
    }


def continuous_runner(model, tokenizer) -> Callable[[list[list[int]], int], list[list[int]]]:
    """transformers' continuous batching (paged KV cache, its own scheduler)."""
    from transformers import GenerationConfig

    def run(prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        config = GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        outputs = model.generate_batch(inputs=prompts, generation_config=config)
        ordered = sorted(outputs.values(), key=lambda output: int(str(output.request_id).split("_")[-1]))
        return [list(output.generated_tokens) for output in ordered]

    return run


def measure(
    name: str,
    run: Callable[[list[list[int]], int], list[list[int]]],
    prompts: list[list[int]],
    new_tokens: int,
    device: str,
    bound_per_row: float,
) -> dict[str, Any]:
    import torch

    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    run(prompts, new_tokens)  # warm-up: compilation, graph capture, allocator
    synchronize(device)
    started = time.perf_counter()
    tokens = run(prompts, new_tokens)
    synchronize(device)
    full = time.perf_counter() - started
    started = time.perf_counter()
    run(prompts, 1)
    synchronize(device)
    prefill = time.perf_counter() - started
    batch = len(prompts)
    decode_tps = batch * (new_tokens - 1) / max(full - prefill, 1e-9)
    bound = bound_per_row * batch
    return {
        "method": name,
        "batch": batch,
        "prompt_tokens": len(prompts[0]),
        "new_tokens": new_tokens,
        "all_rows_full_length": all(len(row) == new_tokens for row in tokens),
        "seconds": full,
        "prefill_seconds": prefill,
        "tokens_per_s": batch * new_tokens / full,
        "decode_tokens_per_s": decode_tps,
        "bound_tokens_per_s": bound,
        "fraction_of_bound": decode_tps / bound,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if on_cuda else None,
        "tokens": tokens,
    }


def run_benchmark(
    device: str,
    tiny: bool,
    batch_sizes: list[int],
    prompt_tokens: int,
    new_tokens: int,
    compile: bool,
    continuous: bool,
    bandwidth_gib: float,
    profile: bool = False,
    check_fp32: bool = False,
    arms: list[str] | None = None,
    model_dir: str | None = None,
) -> dict[str, Any]:
    import torch
    import transformers

    from af_tasks.engine.generate import GenerationEngine
    from af_tasks.engine.tiny import train_tiny_tokenizer

    exactness = fp32_exactness(device, train_tiny_tokenizer(None, vocab_size=384)) if check_fp32 else None
    if model_dir is None:
        tokenizer = train_tiny_tokenizer(None, vocab_size=384 if tiny else 8192)
        model = build_model(device, tiny)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    else:  # a real checkpoint (the embedded model on CPU): its own weights, tokenizer and EOS ids
        loaded = GenerationEngine.load(model_dir, device=device)
        model, tokenizer = loaded.model, loaded.tokenizer
    tokenizer.padding_side = "left"
    vocab = min(len(tokenizer), model.config.vocab_size)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    variants = {  # engine arms: (own greedy loop, grouped decode attention); None = the engine's default
        "engine": (True, None),
        "engine-generate": (False, False),
        "generate+grouped": (False, True),
    }
    engines = {
        name: GenerationEngine(
            model,
            tokenizer,
            "weights",
            cache="static",
            compile=compile,
            own_loop=loop,
            grouped_decode=grouped,
        )
        for name, (loop, grouped) in variants.items()
    }
    engine = engines["engine"]
    bandwidth = copy_bandwidth(device, bandwidth_gib)
    weights = weight_bytes(model)
    bound_per_row = bandwidth / weights
    methods: dict[str, Callable] = {"plain": plain_runner(model, tokenizer, device)}
    methods |= {name: engine_runner(variant) for name, variant in engines.items()}
    if continuous:
        methods["continuous"] = continuous_runner(model, tokenizer)
    methods = {name: run for name, run in methods.items() if arms is None or name in arms}
    results: list[dict[str, Any]] = []
    for batch in batch_sizes:
        prompts = random_prompts(batch, prompt_tokens, vocab, special, seed=batch)
        for name, run in methods.items():
            try:
                results.append(measure(name, run, prompts, new_tokens, device, bound_per_row))
            except Exception as error:  # one arm failing (e.g. continuous batching) must not lose the rest
                results.append({"method": name, "batch": batch, "error": f"{type(error).__name__}: {error}"})
        by_method = {r["method"]: r for r in results if r["batch"] == batch and "tokens" in r}
        for r in by_method.values():
            if "plain" in by_method:
                plain_rows = by_method["plain"]["tokens"]
                r["rows_equal_to_plain"] = sum(a == b for a, b in zip(r["tokens"], plain_rows, strict=True))
    for r in results:
        r.pop("tokens", None)
    profiled = None
    if profile and device.startswith("cuda"):
        prompts = random_prompts(max(batch_sizes), prompt_tokens, vocab, special, seed=max(batch_sizes))
        profiled = profile_run(engine_runner(engine), prompts, new_tokens)
    return {
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "device": device,
        "model": model_dir or ("tiny llama (random)" if tiny else "mistral-7b architecture (random weights)"),
        "dtype": str(model.dtype),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "compile": compile,
        "weight_bytes": weights,
        "copy_bandwidth_gb_s": bandwidth / 1e9,
        "results": results,
        "fp32_exactness": exactness,
        "profile": profiled,
    }


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (and the values themselves)."""
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def device_names(devices: list[str]) -> list[str]:
    import torch

    return [torch.cuda.get_device_name(d) if d.startswith("cuda") else "cpu" for d in devices]


def run_devices_benchmark(
    devices: list[str],
    tiny: bool,
    batch: int,
    prompt_tokens: int,
    new_tokens: int,
    compile: bool,
    repeats: int = 3,
) -> dict[str, Any]:
    """1 device vs ``len(devices)`` devices on the same prompts (``devices`` batches of ``batch``): one
    engine replica (same seeded random weights) and one worker thread per device, as the provider."""
    from concurrent.futures import ThreadPoolExecutor

    import torch
    import transformers

    from af_tasks.engine.generate import GenerationEngine, SamplingParams
    from af_tasks.engine.tiny import train_tiny_tokenizer
    from af_tasks.solvers.replicas import on_device

    tokenizer = train_tiny_tokenizer(None, vocab_size=384 if tiny else 8192)
    engines = []
    for device in devices:
        model = build_model(device, tiny)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        engines.append(GenerationEngine(model, tokenizer, "weights", cache="static", compile=compile))
    if compile and len(engines) > 1:
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 8 * len(engines))
    vocab = min(len(tokenizer), engines[0].model.config.vocab_size)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id}
    batches = [
        random_prompts(batch, prompt_tokens, vocab, special, seed=batch + i) for i in range(len(devices))
    ]
    params = SamplingParams(max_new_tokens=new_tokens, greedy=True, ignore_eos=True)
    workers = [ThreadPoolExecutor(1, thread_name_prefix=f"replica-{i}") for i in range(len(devices))]

    def decode(engine, prompts):
        return [c.token_ids for c in engine.generate_ids(prompts, params)]

    runs = [on_device(engine, decode) for engine in engines]

    def one_device() -> list:
        return [workers[0].submit(runs[0], engines[0], prompts).result() for prompts in batches]

    def all_devices() -> list:
        futures = [workers[i].submit(runs[i], engines[i], prompts) for i, prompts in enumerate(batches)]
        return [future.result() for future in futures]

    def synchronize_all() -> None:
        for device in devices:
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)

    for i in range(len(devices)):  # warm-up each replica on its own thread (compilation, graph capture)
        workers[i].submit(runs[i], engines[i], batches[i]).result()
    tokens = batch * len(devices) * new_tokens
    arms: dict[str, Any] = {}
    outputs: dict[str, list] = {}
    firsts: dict[str, list] = {}
    for name, arm in (("1_device", one_device), (f"{len(devices)}_devices", all_devices)):
        seconds = []
        for _ in range(repeats):
            synchronize_all()
            started = time.perf_counter()
            outputs[name] = arm()
            synchronize_all()
            seconds.append(time.perf_counter() - started)
            firsts.setdefault(name, outputs[name])
        arms[name] = {
            "devices": devices[:1] if name == "1_device" else devices,
            "seconds": spread(seconds),
            "tokens_per_s": spread([tokens / s for s in seconds]),
        }
    for worker in workers:
        worker.shutdown()
    one, many = outputs.values()
    rows = [row for rows in one for row in rows]
    rows_many = [row for rows in many for row in rows]
    rows_first = [row for rows in firsts["1_device"] for row in rows]
    weights_equal = [
        weights_fingerprint(engine.model) == weights_fingerprint(engines[0].model) for engine in engines
    ]
    return {
        "benchmark": "generation, data parallel over devices (engine replicas, as -M devices=...)",
        "gpus": device_names(devices),
        "devices": devices,
        "model": "tiny llama (random)" if tiny else "mistral-7b architecture (random weights)",
        "dtype": str(engines[0].model.dtype),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "compile": compile,
        "batch_per_device": batch,
        "prompts": batch * len(devices),
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "arms": arms,
        "scaling": arms[f"{len(devices)}_devices"]["tokens_per_s"]["median"]
        / arms["1_device"]["tokens_per_s"]["median"],
        "rows_equal_between_arms": sum(a == b for a, b in zip(rows, rows_many, strict=True)),
        "rows_equal_between_arms_per_batch": [
            sum(a == b for a, b in zip(x, y, strict=True)) for x, y in zip(one, many, strict=True)
        ],
        # the same device, first against last repeat: how repeatable greedy decoding is by itself
        "rows_equal_1_device_repeats": sum(a == b for a, b in zip(rows_first, rows, strict=True)),
        "replica_weights_equal_to_first": weights_equal,
        "rows": len(rows),
    }


def weights_fingerprint(model) -> list[tuple[str, float, float]]:
    """Per parameter: name, sum and sum of squares (float64): replicas built from one seed agree."""
    import torch

    with torch.no_grad():
        return [
            (name, float(p.double().sum()), float(p.double().square().sum()))
            for name, p in model.named_parameters()
        ]


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{report['gpu']}: {report['model']}, {report['weight_bytes'] / 2**30:.2f} GiB of weights, "
        f"copy bandwidth {report['copy_bandwidth_gb_s']:.0f} GB/s"
    )
    print(
        f"{'method':15} {'batch':>5} {'tok/s':>9} {'decode tok/s':>13} {'bound':>9} {'of bound':>8} "
        f"{'peak GiB':>9} {'=plain':>7}"
    )
    for r in report["results"]:
        if "error" in r:
            print(f"{r['method']:15} {r['batch']:>5}  error: {r['error'][:80]}")
            continue
        peak = f"{r['peak_memory_gib']:9.1f}" if r["peak_memory_gib"] is not None else f"{'-':>9}"
        print(
            f"{r['method']:15} {r['batch']:>5} {r['tokens_per_s']:9.0f} {r['decode_tokens_per_s']:13.0f} "
            f"{r['bound_tokens_per_s']:9.0f} {r['fraction_of_bound']:8.1%} {peak} "
            f"{r.get('rows_equal_to_plain', '-')!s:>7}"
        )
    if report.get("fp32_exactness"):
        check = report["fp32_exactness"]
        print(f"fp32 tiny model, engine vs plain generate: {check['rows_equal']}/{check['rows']} rows equal")
    if report.get("profile"):
        from benchmarks.profiling import print_summary

        print_summary(f"engine batch {report['profile']['batch']}", report["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer random Llama (CPU check of the script)"
    )
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true", help="engine without torch.compile")
    parser.add_argument("--continuous", action="store_true", help="also time transformers' generate_batch")
    parser.add_argument(
        "--bandwidth-gib", type=float, default=None, help="copy size (default 4 GiB, tiny 0.06)"
    )
    parser.add_argument(
        "--model-dir", help="a real model dir instead of random weights (e.g. the embedded one)"
    )
    parser.add_argument("--arms", help="comma-separated subset of the arms (default: all)")
    parser.add_argument("--profile", action="store_true", help="profile one engine run (largest batch)")
    parser.add_argument("--check-fp32", action="store_true", help="engine = plain on a tiny fp32 model")
    parser.add_argument("--out", default="generation_gpu.json")
    parser.add_argument("--devices", help="compare 1 device with these (0,1 or cpu,cpu): data parallel")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per arm with --devices")
    args = parser.parse_args()
    if args.devices:
        from af_tasks.core.devices import parse_devices

        devices = parse_devices(args.devices) or []
        report = run_devices_benchmark(
            devices,
            tiny=args.tiny,
            batch=int(args.batch_sizes.split(",")[-1]),
            prompt_tokens=args.prompt_tokens,
            new_tokens=args.new_tokens,
            compile=devices[0].startswith("cuda") and not args.no_compile,
            repeats=args.repeats,
        )
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        for name, arm in report["arms"].items():
            rate = arm["tokens_per_s"]
            print(f"{name:10} {rate['median']:9.0f} tok/s (min {rate['min']:.0f}, max {rate['max']:.0f})")
        print(
            f"{report['gpus']}: scaling {report['scaling']:.2f}x; rows equal between arms "
            f"{report['rows_equal_between_arms']}/{report['rows']}"
        )
        return
    on_cuda = args.device.startswith("cuda")
    report = run_benchmark(
        device=args.device,
        tiny=args.tiny,
        batch_sizes=[int(b) for b in args.batch_sizes.split(",")],
        prompt_tokens=args.prompt_tokens,
        new_tokens=args.new_tokens,
        compile=on_cuda and not args.no_compile,
        continuous=args.continuous,
        bandwidth_gib=args.bandwidth_gib or (0.0625 if args.tiny else 4.0),
        profile=args.profile,
        check_fp32=args.check_fp32,
        arms=args.arms.split(",") if args.arms else None,
        model_dir=args.model_dir,
    )
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


if __name__ == "__main__":
    main()
