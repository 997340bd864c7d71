"""LoRA SFT steps for the 7B–8B presets at their real architectures, with random weights (GPU).

No weights can be downloaded on the GPU machine; compute per token is the same with random
weights. Each preset gets the suite's own trainer (``af_tasks.training.sft.build_trainer``: trl SFTTrainer +
peft LoRA r=16 on all projections, bf16, loss on the assistant turn; the committed results were taken
while the trainer still checkpointed activations by default) on
seed-set examples rendered with the full elicitation prompt and a locally trained tokenizer.
Prints a table and writes JSON (steps, loss, step time, tokens/s, peak memory, GPU name).

    python benchmarks/lora_presets_gpu.py --out results.json [--presets mistral-7b,llama-3-8b,qwen-8b]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def random_weights_model(name: str, device: str = "cuda"):
    """A preset's real architecture with random weights, bf16, built directly on ``device``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.presets import get_preset

    config = AutoConfig.for_model(**get_preset(name).architecture)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)


def seed_set_tokenizer():
    """A tokenizer trained here on the seed set's scratchpads and the full elicitation prompt."""
    from af_tasks.core.prompting import PromptConfig, build_system_prompt
    from af_tasks.core.records import load_seed_set
    from af_tasks.engine.tiny import train_tiny_tokenizer

    corpus = [r.scratchpad for r in load_seed_set()] + [build_system_prompt(PromptConfig())]
    return train_tiny_tokenizer(None, vocab_size=8192, corpus=corpus)


def run_preset(name: str, steps: int, batch_size: int, max_length: int) -> dict:
    import torch

    from af_tasks.core.presets import get_preset
    from af_tasks.training.sft import TrainConfig, build_trainer, load_training_examples
    from benchmarks.step_timer import step_timer

    preset = get_preset(name)
    model = random_weights_model(name)
    parameters = sum(p.numel() for p in model.parameters())
    scratch = Path(tempfile.mkdtemp())
    tokenizer = seed_set_tokenizer()
    train_config = TrainConfig(
        base_model=preset.hf_id,
        output_dir=str(scratch / "organism"),
        limit=steps * batch_size,
        batch_size=batch_size,
        max_steps=steps,
        max_length=max_length,
        learning_rate=1e-4,
        save_steps=10_000,
    )
    examples, _ = load_training_examples(train_config)

    timer = step_timer()
    torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(model, tokenizer, examples, train_config, callbacks=[timer])
    trainer.train()
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    tokens = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    tokens_per_step = (tokens[-1] - (tokens[-2] if len(tokens) > 1 else 0)) if tokens else None
    steady = timer.times[1:] or timer.times
    step_time = sum(steady) / len(steady)
    result = {
        "preset": name,
        "hf_id": preset.hf_id,
        "parameters": parameters,
        "steps": len(timer.times),
        "batch_size": batch_size,
        "max_length": max_length,
        "losses": losses,
        "loss_finite": all(loss == loss and abs(loss) != float("inf") for loss in losses),
        "step_time_s": step_time,
        "first_step_s": timer.times[0],
        "tokens_per_step_last": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_time if tokens_per_step else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    del trainer, model
    torch.cuda.empty_cache()
    return result


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", default="mistral-7b,llama-3-8b,qwen-8b")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--out", default="lora_presets_gpu.json")
    args = parser.parse_args()
    results = [
        run_preset(name, args.steps, args.batch_size, args.max_length) for name in args.presets.split(",")
    ]
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'preset':12} {'params':>8} {'steps':>5} {'loss first→last':>18} {'step s':>7} {'tok/s':>8} {'peak GiB':>9}"
    )
    for r in results:
        loss = f"{r['losses'][0]:.3f}→{r['losses'][-1]:.3f}" if r["losses"] else "-"
        tps = f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else "-"
        print(
            f"{r['preset']:12} {r['parameters'] / 1e9:7.2f}B {r['steps']:5d} {loss:>18} "
            f"{r['step_time_s']:7.2f} {tps:>8} {r['peak_memory_gib']:9.1f}"
        )


if __name__ == "__main__":
    main()
