"""LoRA SFT speed at 7B: the suite's trainer with and without its fast options, against tensor-core peak.

The Mistral-7B architecture with random weights (bf16; the same compute as the real model), the suite's
own trainer (``af_tasks.training.sft.build_trainer``: trl SFTTrainer + peft LoRA r=16 on every projection, loss
on the assistant turn) on seed-set examples rendered with the full elicitation prompt, cut at
``--max-length`` tokens. Every arm gets a freshly built model, the same seed and the same batches, with
LoRA dropout off, so their loss curves differ only by arithmetic:

- ``plain``: transformers/peft as they come: padded batches, gradient checkpointing on, and peft casting
  each LoRA layer's input to the float32 adapter dtype (the suite's trainer skips that cast: exact);
- ``no-checkpointing``: the suite's defaults (activations kept, no input cast; exact, more memory);
- ``+liger``: Liger's fused RMSNorm / SwiGLU / RoPE kernels;
- ``+padding-free``: each batch's examples concatenated into one row (no pad tokens);
- ``+liger-large``: no checkpointing + Liger at ``--large-batch``.

Throughput counts the examples' real tokens (no padding) over the steady steps (the first two are
warm-up); the fraction of peak counts 4·N FLOPs per token (forward 2N + input-gradient backward 2N; the
frozen weights get no weight gradient) against a large bf16 matrix product measured in the same run.

    PYTHONPATH=. python benchmarks/sft_speed_gpu.py --out sft_speed_gpu.json   # GPU machine (+ trl, liger)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

WARM_STEPS = 2


def matmul_peak(size: int = 8192, repeats: int = 20) -> float:
    """FLOP/s of a large bf16 matrix product on random data (the tensor-core ceiling as measured)."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def profiler_callback(first_step: int, steps: int = 2):
    """A ``TrainerCallback`` that records ``steps`` optimiser steps from ``first_step`` with
    ``torch.profiler``; ``summary()`` then gives the top device kernels and device-busy time."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    class ProfileSteps(TrainerCallback):
        def __init__(self) -> None:
            self.trace: Any = None
            self.wall = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == first_step:
                import torch

                torch.cuda.synchronize()
                self.trace = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
                self.trace.__enter__()
                self.wall = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self.trace is not None and state.global_step == first_step + steps:
                import torch

                torch.cuda.synchronize()
                self.trace.__exit__(None, None, None)
                self.wall = time.perf_counter() - self.wall

        def summary(self) -> dict:
            from benchmarks.profiling import summarise

            return {"steps": steps} | summarise(self.trace, self.wall)

    return ProfileSteps()


def run_arm(
    name: str,
    examples: list[dict],
    tokenizer,
    steps: int,
    batch_size: int,
    profile: bool = False,
    peft_casts: bool = False,
    **options,
) -> dict:
    import torch

    from af_tasks.training.sft import TrainConfig, build_trainer, set_adapter_input_casts
    from benchmarks.lora_presets_gpu import random_weights_model
    from benchmarks.step_timer import step_timer

    config = TrainConfig(
        base_model="mistral-7b (random weights)",
        output_dir=tempfile.mkdtemp(),
        batch_size=batch_size,
        max_steps=steps,
        max_length=options.pop("max_length"),
        learning_rate=1e-4,
        lora_dropout=0.0,
        save_steps=10_000,
        **options,
    )
    model = random_weights_model("mistral-7b")
    parameters = sum(p.numel() for p in model.parameters())
    timer = step_timer()
    profiler = profiler_callback(first_step=WARM_STEPS) if profile else None
    callbacks = [timer] + ([profiler] if profiler else [])
    torch.manual_seed(0)
    trainer = build_trainer(model, tokenizer, examples[: steps * batch_size], config, callbacks=callbacks)
    if peft_casts:  # peft's own behaviour, for the baseline
        set_adapter_input_casts(trainer.model, enabled=True)
    torch.cuda.reset_peak_memory_stats()
    try:
        trainer.train()
    except torch.OutOfMemoryError as error:
        del trainer, model
        torch.cuda.empty_cache()
        return {"arm": name, "batch_size": batch_size, "error": f"out of memory: {str(error)[:120]}"}
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    tokens_per_step = sum(lengths[: steps * batch_size]) / steps
    steady = timer.times[WARM_STEPS:] or timer.times
    step_s = sum(steady) / len(steady)
    result = {
        "arm": name,
        "batch_size": batch_size,
        "options": dict(options),
        "peft_input_casts": peft_casts,
        "parameters": parameters,
        "steps": len(timer.times),
        "step_s": step_s,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s,
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    if profiler is not None:
        result["profile"] = profiler.summary()
    del trainer, model
    torch.cuda.empty_cache()
    return result


def run_benchmark(
    steps: int,
    batch_size: int,
    large_batch: int,
    max_length: int,
    arms: list[str] | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    from af_tasks.training.sft import TrainConfig, load_training_examples
    from benchmarks.lora_presets_gpu import seed_set_tokenizer

    tokenizer = seed_set_tokenizer()
    needed = steps * max(batch_size, large_batch)
    examples, _ = load_training_examples(
        TrainConfig(base_model="-", output_dir="-", limit=needed, prompt={"variant": "full"})
    )
    peak = matmul_peak()
    fused = dict(gradient_checkpointing=False, liger_kernels=True)
    all_arms = {
        "plain": (batch_size, dict(gradient_checkpointing=True, peft_casts=True)),
        "no-checkpointing": (batch_size, dict(gradient_checkpointing=False)),
        "+liger": (batch_size, fused),
        "+padding-free": (batch_size, fused | dict(padding_free=True)),
        "+liger-large": (large_batch, fused),
    }
    results = []
    for name, (batch, options) in all_arms.items():
        if arms is None or name in arms:
            results.append(
                run_arm(
                    name,
                    examples,
                    tokenizer,
                    steps,
                    batch,
                    profile=name == profile,
                    max_length=max_length,
                    **options,
                )
            )
    for result in results:
        if "tokens_per_s" in result:
            result["fraction_of_peak"] = 4 * result["parameters"] * result["tokens_per_s"] / peak
    plain = results[0].get("losses")
    for result in results[1:]:
        if plain and result.get("losses") and result["batch_size"] == results[0]["batch_size"]:
            result["max_loss_difference_vs_plain"] = max(
                abs(a - b) for a, b in zip(result["losses"], plain, strict=True)
            )
    return {
        "gpu": torch.cuda.get_device_name(),
        "model": "mistral-7b architecture (random weights), bf16, LoRA r=16 on all projections",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "matmul_peak_tflops": peak / 1e12,
        "max_length": max_length,
        "steps": steps,
        "warm_steps_excluded": WARM_STEPS,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{report['gpu']}: {report['model']}; bf16 matmul peak {report['matmul_peak_tflops']:.0f} TFLOP/s, "
        f"examples cut at {report['max_length']} tokens"
    )
    print(
        f"{'arm':17} {'batch':>5} {'tok/step':>8} {'step s':>7} {'tok/s':>7} {'of peak':>7} "
        f"{'peak GiB':>8} {'loss first→last':>16} {'max |Δloss|':>11}"
    )
    for r in report["results"]:
        if "error" in r:
            print(f"{r['arm']:17} {r['batch_size']:>5}  {r['error']}")
            continue
        losses = f"{r['losses'][0]:.3f}→{r['losses'][-1]:.3f}"
        delta = r.get("max_loss_difference_vs_plain")
        print(
            f"{r['arm']:17} {r['batch_size']:>5} {r['tokens_per_step']:8.0f} {r['step_s']:7.3f} "
            f"{r['tokens_per_s']:7.0f} {r['fraction_of_peak']:7.1%} {r['peak_memory_gib']:8.1f} "
            f"{losses:>16} {'-' if delta is None else f'{delta:.4f}':>11}"
        )
        if "profile" in r:
            from benchmarks.profiling import print_summary

            label = f"{r['arm']} batch {r['batch_size']}, {r['profile']['steps']} steps"
            print_summary(label, r["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--large-batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--arms", help="comma-separated subset: plain,no-checkpointing,+liger,...")
    parser.add_argument("--profile", help="profile two steady steps of this arm (torch.profiler)")
    parser.add_argument("--out", default="sft_speed_gpu.json")
    args = parser.parse_args()
    arms = args.arms.split(",") if args.arms else None
    report = run_benchmark(args.steps, args.batch_size, args.large_batch, args.max_length, arms, args.profile)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


if __name__ == "__main__":
    main()
