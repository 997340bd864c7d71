"""SAE feature extraction for the 7B–27B presets at their real architectures, random weights (GPU).

For each preset: the model (bf16) with random weights, and a sae-lens top-k SAE with random weights
of the preset SAE's size at the preset's hook. Checks that the captured hook equals
``output_hidden_states`` at that point, then times the suite's own path (``af_tasks.sae.activations``:
forward stopped after the hooked layer, reasoning-span selection, SAE encode and pooling on the
GPU; top-k SAEs through the sparse path, ``encoder(sae, sparse=True)``) on seed-set scratchpads.
Prints a table and writes JSON. ``--profile`` runs one more pass per preset under ``torch.profiler``
and prints the ops that take the most GPU time. Needs CUDA.

    python benchmarks/sae_extraction_gpu.py --out results.json [--presets mistral-7b,llama-3-8b,qwen-8b]

``--devices 0,1`` instead compares data parallelism over devices (``af sae ... --devices``,
``af_tasks.sae.parallel``) for the first preset: one model replica per device and a random top-k SAE
of the preset's size in plain torch (no sae-lens needed), the texts split across the replicas. It times
1 device vs all (median of ``--repeats`` passes after a warm-up, with min and max), gives the scaling
factor and checks that the pooled features are equal. ``--devices cpu,cpu --tiny`` checks it on CPU.

    PYTHONPATH=. python benchmarks/sae_extraction_gpu.py --devices 0,1 --presets mistral-7b --out sae_2gpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from af_tasks.engine.tiny import TINY_LLAMA

SAE_SHAPES = {
    "mistral-7b": (131_072, 128),
    "llama-3-8b": (131_072, 192),
    "qwen-8b": (65_536, 50),
    "gemma-3-27b-it": (16_384, None),
}
"""(features, k) of each preset's default SAE (tylercosgrove L16; EleutherAI 32x; Qwen-Scope W64K L0_50;
Gemma Scope 2 transcoder L40 16k, JumpReLU: k None)."""


def random_sae(d_in: int, d_sae: int, k: int | None, hook: str):
    """A sae-lens top-k SAE, or (k None) a JumpReLU transcoder, with random weights."""
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
    from sae_lens.saes.transcoder import JumpReLUTranscoder, JumpReLUTranscoderConfig

    if k is None:
        config = JumpReLUTranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=d_in, apply_b_dec_to_input=False, dtype="bfloat16", device="cuda"
        )
        config.metadata.hook_name = hook
        sae = JumpReLUTranscoder(config)
    else:
        config = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="bfloat16", device="cuda")
        config.metadata.hook_name = hook
        sae = TopKSAE(config)
    with torch.no_grad():
        for parameter in (sae.W_enc, sae.W_dec):
            parameter.normal_(0, d_in**-0.5)
        if k is None:
            sae.threshold.fill_(0.5)
    return sae


def reference_activation(model, encoded, point):
    """The hook's tensor from an independent source: ``output_hidden_states`` for the residual
    stream, the output of the norm in front of the MLP for ``hook_mlp_in``."""
    import torch

    from af_tasks.core.hooks import decoder_layers

    if point.kind == "hook_mlp_in":
        layer = decoder_layers(model)[point.layer]
        norm = getattr(layer, "pre_feedforward_layernorm", None) or layer.post_attention_layernorm
        captured = {}
        handle = norm.register_forward_hook(lambda _m, _a, out: captured.setdefault("x", out))
        try:
            with torch.no_grad():
                model(**encoded)
        finally:
            handle.remove()
        return captured["x"][0, 1:]
    with torch.no_grad():
        states = model(**encoded, output_hidden_states=True).hidden_states
    index = point.layer + (1 if point.kind == "hook_resid_post" else 0)
    return states[index][0, 1:]  # position 0 (attention sink) is never read


def extract(reader, hook: str, transforms: dict, max_tokens: int, batch_size: int, texts, stats=None):
    """The timed path: every token of ``texts`` at ``hook``, transformed and pooled."""
    from af_tasks.sae.activations import iter_token_activations, pool

    batches = iter_token_activations(reader, texts, [hook], "all", max_tokens, batch_size, stats)
    return pool(batches, len(texts), transforms=transforms)[hook]


def timed_pass(run: tuple, texts: list[str]):
    """(pooled, stats, seconds) of a pass over ``texts`` after a whole warm-up pass (kernel choices for
    every batch shape, SAE included)."""
    import torch

    from af_tasks.sae.activations import ExtractionStats

    extract(*run, texts)
    torch.cuda.synchronize()
    stats = ExtractionStats()
    started = time.perf_counter()
    pooled = extract(*run, texts, stats)
    torch.cuda.synchronize()
    return pooled, stats, time.perf_counter() - started


def print_profile(function, *args, rows: int = 15) -> None:
    """Runs ``function(*args)`` once under ``torch.profiler`` (CPU and CUDA) and prints the ops
    with the most self GPU time: where a steady-state pass spends the device's time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        function(*args)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=rows))


def fuse_kernels(reader):
    """Liger's fused Triton kernels (RMSNorm, SwiGLU, RoPE) patched into the reader's model, in place.

    Why measured: an eager bf16 forward spends about a quarter of a 7B extraction pass in the small
    elementwise kernels these fuse (``--profile``). Not exact (the benchmark records the relative change
    of the hooked activations), so the suite's extraction does not use it. CUDA only."""
    import torch

    if not str(reader.device).startswith("cuda") or not torch.cuda.is_available():
        raise RuntimeError("fused kernels need a CUDA GPU")
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as error:
        raise RuntimeError("fused kernels need the liger-kernel package: pip install liger-kernel") from error
    _apply_liger_kernel_to_instance(
        model=reader.model, rms_norm=True, swiglu=True, rope=True, fused_linear_cross_entropy=False
    )
    return reader


def run_preset(
    name: str,
    texts: list[str],
    tokenizer,
    batch_size: int,
    max_tokens: int,
    profile: bool = False,
    fused: bool = False,
) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.hooks import parse_hook
    from af_tasks.core.presets import get_preset
    from af_tasks.sae.activations import iter_token_activations
    from af_tasks.sae.reader import Reader
    from af_tasks.sae.saes import check_compatible, encoder, topk_k

    preset = get_preset(name)
    hook = preset.saes[0].hook
    config = AutoConfig.for_model(**preset.architecture)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    reader = Reader(model, tokenizer, name=f"{name} (random weights)", device="cuda")
    d_sae, k = SAE_SHAPES[name]
    sae = random_sae(reader.hidden_size, d_sae, k, hook)
    check_compatible(sae, hook, reader.hidden_size, reader.name, f"random {d_sae}-feature SAE")

    # Hook position: our capture vs an independent source at the same point, on one short text.
    point = parse_hook(hook)
    [batch] = list(iter_token_activations(reader, texts[:1], [hook], span="all", max_tokens=64))
    encoded = tokenizer(texts[:1], return_tensors="pt", truncation=True, max_length=64).to("cuda")
    reference = reference_activation(model, encoded, point)
    hook_matches = bool(torch.allclose(batch.acts[hook].float(), reference.float(), atol=1e-2, rtol=1e-2))

    transforms = {hook: encoder(sae, sparse=True)}
    run = (reader, hook, transforms, max_tokens, batch_size)
    torch.cuda.reset_peak_memory_stats()
    pooled, stats, elapsed = timed_pass(run, texts)
    peak = torch.cuda.max_memory_allocated() / 2**30
    # Where the time goes: the same pass with the dense encoder (every feature of every token pooled),
    # and without any SAE (the forward to the hooked layer, span selection and pooling of raw activations).
    comparison = {
        "dense_sae": (reader, hook, {hook: encoder(sae)}, max_tokens, batch_size),
        "no_sae": (reader, hook, {}, max_tokens, batch_size),
    }
    compared: dict[str, float] = {}
    for label, arm in comparison.items():
        _, arm_stats, arm_seconds = timed_pass(arm, texts)
        compared[f"{label}_tokens_per_s"] = arm_stats.tokens / arm_seconds
    if profile:
        print(f"--- {name}: one pass over {len(texts)} texts, by self GPU time")
        print_profile(extract, *run, texts)
    if fused:  # last: Liger patches the model in place
        fuse_kernels(reader)
        [fused_batch] = list(iter_token_activations(reader, texts[:1], [hook], span="all", max_tokens=64))
        error = (fused_batch.acts[hook].float() - batch.acts[hook].float()).norm() / batch.acts[
            hook
        ].float().norm()
        _, fused_stats, fused_seconds = timed_pass(run, texts)
        compared["fused_kernels_tokens_per_s"] = fused_stats.tokens / fused_seconds
        compared["fused_kernels_relative_error"] = float(error)
    result = {
        "preset": name,
        "hook": hook,
        "hook_matches_hidden_states": hook_matches,
        "d_model": reader.hidden_size,
        "layers_run": point.last_layer_needed + 1,
        "layers_total": reader.num_layers,
        "sae_features": d_sae,
        "sae_k": k,
        "sae_architecture": "jumprelu_transcoder" if k is None else "topk",
        "pooling_path": "dense" if topk_k(sae) is None else "sparse_topk",
        "texts": len(texts),
        "tokens": stats.tokens,
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "pooled_shape": list(pooled.mean.shape),
        "mean_active_features_per_text": float((pooled.max > 0).sum(1).mean()),
        "seconds": elapsed,
        "tokens_per_s": stats.tokens / elapsed,
        "peak_memory_gib": peak,
        **compared,
    }
    del model, sae, reader, transforms, run
    torch.cuda.empty_cache()
    return result


TINY_ARCHITECTURE = dict(model_type="llama", vocab_size=8192, **TINY_LLAMA)


def topk_encoder(d_in: int, d_sae: int, k: int, device: str, dtype):
    """A random top-k SAE encoder in plain torch (seeded: the same weights on every device), returning
    ``SparseFeatures`` as ``encoder(sae, sparse=True)`` does."""
    import torch

    from af_tasks.sae.saes import SparseFeatures

    generator = torch.Generator().manual_seed(0)
    w_enc = (torch.randn(d_in, d_sae, generator=generator) * d_in**-0.5).to(device=device, dtype=dtype)
    b_enc = torch.zeros(d_sae, device=device, dtype=dtype)

    def encode(acts):
        values, indices = torch.topk(acts.to(dtype) @ w_enc + b_enc, k=k, dim=-1, sorted=False)
        return SparseFeatures(values.relu(), indices, d_sae)

    return encode


def run_devices(
    name: str,
    texts: list[str],
    tokenizer,
    devices: list[str],
    batch_size: int,
    max_tokens: int,
    repeats: int,
    tiny: bool,
) -> dict:
    """1 device vs ``devices``: the same texts, pooled SAE features and raw activations."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.presets import get_preset
    from af_tasks.sae.activations import ExtractionStats, TokenBatch, iter_token_activations, pool
    from af_tasks.sae.parallel import pool_on_replicas
    from af_tasks.sae.reader import Reader
    from benchmarks.generation_gpu import device_names, spread

    preset = get_preset(name)
    hook = "blocks.1.hook_resid_post" if tiny else preset.saes[0].hook
    d_sae, k = (512, 16) if tiny else SAE_SHAPES[name]
    k = k or 64  # a transcoder preset: timed as a top-k SAE of its width
    config = AutoConfig.for_model(**(TINY_ARCHITECTURE if tiny else preset.architecture))
    replicas = []
    for device in devices:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
        reader = Reader(model, tokenizer, name=f"{name} (random weights)", device=device)
        replicas.append((reader, topk_encoder(reader.hidden_size, d_sae, k, device, dtype)))

    def extract(replica: int, share: list[str], stats: ExtractionStats):
        reader, encode = replicas[replica]
        batches = iter_token_activations(reader, share, [hook], "all", max_tokens, batch_size, stats)
        both = (TokenBatch(acts={"sae": b.acts[hook], "raw": b.acts[hook]}, sample=b.sample) for b in batches)
        return pool(both, len(share), transforms={"sae": encode})

    def synchronize_all() -> None:
        for device in devices:
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)

    # Both arms are driven from a worker thread (the N-device arm's replicas run in threads of their
    # own): on CPU, torch ran this extraction several times slower from the main thread of a loaded
    # machine, which would flatter the N-device arm.
    driver = ThreadPoolExecutor(1)

    def run_arm(used: list[str], stats: ExtractionStats | None = None):
        return driver.submit(pool_on_replicas, extract, used, texts, batch_size, stats).result()

    arms, pooled, first = {}, {}, {}
    for label, used in (("1_device", devices[:1]), (f"{len(devices)}_devices", devices)):
        first[label] = run_arm(used)  # warm-up (kernel choices for every shape); kept: repeatability
        seconds, tokens = [], 0
        for _ in range(repeats):
            stats = ExtractionStats()
            synchronize_all()
            started = time.perf_counter()
            pooled[label] = run_arm(used, stats)
            synchronize_all()
            seconds.append(time.perf_counter() - started)
            tokens = stats.tokens
        rates = [tokens / s for s in seconds]
        arms[label] = {
            "devices": used,
            "tokens": tokens,
            "seconds": spread(seconds),
            "tokens_per_s": spread(rates),
        }
    one, many = pooled.values()
    names = [
        (part, stat)
        for part in ("sae", "raw")
        for stat in ("mean", "max", "last", "active_tokens", "n_tokens")
    ]

    def largest_difference(a: dict, b: dict) -> dict[str, float]:
        return {
            f"{part}.{stat}": float(
                np.abs(getattr(a[part], stat).astype(np.float64) - getattr(b[part], stat)).max()
            )
            for part, stat in names
        }

    equal = {
        f"{part}.{stat}": bool(np.array_equal(getattr(one[part], stat), getattr(many[part], stat)))
        for part, stat in names
    }
    return {
        "benchmark": "SAE extraction, data parallel over devices (af_tasks.sae.parallel)",
        "gpus": device_names(devices),
        "devices": devices,
        "preset": name,
        "model": "tiny llama (random)" if tiny else f"{name} architecture (random weights)",
        "hook": hook,
        "sae_features": d_sae,
        "sae_k": k,
        "texts": len(texts),
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "repeats": repeats,
        "torch": torch.__version__,
        "arms": arms,
        "scaling": arms[f"{len(devices)}_devices"]["tokens_per_s"]["median"]
        / arms["1_device"]["tokens_per_s"]["median"],
        "pooled_equal_between_arms": equal,
        "max_abs_difference_between_arms": largest_difference(one, many),
        # the same device twice: what a one-device run varies by itself (non-deterministic GPU kernels)
        "max_abs_difference_1_device_repeats": largest_difference(first["1_device"], one),
    }


def main() -> None:
    import torch

    from af_tasks.core.records import load_seed_set
    from af_tasks.engine.tiny import train_tiny_tokenizer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="mistral-7b,llama-3-8b,qwen-8b,gemma-3-27b-it")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="passes over the seed set's scratchpads")
    parser.add_argument("--out", default="sae_extraction_gpu.json")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one steady-state pass per preset (torch.profiler)",
    )
    parser.add_argument(
        "--fused-kernels", action="store_true", help="also time the sparse path with Liger's kernels (last)"
    )
    parser.add_argument("--devices", help="compare 1 device with these (0,1 or cpu,cpu): data parallel")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per arm with --devices")
    parser.add_argument("--tiny", action="store_true", help="with --devices: a 2-layer Llama (CPU check)")
    parser.add_argument("--texts", type=int, help="use only the first N texts")
    args = parser.parse_args()
    texts = [r.scratchpad for r in load_seed_set()] * args.repeat
    texts = texts[: args.texts] if args.texts else texts
    tokenizer = train_tiny_tokenizer(None, vocab_size=8192, corpus=texts)
    tokenizer.padding_side = "right"
    if args.devices:
        from af_tasks.core.devices import parse_devices

        name = args.presets.split(",")[0]
        report = run_devices(
            name, texts, tokenizer, parse_devices(args.devices) or [], args.batch_size, args.max_tokens,
            args.repeats, args.tiny,
        )  # fmt: skip
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        for label, arm in report["arms"].items():
            rate = arm["tokens_per_s"]
            print(f"{label:10} {rate['median']:9.0f} tok/s (min {rate['min']:.0f}, max {rate['max']:.0f})")
        print(
            f"{report['gpus']}: {name}, scaling {report['scaling']:.2f}x; pooled equal between arms: "
            f"{all(report['pooled_equal_between_arms'].values())}"
        )
        return
    results = [
        run_preset(name, texts, tokenizer, args.batch_size, args.max_tokens, args.profile, args.fused_kernels)
        for name in args.presets.split(",")
    ]
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'preset':14} {'hook':26} {'ok':>3} {'layers':>7} {'SAE':>8} {'tokens':>7} {'tok/s':>8} "
        f"{'dense tok/s':>11} {'no-SAE tok/s':>12} {'fused tok/s':>11} {'peak GiB':>9}"
    )
    for r in results:
        print(
            f"{r['preset']:14} {r['hook']:26} {'yes' if r['hook_matches_hidden_states'] else 'NO':>3} "
            f"{r['layers_run']:>3}/{r['layers_total']:<3} {r['sae_features']:>8} {r['tokens']:>7} "
            f"{r['tokens_per_s']:8.0f} {r['dense_sae_tokens_per_s']:11.0f} {r['no_sae_tokens_per_s']:12.0f} "
            f"{r.get('fused_kernels_tokens_per_s', float('nan')):11.0f} "
            f"{r['peak_memory_gib']:9.1f}"
        )


if __name__ == "__main__":
    main()
