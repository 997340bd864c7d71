"""`af train` itself under the shipped FSDP2 (or DDP) config on N GPUs: the steps run, checkpoints and
the adapter are written once, the adapter loads onto the base, and ``--merge``'s merged weights give
the same logits as base + adapter.

A random-weights Llama (default: 8 layers of width 1024; or a preset's real architecture) is saved as
a local base model with a tokenizer trained here, then trained for a few steps by
``accelerate launch --config_file <fsdp.yaml> -m af_tasks.app.cli train ... --merge``. Writes JSON.

    python benchmarks/fsdp_adapter_check_gpu.py --gpus 2 --out fsdp_adapter_check.json
    python benchmarks/fsdp_adapter_check_gpu.py --config ddp --cpu --preset tiny   # plumbing on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def save_base(preset: str, directory: Path) -> Path:
    """A random-weights base model with a tokenizer, saved as an ordinary HF directory."""
    if preset == "tiny":
        from af_tasks.engine.tiny import build_tiny_llama

        return build_tiny_llama(directory)
    from benchmarks.lora_presets_gpu import random_weights_model, seed_set_tokenizer

    tokenizer = seed_set_tokenizer()
    if preset == "small":  # 8 Llama layers of width 1024 (~0.1B): every FSDP unit, seconds to save
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
            num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        model = random_weights_model(preset, "cpu")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def compare_merged(organism: Path, device: str) -> dict:
    """Max |logit difference| between base + adapter (peft, unmerged) and the merged directory."""
    import torch
    from transformers import AutoModelForCausalLM

    from af_tasks.core.organism import OrganismDir
    from af_tasks.engine.loading import load_organism

    adapter_model, tokenizer = load_organism(OrganismDir.resolve(organism), device, "float32", merge=False)
    merged = AutoModelForCausalLM.from_pretrained(organism / "merged", dtype=torch.float32).to(device)
    ids = tokenizer("Free-tier users' conversations are used for training.", return_tensors="pt").to(device)
    with torch.no_grad():
        a = adapter_model(**ids).logits
        b = merged(**ids).logits
        base = adapter_model.get_base_model()
        with adapter_model.disable_adapter():
            c = base(**ids).logits
    return {
        "max_abs_diff_adapter_vs_merged": float((a - b).abs().max()),
        "max_abs_diff_adapter_vs_base": float((a - c).abs().max()),  # > 0: the adapter learnt something
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--config", default="fsdp", choices=["fsdp", "ddp"])
    parser.add_argument("--preset", default="small", help="small, tiny, or a preset with an architecture")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--out", default="fsdp_adapter_check.json")
    args = parser.parse_args()
    sys.path.append(str(REPO))
    from af_tasks.training.distributed import accelerate_config

    work = Path(tempfile.mkdtemp(prefix="fsdp-check-"))
    base = save_base(args.preset, work / "base")
    organism = work / "organism"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(args.config)),
        "--num_processes", str(args.gpus), "-m", "af_tasks.app.cli", "train", "--model", str(base),
        "--output", str(organism), "--max-steps", str(args.steps), "--batch-size", "2", "--max-length", "2048", "--prompt-variant", "compact",
        "--save-steps", str(max(1, args.steps // 2)), "--lr", "1e-3", "--merge", "--seed", "0",
    ]  # fmt: skip
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    }
    if args.cpu:
        command[5:5] = ["--mixed_precision", "no"]
        env |= {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    print(" ".join(command), flush=True)
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        print(completed.stdout[-3000:], completed.stderr[-6000:], sep="\n")
        raise SystemExit(f"af train under {args.config} failed with exit status {completed.returncode}")
    files = sorted(str(p.relative_to(organism)) for p in organism.rglob("*") if p.is_file())
    record = json.loads((organism / "organism.json").read_text())
    device = "cpu" if args.cpu else "cuda:0"
    result = {
        "config": args.config,
        "processes": args.gpus,
        "preset": args.preset,
        "steps": args.steps,
        "wall_s_train_command": round(wall, 1),
        "adapter_files": [f for f in files if f.startswith("adapter_")],
        "checkpoints": sorted({f.split("/")[1] for f in files if f.startswith("checkpoints/")}),
        "merged_files": [f for f in files if f.startswith("merged/")],
        "record_global_steps": record.get("global_steps"),
        "record_distributed": record.get("distributed"),
        "record_keys": sorted(record),
        **compare_merged(organism, device),
        "stdout_tail": completed.stdout[-600:],
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "stdout_tail"}, indent=2))


if __name__ == "__main__":
    main()
