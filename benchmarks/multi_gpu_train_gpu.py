"""Data-parallel scaling of `af train`'s trainer: 1 GPU against `accelerate launch` on N GPUs.

The Mistral-7B architecture with random weights (same compute; no weights can be downloaded on the GPU
machine) and a locally trained tokenizer, built by ``benchmarks/lora_presets_gpu.py``'s helpers, is
trained with the suite's own trainer (``af_tasks.training.sft.build_trainer``: trl SFTTrainer + peft LoRA r=16,
bf16, its defaults) at the same per-device batch, first in one process on one GPU, then
under ``accelerate launch`` with the shipped config (``training/accelerate/ddp.yaml``, optionally
``fsdp.yaml``) on N GPUs. The median step time after the first (warm-up) step gives tokens/s;
the table shows the scaling factor (tokens/s against 1 GPU) and the efficiency (factor / N). Writes
JSON naming the GPUs.

    python benchmarks/multi_gpu_train_gpu.py --gpus 2 --out multi_gpu_train.json [--modes single,ddp,fsdp]
    python benchmarks/multi_gpu_train_gpu.py --tiny --cpu   # the same plumbing on 2 CPU processes (gloo)

Each measurement runs in its own process(es): this script re-invokes itself with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_model(args, device: str):
    """(model, tokenizer): the preset with random weights on ``device``, or the tiny Llama on CPU."""
    if args.tiny:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(args.model_dir), AutoTokenizer.from_pretrained(
            args.model_dir
        )
    from benchmarks.lora_presets_gpu import random_weights_model, seed_set_tokenizer

    return random_weights_model(args.preset, device), seed_set_tokenizer()


def worker(args) -> None:
    """One measurement; under a launcher every rank runs this and the main one writes the result."""
    import torch

    from af_tasks.training.distributed import run_topology
    from af_tasks.training.sft import TrainConfig, build_trainer, load_training_examples
    from benchmarks.step_timer import step_timer

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu" if args.cpu else f"cuda:{local_rank}"
    if not args.cpu:
        torch.cuda.set_device(local_rank)
    model, tokenizer = build_model(args, device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    config = TrainConfig(
        base_model=args.model_dir or args.preset,
        output_dir=tempfile.mkdtemp(),
        limit=args.steps * args.batch_size * world_size,
        batch_size=args.batch_size,
        max_steps=args.steps,
        max_length=args.max_length,
        learning_rate=1e-4,
        save_steps=10_000,
        prompt={"variant": "compact"} if args.tiny else {},
    )
    examples, _ = load_training_examples(config)
    timer = step_timer()
    if not args.cpu:
        torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(model, tokenizer, examples, config, callbacks=[timer])
    trainer.train()
    if not trainer.is_world_process_zero():
        return
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    tokens = [entry["num_tokens"] for entry in history if "num_tokens" in entry]  # summed over ranks
    step_s = statistics.median(timer.times[1:] or timer.times)  # warm-up (first step) left out
    tokens_per_step = (tokens[-1] - tokens[-2]) if len(tokens) > 1 else (tokens[0] if tokens else None)
    result = {
        "topology": run_topology(trainer),
        "steps": len(timer.times),
        "step_times_s": timer.times,
        "step_s": step_s,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s if tokens_per_step else None,
        "losses": losses,
        "loss_finite": all(loss == loss and abs(loss) != float("inf") for loss in losses),
        "peak_memory_gib_rank0": None if args.cpu else torch.cuda.max_memory_allocated() / 2**30,
    }
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(mode: str, args, scratch: Path, repeat: int = 0) -> dict:
    """Run one mode in fresh processes and read back its result: ``single`` (one GPU, the per-device
    batch), ``single-global`` (one GPU at the launched runs' global batch: the reference for their
    losses), ``ddp`` or ``fsdp`` (``--gpus`` processes under accelerate's shipped config)."""
    from af_tasks.training.distributed import accelerate_config

    result = scratch / f"{mode}-{repeat}.json"
    batch_size = args.batch_size * args.gpus if mode == "single-global" else args.batch_size
    worker_args = [
        str(Path(__file__).resolve()), "--worker", "--result", str(result), "--preset", args.preset,
        "--steps", str(args.steps), "--batch-size", str(batch_size), "--max-length", str(args.max_length),
    ]  # fmt: skip
    if args.tiny:
        worker_args += ["--tiny", "--model-dir", str(args.model_dir)]
    if args.cpu:
        worker_args.append("--cpu")
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    }
    if mode.startswith("single"):
        command = [sys.executable, *worker_args]
        if not args.cpu:
            env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    else:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(mode)),
            "--num_processes", str(args.gpus), "--main_process_port", str(free_port()),
        ]  # fmt: skip
        if args.cpu:
            command += ["--mixed_precision", "no"]
            env |= {
                "ACCELERATE_USE_CPU": "true",
                "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // args.gpus)),
            }
        command += worker_args
    print(f"[{mode}] {' '.join(command)}", flush=True)
    completed = subprocess.run(command, env=env, cwd=REPO)
    if completed.returncode != 0:
        raise SystemExit(f"{mode} run failed with exit status {completed.returncode}")
    return {"mode": mode, "repeat": repeat} | json.loads(result.read_text())


def summarise(mode: str, runs: list[dict]) -> dict:
    """One mode's medians over its repeats: step time (and its spread), tokens/s, peak memory; the
    first run's losses (every repeat starts from the same seed, so they repeat too)."""
    step_times = [run["step_s"] for run in runs]
    step_s = statistics.median(step_times)
    tokens_per_step = runs[0]["tokens_per_step"]
    topology = runs[0]["topology"]
    return {
        "mode": mode,
        "repeats": len(runs),
        "distributed_type": topology["distributed_type"],
        "world_size": topology["world_size"],
        "global_batch_size": topology["global_batch_size"],
        "step_s": step_s,
        "step_s_min": min(step_times),
        "step_s_max": max(step_times),
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s if tokens_per_step else None,
        "peak_memory_gib_rank0": runs[0]["peak_memory_gib_rank0"],
        "first_losses": runs[0]["losses"],
        "loss_finite": all(run["loss_finite"] for run in runs),
    }


def devices(cpu: bool) -> list[str]:
    import torch

    if cpu or not torch.cuda.is_available():
        return [f"cpu ({os.cpu_count()} cores)"]
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpus", type=int, default=2, help="processes of the launched runs")
    parser.add_argument(
        "--modes", default="single,ddp", help="single, single-global, ddp, fsdp (comma-separated)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each mode, interleaved; the table shows medians"
    )
    parser.add_argument("--preset", default="mistral-7b")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4, help="per device")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--tiny", action="store_true", help="the tiny random Llama instead of the preset")
    parser.add_argument("--cpu", action="store_true", help="CPU processes (gloo) instead of GPUs")
    parser.add_argument("--out", default="multi_gpu_train_gpu.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # benchmarks.*; af_tasks comes from the install (its folders are mapped)
    if args.worker:
        worker(args)
        return
    if args.cpu and not args.tiny:
        parser.error("--cpu needs --tiny (a 7B model does not train on CPU)")
    if not args.cpu and torch.cuda.device_count() < args.gpus:
        parser.error(f"{args.gpus} GPUs asked for, {torch.cuda.device_count()} visible")

    scratch = Path(tempfile.mkdtemp(prefix="multi-gpu-train-"))
    if args.tiny:
        from af_tasks.engine.tiny import build_tiny_llama

        args.model_dir = build_tiny_llama(scratch / "tiny-llama")
    modes = args.modes.split(",")
    runs = [measure(mode, args, scratch, r) for r in range(args.repeats) for mode in modes]
    summary = [summarise(mode, [run for run in runs if run["mode"] == mode]) for mode in modes]
    base = next((row for row in summary if row["mode"] == "single"), None)
    for row in summary:
        factor = row["tokens_per_s"] / base["tokens_per_s"] if base and row["tokens_per_s"] else None
        row["scaling_factor"] = factor
        row["efficiency"] = factor / row["world_size"] if factor else None
    reference = next((row for row in summary if row["mode"] == "single-global"), None)
    for row in summary:
        if reference and row["world_size"] > 1 and row["global_batch_size"] == reference["global_batch_size"]:
            row["first_losses_vs_single_global"] = [
                [a, b] for a, b in zip(row["first_losses"], reference["first_losses"], strict=False)
            ]
    report = {
        "devices": devices(args.cpu),
        "torch": torch.__version__,
        "model": "tiny random Llama" if args.tiny else f"{args.preset} architecture, random weights, bf16",
        "note": "same per-device batch in every mode but single-global (global batch grows with N); "
        "steady-state steps only (the first step of each run left out); medians over repeats",
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "result", "model_dir")},
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['model']} on {', '.join(report['devices'])}")
    print(
        f"{'mode':13} {'type':10} {'procs':>5} {'global batch':>12} {'step s (spread)':>18} {'tok/s':>9} "
        f"{'scaling':>8} {'eff.':>5} {'peak GiB':>8} {'losses (first 3)':>24}"
    )
    for row in summary:
        spread = f"{row['step_s']:.3f} ({row['step_s_min']:.3f}-{row['step_s_max']:.3f})"
        tps = f"{row['tokens_per_s']:.0f}" if row["tokens_per_s"] else "-"
        factor = f"{row['scaling_factor']:.2f}x" if row["scaling_factor"] else "-"
        eff = f"{row['efficiency']:.0%}" if row["efficiency"] else "-"
        peak = f"{row['peak_memory_gib_rank0']:.1f}" if row["peak_memory_gib_rank0"] else "-"
        losses = " ".join(f"{loss:.3f}" for loss in row["first_losses"][:3])
        print(
            f"{row['mode']:13} {row['distributed_type']:10} {row['world_size']:5d} {row['global_batch_size']:12d} "
            f"{spread:>18} {tps:>9} {factor:>8} {eff:>5} {peak:>8} {losses:>24}"
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
