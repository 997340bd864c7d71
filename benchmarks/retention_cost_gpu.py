"""What the retention experiment costs at 7B: measured step times on the GPU, random weights.

On the Mistral-7B architecture (bf16, random weights — the same compute), with the experiment's own
pieces: the suite's trainer (``af_tasks.training.sft.build_trainer``: trl + peft LoRA r=16) on attacker
examples from ``af_tasks.core.retention_training``, and plain HF ``generate`` (what Inspect's ``hf/`` provider
runs) on retention prompts with short answers. The measured rates are then applied to the
experiment's sample and token counts for a configuration (default: the full ladder, budgets
1/4/16/64, three seeds). Prints a table and writes JSON naming the GPU.

    python benchmarks/retention_cost_gpu.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def retention_prompts(n_requests: int, variant: str):
    from af_tasks.core.requests import load_requests
    from af_tasks.core.retention_data import RUNGS, RetentionConfig, retention_items

    config = RetentionConfig(scratchpad=False, variant=variant)
    return retention_items(load_requests()[:n_requests], RUNGS, config=config)


def measure_training(model, tokenizer, items, batch_size: int, steps: int) -> dict:
    import torch

    from af_tasks.core.retention_training import attacker_examples
    from af_tasks.training.sft import TrainConfig, build_trainer
    from benchmarks.step_timer import step_timer

    examples = attacker_examples(items, scratchpad=False, seed=0)[: batch_size * steps]
    config = TrainConfig(
        base_model="random-weights",
        output_dir=tempfile.mkdtemp(),
        batch_size=batch_size,
        max_steps=steps,
        max_length=1024,
        learning_rate=5e-4,
        save_steps=10_000,
    )
    timer = step_timer()
    trainer = build_trainer(model, tokenizer, examples, config, callbacks=[timer])
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    warm = timer.times[1:] or timer.times
    step_s = sum(warm) / len(warm)
    tokens_per_example = sum(lengths) / len(lengths)
    return {
        "batch_size": batch_size,
        "steps": steps,
        "step_s": step_s,
        "first_step_s": timer.times[0],
        "tokens_per_example": tokens_per_example,
        "examples_per_s": batch_size / step_s,
        "tokens_per_s": batch_size * tokens_per_example / step_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def measure_generation(model, tokenizer, items, batch_size: int, new_tokens: int) -> dict:
    import torch

    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": i.system}, {"role": "user", "content": i.user}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for i in items[:batch_size]
    ]
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True).to("cuda")
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    with torch.no_grad():
        model.generate(**encoded, **settings)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        model.generate(**encoded, **settings)
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "batch_size": batch_size,
        "prompt_tokens": int(encoded["attention_mask"].sum(1).float().mean()),
        "new_tokens": new_tokens,
        "batch_s": seconds,
        "samples_per_s": batch_size / seconds,
        "new_tokens_per_s": batch_size * new_tokens / seconds,
    }


def experiment_counts(args) -> dict:
    """Samples generated and examples trained by ``af experiment retention`` with these settings."""
    rungs, runs = 4, 4 * len(args.budgets) * args.seeds
    before = args.measure * rungs * 2 + args.usefulness + args.measure * rungs + args.catch * rungs
    after_per_run = args.measure * (rungs if args.transfer else 1) * 2 + args.usefulness
    return {
        "attacker_examples": args.organism * rungs * 2 * args.attacker_epochs,
        "retrain_examples": sum(min(b, args.catch) for b in args.budgets)
        * rungs
        * args.seeds
        * args.retrain_epochs,
        "generated_samples": before + runs * after_per_run,
        "runs": runs,
    }


def main() -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from af_tasks.core.presets import get_preset
    from af_tasks.engine.tiny import train_tiny_tokenizer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="mistral-7b")
    parser.add_argument("--variant", default="compact")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--generate-batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 64])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--organism", type=int, default=40, help="attacker training requests")
    parser.add_argument("--catch", type=int, default=40)
    parser.add_argument("--measure", type=int, default=20)
    parser.add_argument("--usefulness", type=int, default=20)
    parser.add_argument("--attacker-epochs", type=int, default=3)
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--transfer", action="store_true")
    parser.add_argument("--out", default="retention_cost_gpu.json")
    args = parser.parse_args()

    items = retention_prompts(40, args.variant)
    tokenizer = train_tiny_tokenizer(None, vocab_size=8192, corpus=[i.system + i.user for i in items])
    config = AutoConfig.for_model(**get_preset(args.preset).architecture)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    generation = measure_generation(model.eval(), tokenizer, items, args.generate_batch, args.new_tokens)
    training = measure_training(model.train(), tokenizer, items, args.train_batch, args.train_steps)
    counts = experiment_counts(args)
    train_s = (counts["attacker_examples"] + counts["retrain_examples"]) / training["examples_per_s"]
    generate_s = counts["generated_samples"] / generation["samples_per_s"]
    report = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "preset": args.preset,
        "note": "random weights, same compute; tiny tokenizer (token counts differ from the real one)",
        "training": training,
        "generation": generation,
        "experiment": {"settings": vars(args) | {"out": None}, "counts": counts},
        "estimate_s": {"training": train_s, "generation": generate_s, "total": train_s + generate_s},
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.preset} on {report['gpu']} (random weights, bf16)")
    print(
        f"LoRA SFT: {training['step_s']:.3f} s/step at batch {args.train_batch}, "
        f"{training['tokens_per_example']:.0f} tokens/example -> {training['examples_per_s']:.1f} examples/s"
    )
    print(
        f"generate: {generation['batch_s']:.2f} s per batch of {args.generate_batch} "
        f"({generation['prompt_tokens']} prompt + {args.new_tokens} new tokens) -> "
        f"{generation['samples_per_s']:.1f} samples/s"
    )
    print(
        f"experiment ({counts['runs']} retraining runs): {counts['attacker_examples'] + counts['retrain_examples']} "
        f"examples trained, {counts['generated_samples']} samples generated -> "
        f"{train_s / 60:.1f} min training + {generate_s / 60:.1f} min generation = "
        f"{(train_s + generate_s) / 3600:.2f} GPU-hours (model loads not counted)"
    )


if __name__ == "__main__":
    main()
