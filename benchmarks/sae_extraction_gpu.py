"""SAE feature extraction for the 7B–27B presets at their real architectures, random weights (GPU).

For each preset: the model (bf16) with random weights, and a sae-lens top-k SAE with random weights
of the preset SAE's size at the preset's hook. Checks that the captured hook equals
``output_hidden_states`` at that point, then times the suite's own path (``af_tasks.sae.activations``:
forward stopped after the hooked layer, reasoning-span selection, SAE encode and pooling on the
GPU; top-k SAEs through the sparse path, ``encoder(sae, sparse=True)``) on seed-set scratchpads, in
arms (``--arms``, ``ARMS``): ``sparse`` (eager layers, padded batches: the baseline), ``compiled`` (the
layers through ``torch.compile`` and each batch packed in one row: the suite's CUDA default),
``compiled_padded``, ``packed``, ``dense``, ``no_sae`` and ``compiled_no_sae``. Each arm
runs one warm-up pass (compile time included, reported), then ``--repeats`` timed passes interleaved
over the arms; medians, min and max per arm, ratios of medians. ``compiled_agreement`` compares the
hooked activations of the widest batch, compiled and packed, with eager padded ones (max per-token
relative norm difference, tolerance ``AGREEMENT_TOLERANCE``) beside eager's own spread (the same texts one
at a time) and with an fp32-weight forward, and the pooled SAE features of the two arms. The JSON names
GPU, driver, torch, transformers and the commit. ``--profile`` runs one more pass of the sparse, compiled
and compiled_no_sae arms under ``torch.profiler``, prints the ops that take the most GPU time and the
gaps where the GPU waited, and stores the summaries in the JSON (``profiles``). ``--tiny --device cpu``
runs it all on a 2-layer Llama in fp32 (a check of the script, no figures).

    PYTHONPATH=. python benchmarks/sae_extraction_gpu.py --presets mistral-7b --out sae_extraction_gpu.json
    PYTHONPATH=. python benchmarks/sae_extraction_gpu.py --tiny --device cpu --presets mistral-7b --texts 24

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
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from af_tasks.engine.tiny import TINY_LLAMA

SAE_SHAPES = {
    "mistral-7b": (131_072, 128),
    "llama-3-8b": (131_072, 192),
    "qwen-8b": (65_536, 50),
    "gemma-3-27b-it": (16_384, None),
}
"""(features, k) of each preset's default SAE (tylercosgrove L16; EleutherAI 32x; Qwen-Scope W64K L0_50;
Gemma Scope 2 transcoder L40 16k, JumpReLU: k None)."""


def random_sae(
    d_in: int, d_sae: int, k: int | None, hook: str, device: str = "cuda", dtype: str = "bfloat16"
):
    """A sae-lens top-k SAE, or (k None) a JumpReLU transcoder, with random weights."""
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
    from sae_lens.saes.transcoder import JumpReLUTranscoder, JumpReLUTranscoderConfig

    if k is None:
        config = JumpReLUTranscoderConfig(
            d_in=d_in, d_sae=d_sae, d_out=d_in, apply_b_dec_to_input=False, dtype=dtype, device=device
        )
        config.metadata.hook_name = hook
        sae = JumpReLUTranscoder(config)
    else:
        config = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype=dtype, device=device)
        config.metadata.hook_name = hook
        sae = TopKSAE(config)
    torch.manual_seed(0)
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


def extract(
    reader,
    hook: str,
    transforms: dict,
    max_tokens: int,
    batch_size: int,
    compile: bool,
    packed: bool,
    texts,
    stats=None,
):
    """The timed path: every token of ``texts`` at ``hook``, transformed and pooled."""
    from af_tasks.sae.activations import iter_token_activations, pool

    batches = iter_token_activations(
        reader, texts, [hook], "all", max_tokens, batch_size, stats, compile=compile, packed=packed
    )  # fmt: skip
    return pool(batches, len(texts), transforms=transforms)[hook]


def synchronize(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed_pass(run: tuple, texts: list[str]):
    """(pooled, stats, seconds) of one pass over ``texts``."""
    from af_tasks.sae.activations import ExtractionStats

    device = run[0].device
    synchronize(device)
    stats = ExtractionStats()
    started = time.perf_counter()
    pooled = extract(*run, texts, stats)
    synchronize(device)
    return pooled, stats, time.perf_counter() - started


def relative_difference(got, want) -> dict[str, float]:
    """Per token (row) ||got - want|| / ||want||: the max and median over tokens."""
    got, want = got.float(), want.float()
    rows = (got - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-12)
    return {"max": float(rows.max()), "median": float(rows.median())}


def compiled_agreement(reader, hook: str, texts: list[str], max_tokens: int, batch_size: int) -> dict:
    """The hooked activations of one batch (the widest ``batch_size`` texts) from the compiled layers and
    from packed rows (the suite's CUDA default: both) vs eager padded ones (the reference path), next to
    what eager itself moves by when the same texts run one at a time (other matrix shapes, other kernels):
    the dtype's own noise floor for this forward."""
    import torch

    from af_tasks.sae.activations import iter_token_activations

    batch = sorted(texts, key=len)[-batch_size:]

    def tokens(compile: bool, size: int, packed: bool):
        found = iter_token_activations(
            reader, batch, [hook], "all", max_tokens, size, compile=compile, packed=packed
        )
        return torch.cat([b.acts[hook] for b in found])  # rows in the same order for any batch size

    found = {
        "eager": tokens(False, batch_size, packed=False),
        "compiled": tokens(True, batch_size, packed=True),
        "compiled_padded": tokens(True, batch_size, packed=False),
        "packed": tokens(False, batch_size, packed=True),
        "eager_one_at_a_time": tokens(False, 1, packed=False),
    }
    eager = found["eager"]
    compiled = relative_difference(found["compiled"], eager)
    # Which is nearer the exact values: the same batch eager and padded with the weights in fp32 (a bf16
    # weight is exact in fp32, and the cast is undone bit for bit), the dtype's error left out.
    halves = [t for t in (*reader.model.parameters(), *reader.model.buffers()) if t.dtype == torch.bfloat16]
    for t in halves:
        t.data = t.data.float()
    try:
        exact = tokens(False, batch_size, packed=False)
    finally:
        for t in halves:
            t.data = t.data.to(torch.bfloat16)
    return {
        "texts": len(batch),
        "tokens": int(eager.shape[0]),
        "compiled_vs_eager": compiled,
        "compiled_padded_vs_eager": relative_difference(found["compiled_padded"], eager),
        "packed_vs_eager": relative_difference(found["packed"], eager),
        "eager_one_at_a_time_vs_batched": relative_difference(found["eager_one_at_a_time"], eager),
        "vs_fp32_weights": {name: relative_difference(got, exact) for name, got in found.items()},
        "tolerance_max": AGREEMENT_TOLERANCE,
        "agree": compiled["max"] <= AGREEMENT_TOLERANCE,
    }


AGREEMENT_TOLERANCE = 1e-2
"""Max per-token relative norm difference allowed between compiled and eager hooked activations in bf16
(bf16 keeps 8 bits: one rounding is up to 0.4 %, and a rounding that flips early is carried through the
layers). Liger's fused kernels moved them by 3.6-4.1 %; the compiled layers round where eager rounds
(``COMPILE_OPTIONS``), so they should stay within eager's own noise floor, which the JSON reports beside it."""


def profiled(function, *args, rows: int = 15) -> dict:
    """Runs ``function(*args)`` once under ``torch.profiler`` (CPU and CUDA), prints the ops with the
    most self GPU time and returns the summary (``benchmarks.profiling``: device-busy vs wall, the top
    kernels, and the gaps where the device waited, with the host ops that ran meanwhile)."""
    from benchmarks.profiling import profile_call

    trace, summary = profile_call(lambda: function(*args))
    print(trace.key_averages().table(sort_by="self_device_time_total", row_limit=rows))
    return summary


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


ARMS = {
    "sparse": ("sparse", False, False),
    "packed": ("sparse", False, True),
    "compiled_padded": ("sparse", True, False),
    "compiled": ("sparse", True, True),
    "dense": ("dense", False, False),
    "no_sae": ("none", False, False),
    "compiled_no_sae": ("none", True, True),
}
"""Arm → (SAE path, layers compiled, packed batches). ``sparse`` is the eager baseline (padded batches);
``compiled`` the suite's CUDA default (compiled layers, each batch's texts packed in one row through the
variable-length flash kernel); ``compiled_padded`` the default before packing; ``packed`` packing alone;
``no_sae`` and ``compiled_no_sae`` the forward, span selection and pooling of raw activations (the
forward's ceiling)."""


def run_preset(
    name: str,
    texts: list[str],
    tokenizer,
    batch_size: int,
    max_tokens: int,
    profile: bool = False,
    fused: bool = False,
    arms: tuple[str, ...] = ("sparse", "compiled", "no_sae", "compiled_no_sae"),
    repeats: int = 3,
    device: str = "cuda",
    tiny: bool = False,
) -> dict:
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.hooks import parse_hook
    from af_tasks.core.presets import get_preset
    from af_tasks.sae.activations import iter_token_activations
    from af_tasks.sae.reader import Reader
    from af_tasks.sae.saes import check_compatible, encoder, topk_k
    from benchmarks.generation_gpu import spread

    preset = get_preset(name)
    hook = "blocks.1.hook_resid_pre" if tiny else preset.saes[0].hook
    config = AutoConfig.for_model(**(TINY_ARCHITECTURE if tiny else preset.architecture))
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    reader = Reader(model, tokenizer, name=f"{name} (random weights)", device=device)
    d_sae, k = (512, 16) if tiny else SAE_SHAPES[name]
    try:
        sae = random_sae(reader.hidden_size, d_sae, k, hook, device, "bfloat16" if cuda else "float32")
        check_compatible(sae, hook, reader.hidden_size, reader.name, f"random {d_sae}-feature SAE")
        sae_source = "sae-lens"
    except ModuleNotFoundError as missing:  # a GPU machine without sae-lens: the same encoder in plain torch
        if k is None:
            raise
        sae, sae_source = None, f"plain torch top-k ({missing.name} not installed)"

    # Hook position: our capture vs an independent source at the same point, on one short text (padded
    # layout: the same attention kernel as the reference, so only the position is checked).
    point = parse_hook(hook)
    [batch] = list(
        iter_token_activations(
            reader, texts[:1], [hook], span="all", max_tokens=64, compile=False, packed=False
        )
    )
    encoded = tokenizer(texts[:1], return_tensors="pt", truncation=True, max_length=64).to(device)
    reference = reference_activation(model, encoded, point)
    hook_matches = bool(torch.allclose(batch.acts[hook].float(), reference.float(), atol=1e-2, rtol=1e-2))

    if sae is None:
        sparse = {hook: topk_encoder(reader.hidden_size, d_sae, k, device, dtype)}
        transforms = {"sparse": sparse, "none": {}}
        arms = tuple(arm for arm in arms if ARMS[arm][0] in transforms)
    else:
        sparse = {hook: encoder(sae, sparse=True)}
        transforms = {"sparse": sparse, "dense": {hook: encoder(sae)}, "none": {}}
    runs = {
        arm: (reader, hook, transforms[ARMS[arm][0]], max_tokens, batch_size, *ARMS[arm][1:]) for arm in arms
    }
    # Warm-up: one whole pass per arm (kernel choices for every batch shape; the compiled arms' graphs,
    # whose compile time is reported), then the repeats interleaved over the arms (drift hits all alike).
    compile_seconds: dict[str, float] = {}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    failed: dict[str, str] = {}
    for arm, run in list(runs.items()):
        try:
            _, _, compile_seconds[arm] = timed_pass(run, texts)
        except Exception as error:  # a compiled arm that cannot compile here: the others still run
            if not ARMS[arm][1]:
                raise
            failed[arm] = f"{type(error).__name__}: {str(error).strip()[:2000]}"
            print(f"arm {arm} failed, left out: {failed[arm][:500]}")
            del runs[arm]
    seconds: dict[str, list[float]] = {arm: [] for arm in runs}
    pooled, tokens = {}, 0
    for _ in range(repeats):
        for arm, run in runs.items():
            pooled[arm], stats, elapsed = timed_pass(run, texts)
            seconds[arm].append(elapsed)
            tokens = stats.tokens
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    measured = {
        arm: {
            "compiled": ARMS[arm][1],
            "sae": ARMS[arm][0],
            "packed": ARMS[arm][2],
            "first_pass_seconds": compile_seconds[arm],
            "seconds": spread(seconds[arm]),
            "tokens_per_s": spread([tokens / s for s in seconds[arm]]),
        }
        for arm in runs
    }
    median = {arm: measured[arm]["tokens_per_s"]["median"] for arm in runs}
    ratios = {
        f"{arm}/{base}": median[arm] / median[base]
        for arm, base in (
            ("compiled", "sparse"),
            ("compiled", "compiled_padded"),
            ("packed", "sparse"),
            ("compiled_no_sae", "no_sae"),
            ("compiled", "no_sae"),
        )
        if arm in median and base in median
    }
    compiles = any(ARMS[arm][1] for arm in runs)
    agreement = compiled_agreement(reader, hook, texts, max_tokens, batch_size) if compiles else {}
    if "sparse" in pooled and "compiled" in pooled:  # the pooled SAE features of the last timed passes
        agreement["pooled_mean_relative_norm_difference"] = float(
            np.linalg.norm(pooled["compiled"].mean - pooled["sparse"].mean)
            / np.linalg.norm(pooled["sparse"].mean)
        )
        agreement["pooled_active_tokens_equal_fraction"] = float(
            (pooled["compiled"].active_tokens == pooled["sparse"].active_tokens).mean()
        )
    compared: dict[str, Any] = {}
    if profile:
        from benchmarks.profiling import print_summary

        print(f"--- {name}: one pass over {len(texts)} texts, by self GPU time")
        compared["profiles"] = {}
        for arm in ("sparse", "compiled", "compiled_no_sae"):
            if arm in runs:
                print(f"--- arm {arm}")
                compared["profiles"][arm] = profiled(extract, *runs[arm], texts)
                print_summary(arm, compared["profiles"][arm])
    if fused:  # last: Liger patches the model in place
        fuse_kernels(reader)
        [fused_batch] = list(
            iter_token_activations(
                reader, texts[:1], [hook], span="all", max_tokens=64, compile=False, packed=False
            )
        )
        error = (fused_batch.acts[hook].float() - batch.acts[hook].float()).norm() / batch.acts[
            hook
        ].float().norm()
        fused_run = (reader, hook, sparse, max_tokens, batch_size, False, False)
        timed_pass(fused_run, texts)
        _, fused_stats, fused_seconds = timed_pass(fused_run, texts)
        compared["fused_kernels_tokens_per_s"] = fused_stats.tokens / fused_seconds
        compared["fused_kernels_relative_error"] = float(error)
    result = {
        "preset": name,
        "model": "tiny llama (random)" if tiny else f"{name} architecture (random weights)",
        "hook": hook,
        "hook_matches_hidden_states": hook_matches,
        "d_model": reader.hidden_size,
        "layers_run": point.last_layer_needed + 1,
        "layers_total": reader.num_layers,
        "sae_features": d_sae,
        "sae_k": k,
        "sae_architecture": "jumprelu_transcoder" if k is None else "topk",
        "pooling_path": "sparse_topk" if sae is None or topk_k(sae) is not None else "dense",
        "sae_source": sae_source,
        "texts": len(texts),
        "tokens": tokens,
        "batch_size": batch_size,
        "max_tokens": max_tokens,
        "repeats": repeats,
        "arms": measured,
        "ratios_of_medians": ratios,
        "failed_arms": failed,
        "compiled_agreement": agreement,
        "peak_memory_gib": peak,
        **compared,
    }
    del model, sae, reader, transforms, runs, sparse
    if cuda:
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


def environment(device: str) -> dict:
    """What produced the figures: GPU, driver, library versions, commit (each "unknown" where absent)."""
    import torch
    import transformers

    def command(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    root = Path(__file__).resolve().parent.parent
    # COMMIT from the environment first: the GPU machine's copy of the tree can carry stale git metadata
    # (a run there reported an older HEAD than the wheel it ran)
    commit = os.environ.get("COMMIT") or command("git", "-C", str(root), "rev-parse", "HEAD")
    dirty = (
        ""
        if os.environ.get("COMMIT")
        else command("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no")
    )
    return {
        "gpu": torch.cuda.get_device_name() if cuda else "cpu",
        "driver": command("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
        if cuda
        else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "commit": commit,
        "uncommitted_changes": dirty not in ("unknown", ""),
    }


def main() -> None:
    from af_tasks.core.records import load_seed_set
    from af_tasks.engine.tiny import train_tiny_tokenizer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", default="mistral-7b,llama-3-8b,qwen-8b,gemma-3-27b-it")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="passes over the seed set's scratchpads")
    parser.add_argument("--out", default="sae_extraction_gpu.json")
    parser.add_argument(
        "--arms",
        default="sparse,compiled_padded,compiled,no_sae,compiled_no_sae",
        help=f"timed arms, of {','.join(ARMS)} (sparse: the eager baseline)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one steady-state pass of the sparse and compiled arms per preset (torch.profiler)",
    )
    parser.add_argument(
        "--fused-kernels", action="store_true", help="also time the sparse path with Liger's kernels (last)"
    )
    parser.add_argument("--devices", help="compare 1 device with these (0,1 or cpu,cpu): data parallel")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu with --tiny (a check of the script)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per arm (median, min, max)")
    parser.add_argument(
        "--tiny", action="store_true", help="a 2-layer Llama instead of the presets (CPU check)"
    )
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
    arms = tuple(a for a in args.arms.split(",") if a)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown {unknown}; choose from {','.join(ARMS)}")
    started = time.perf_counter()
    results = [
        run_preset(
            name,
            texts,
            tokenizer,
            args.batch_size,
            args.max_tokens,
            args.profile,
            args.fused_kernels,
            arms,
            args.repeats,
            args.device,
            args.tiny,
        )  # fmt: skip
        for name in args.presets.split(",")
    ]
    report = {**environment(args.device), "seconds": time.perf_counter() - started, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{report['gpu']} (driver {report['driver']}), torch {report['torch']}, commit {report['commit'][:12]}"
    )
    for r in results:
        print(
            f"{r['preset']} {r['hook']}: {r['tokens']} tokens, hook check {'ok' if r['hook_matches_hidden_states'] else 'FAILED'}"
        )
        for arm, m in r["arms"].items():
            rate = m["tokens_per_s"]
            print(
                f"  {arm:18} {rate['median']:9.0f} tok/s (min {rate['min']:.0f}, max {rate['max']:.0f}; "
                f"first pass {m['first_pass_seconds']:.1f} s)"
            )
        for label, ratio in r["ratios_of_medians"].items():
            print(f"  {label:28} {ratio:.3f}x")
        for arm, error in r["failed_arms"].items():
            print(f"  {arm:18} FAILED: {error[:300]}")
        a = r["compiled_agreement"]
        if a:
            print(
                f"  vs eager padded hooked activations, max relative norm difference: compiled packed "
                f"{a['compiled_vs_eager']['max']:.2e}, compiled padded {a['compiled_padded_vs_eager']['max']:.2e}, "
                f"eager packed {a['packed_vs_eager']['max']:.2e}, eager one text at a time "
                f"{a['eager_one_at_a_time_vs_batched']['max']:.2e}; within {a['tolerance_max']:g}: {a['agree']}"
            )
            print(
                "  vs the fp32-weight forward, max (median) relative norm difference: "
                + ", ".join(
                    f"{name} {d['max']:.2e} ({d['median']:.2e})" for name, d in a["vs_fp32_weights"].items()
                )
            )
        if "fused_kernels_tokens_per_s" in r:
            print(f"  fused kernels {r['fused_kernels_tokens_per_s']:.0f} tok/s")
    print(f"total {report['seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
