"""LoRA SFT speed at 7B: the suite's trainer with its speed options, against tensor-core peak, repeated.

The Mistral-7B architecture with random weights (bf16; the same compute as the real model), the suite's
own trainer (``af_tasks.training.sft.build_trainer``: trl SFTTrainer + peft LoRA r=16 on every projection, loss
on the assistant turn) on seed-set examples rendered with the full elicitation prompt. Every run gets a
freshly built model, the same seed and the same batches, with LoRA dropout off, so the arms' loss curves
differ only by arithmetic. Arms (batch ``--batch-size``):

- ``eager``: the exact path (``--no-compile``; no checkpointing, adapter inputs not cast);
- ``compiled``: each decoder layer through ``torch.compile`` (``--compile``; fuses the LoRA scaling and
  adds, casts, norms, SwiGLU and RoPE): the suite's default on CUDA for runs long enough to pay the
  compile back (``training.sft.COMPILE_BREAK_EVEN``; these short runs would stay eager by default);
- ``eager +liger`` / ``compiled +liger``: Liger's fused RMSNorm / SwiGLU / RoPE kernels on either;
- ``mixed ...``: a mixed-length set (each example cut to its last L tokens, L drawn uniformly from
  ``--mixed-min``..``--max-length``, seeded; the answer always survives), padded batches against
  padding-free ones (``--padding-free``: one concatenated row, no pad tokens; SDPA with a block-diagonal
  mask, or ``varlen``: ``--varlen-attention``, each example attending alone), with compiled layers.

The base model is built once; each run trains a copy of it (on the GPU a copy takes milliseconds, a build
tens of seconds), and what Liger patches in transformers' Mistral module is put back after each run, so
no arm inherits another's kernels. The runs are interleaved: round 1 runs every arm once, then round 2,
... (``--rounds``), so drift of the machine hits every arm alike; a round is not started when the time
left (``--budget-s``) is short of one more round, warm-up left out.
Each run times its steps after ``WARM_STEPS`` warm-up steps (compiles happen there) and counts the real
tokens of each step's batch (no padding). A batch whose shapes a compiled arm has not met yet can
recompile in a timed step (the mixed set's lengths): s/step is the timed steps' mean, what the run
paid, and ``step_median_s`` each run's median step, the steady state without such a compile. Reported
per arm: median / min / max over rounds of s/step and tokens/s, the fraction of peak (4·N FLOPs per
token: forward 2N + input-gradient backward 2N; the frozen weights get no weight gradient) against a
large bf16 matrix product measured in the same run, ratios of medians, and max |Δloss| over the steps
against the arm's reference (same batches), beside each arm's own run-to-run spread over the rounds
(``loss_repeatability``: the GPU's nondeterminism, the scale to read Δloss on).

    PYTHONPATH=. python benchmarks/sft_speed_gpu.py --out sft_speed_gpu.json   # GPU machine (+ trl, liger)
    PYTHONPATH=. python benchmarks/sft_speed_gpu.py --smoke --out /tmp/sft_smoke.json   # CPU, tiny model
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WARM_STEPS = 2


@dataclass(frozen=True)
class Arm:
    name: str
    options: dict = field(default_factory=dict)
    """TrainConfig speed options."""
    mixed: bool = False
    """On the mixed-length set (else every example fills ``--max-length``)."""
    reference: str | None = None
    """The arm whose losses this one's are compared with (same batches, exact path)."""


ARMS = (
    Arm("eager", dict(compile_layers=False)),
    Arm("compiled", dict(compile_layers=True), reference="eager"),
    Arm("eager +liger", dict(compile_layers=False, liger_kernels=True), reference="eager"),
    Arm("compiled +liger", dict(compile_layers=True, liger_kernels=True), reference="eager"),
    Arm("mixed padded", dict(compile_layers=True), mixed=True),
    Arm(
        "mixed padding-free",
        dict(compile_layers=True, padding_free=True),
        mixed=True,
        reference="mixed padded",
    ),
    Arm(
        "mixed padding-free varlen",
        dict(compile_layers=True, padding_free=True, varlen_attention=True),
        mixed=True,
        reference="mixed padded",
    ),
)
BASELINE = "eager"
"""The exact path (eager layers; the suite's default on CPU and for short runs on CUDA):
every full-length arm's speed is also given against it."""


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


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
                synchronize()
                self.trace = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
                self.trace.__enter__()
                self.wall = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self.trace is not None and state.global_step == first_step + steps:
                synchronize()
                self.trace.__exit__(None, None, None)
                self.wall = time.perf_counter() - self.wall

        def summary(self) -> dict:
            from benchmarks.profiling import summarise

            return {"steps": steps} | summarise(self.trace, self.wall)

    return ProfileSteps()


def mixed_lengths(count: int, low: int, high: int, seed: int = 0) -> list[int]:
    """The mixed-length set's lengths: uniform in [low, high], seeded (the same for every arm)."""
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(count)]


def cut_to_lengths(dataset, lengths: list[int]):
    """Each tokenised example cut to its last ``lengths[i]`` tokens, on every per-token column. The
    tail keeps the answer (its loss tokens); for a speed measurement with random weights only the
    length matters."""

    def cut(example: dict, index: int) -> dict:
        length = len(example["input_ids"])
        keep = lengths[index]
        return {
            key: value[-keep:]
            for key, value in example.items()
            if isinstance(value, list) and len(value) == length
        }

    return dataset.map(cut, with_indices=True)


def dynamo_counts() -> dict[str, int]:
    """Graphs compiled and graph breaks so far (a compiled arm that compiled nothing ran eager)."""
    from torch._dynamo.utils import counters

    return {
        "unique_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


def build_model(smoke: bool):
    """The Mistral-7B architecture with random weights on the GPU, or (smoke) a two-layer Mistral of
    the same shape family on the CPU in fp32."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from benchmarks.lora_presets_gpu import random_weights_model

    if not smoke:
        return random_weights_model("mistral-7b")
    config = MistralConfig(
        vocab_size=8192,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return MistralForCausalLM(config)


MODELING = "transformers.models.mistral.modeling_mistral"
"""The module whose functions and classes Liger patches (globally, not only on the model it is given)."""


@contextlib.contextmanager
def restored_module(name: str = MODELING):
    """What the block replaces in module ``name`` (its globals, its classes' attributes) is put back
    after it: Liger's kernels stay with the run that asked for them. Globals the block adds stay
    (torch.compile puts the compiled layer's functions among the module's globals)."""
    module = importlib.import_module(name)
    saved = dict(vars(module))
    classes = {
        key: {attr: value for attr, value in vars(cls).items() if not attr.startswith("__")}
        for key, cls in saved.items()
        if isinstance(cls, type) and cls.__module__ == name
    }
    try:
        yield
    finally:
        for key, attributes in classes.items():
            cls = saved[key]
            for attr in [a for a in vars(cls) if not a.startswith("__") and a not in attributes]:
                delattr(cls, attr)
            for attr, value in attributes.items():
                if vars(cls).get(attr) is not value:
                    setattr(cls, attr, value)
        vars(module).update(saved)  # keys added since stay: dynamo keeps its compiled code there


def run_once(arm: Arm, base, examples: list[dict], tokenizer, settings: dict, profile: bool = False) -> dict:
    """One trainer for ``arm`` on a fresh copy of ``base``: per-step times, real tokens per step, losses."""
    import torch

    with restored_module():
        try:
            return _run_once(arm, base, examples, tokenizer, settings, profile)
        except Exception as error:  # noqa: BLE001 - one arm's failure is its result; the others still run
            import gc
            import traceback

            traceback.print_exc()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return {"error": f"{type(error).__name__}: {str(error)[:300]}"}


def _run_once(arm: Arm, base, examples: list[dict], tokenizer, settings: dict, profile: bool) -> dict:
    import torch

    from af_tasks.training.sft import TrainConfig, build_trainer
    from benchmarks.step_timer import step_timer

    steps, batch_size = settings["steps"], settings["batch_size"]
    config = TrainConfig(
        base_model="mistral-7b (random weights)",
        output_dir=tempfile.mkdtemp(),
        batch_size=batch_size,
        max_steps=steps,
        max_length=settings["max_length"],
        learning_rate=1e-4,
        lora_dropout=0.0,
        save_steps=10_000,
        **arm.options,
    )
    started = time.monotonic()
    resident = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0  # the base, kept
    model = copy.deepcopy(base)
    parameters = sum(p.numel() for p in model.parameters())
    timer = step_timer()
    profiler = profiler_callback(first_step=WARM_STEPS) if profile else None
    callbacks = [timer] + ([profiler] if profiler else [])
    before = dynamo_counts()
    torch.manual_seed(0)
    trainer = build_trainer(model, tokenizer, examples[: steps * batch_size], config, callbacks=callbacks)
    if arm.mixed:
        trainer.train_dataset = cut_to_lengths(trainer.train_dataset, settings["lengths"])
    tokens: list[int] = []
    collate = trainer.data_collator

    def counting_collator(features):
        tokens.append(sum(len(feature["input_ids"]) for feature in features))
        return collate(features)

    trainer.data_collator = counting_collator
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        trainer.train()
    except torch.OutOfMemoryError as error:
        del trainer, model
        torch.cuda.empty_cache()
        return {"error": f"out of memory: {str(error)[:160]}"}
    after = dynamo_counts()
    timed = timer.times[WARM_STEPS:]
    wall = time.monotonic() - started
    run = {
        "wall_s": wall,
        "steady_wall_s": wall - sum(timer.times[:WARM_STEPS]) + WARM_STEPS * sum(timed) / len(timed),
        "parameters": parameters,
        "step_times_s": timer.times,
        "tokens_per_step": tokens[: len(timer.times)],
        "step_s": sum(timed) / len(timed),
        "step_median_s": statistics.median(timed),
        "tokens_per_s": sum(tokens[WARM_STEPS : len(timer.times)]) / sum(timed),
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "peak_memory_gib": (
            (torch.cuda.max_memory_allocated() - resident) / 2**30 if torch.cuda.is_available() else None
        ),
        "dynamo": {key: after[key] - before[key] for key in after},
    }
    if profiler is not None:
        run["profile"] = profiler.summary()
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return run


def next_round_s(runs: dict[str, list[dict]]) -> float:
    """What one more round should take: each arm's last run without its warm-up (compiles happen once)."""
    return sum(arm_runs[-1].get("steady_wall_s", 0.0) for arm_runs in runs.values() if arm_runs)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def max_difference(a: list[float], b: list[float]) -> float | None:
    if not a or not b or len(a) != len(b):
        return None
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def summarise_arm(arm: Arm, runs: list[dict], peak: float, references: dict[str, list[float]]) -> dict:
    good = [run for run in runs if "error" not in run]
    summary: dict[str, Any] = {"arm": arm.name, "options": arm.options, "mixed": arm.mixed, "runs": runs}
    if not good:
        return summary
    parameters = good[0]["parameters"]
    tokens_per_s = [run["tokens_per_s"] for run in good]
    summary |= {
        "repeats": len(good),
        "step_s": spread([run["step_s"] for run in good]),
        "tokens_per_s": spread(tokens_per_s),
        "fraction_of_peak": spread([4 * parameters * value / peak for value in tokens_per_s]),
        "tokens_per_step": statistics.mean(
            sum(run["tokens_per_step"]) / len(run["tokens_per_step"]) for run in good
        ),
        "step_median_s": spread([run["step_median_s"] for run in good]),
        "peak_memory_gib": max((run["peak_memory_gib"] or 0.0) for run in good),
        "losses": good[0]["losses"],
        "loss_repeatability": max((max_difference(run["losses"], good[0]["losses"]) or 0.0) for run in good),
    }
    if arm.reference is not None and arm.reference in references:
        summary["reference"] = arm.reference
        summary["max_loss_difference_vs_reference"] = max_difference(
            good[0]["losses"], references[arm.reference]
        )
    return summary


def environment() -> dict[str, Any]:
    """GPU, driver, library versions and the suite's commit: what the figures were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from af_tasks.training.sft import code_revision

    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        smi = None
    commit = os.environ.get("AF_GIT_COMMIT")  # a copied tree without .git: the caller names it
    try:
        commit = commit or (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    return {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "nvidia_smi": smi,
        "git_commit": commit,
        "suite": code_revision(),
        "versions": {
            "torch": torch.__version__,
            **{name: package(name) for name in ("transformers", "trl", "peft", "liger-kernel", "accelerate")},
        },
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch._dynamo

    from af_tasks.training.sft import TrainConfig, load_training_examples
    from benchmarks.lora_presets_gpu import seed_set_tokenizer

    started = time.monotonic()
    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.smoke:
        raise SystemExit("no CUDA GPU: pass --smoke for the CPU run on a tiny model")
    tokenizer = seed_set_tokenizer()
    count = args.steps * args.batch_size
    examples, _ = load_training_examples(
        TrainConfig(base_model="-", output_dir="-", limit=count, prompt={"variant": "full"})
    )
    settings = {
        "smoke": args.smoke,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lengths": mixed_lengths(count, args.mixed_min, args.max_length),
    }
    unknown = sorted(set(args.arms or ()) - {arm.name for arm in ARMS})
    if unknown:
        raise SystemExit(
            f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(a.name for a in ARMS)}"
        )
    arms = [arm for arm in ARMS if args.arms is None or arm.name in args.arms]
    skipped = {
        arm.name: "needs CUDA (Liger's Triton kernels)"
        for arm in arms
        if arm.options.get("liger_kernels") and not on_gpu
    }
    arms = [arm for arm in arms if arm.name not in skipped]
    from benchmarks.generation_gpu import matmul_peak

    peak = matmul_peak("cuda" if on_gpu else "cpu", size=8192 if on_gpu else 512)
    for limit in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, limit):  # compiled arms share the layers' code objects
            setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 256))
    base = build_model(args.smoke)
    machine = environment()
    runs: dict[str, list[dict]] = {arm.name: [] for arm in arms}
    round_s: list[float] = []
    for round_index in range(args.rounds):
        elapsed = time.monotonic() - started
        if round_s and elapsed + next_round_s(runs) > args.budget_s:
            print(
                f"round {round_index + 1} not started: {elapsed:.0f} s used of the {args.budget_s} s budget"
            )
            break
        round_started = time.monotonic()
        for arm in arms:
            run = run_once(arm, base, examples, tokenizer, settings)
            runs[arm.name].append(run)
            status = run.get("error") or f"{run['step_s']:.3f} s/step, {run['tokens_per_s']:.0f} tok/s"
            print(f"round {round_index + 1} {arm.name}: {status}", flush=True)
        round_s.append(time.monotonic() - round_started)
        partial = assemble(args, arms, runs, {}, peak, settings, skipped, round_s, started, machine)
        Path(args.out).write_text(json.dumps(partial | {"partial": True}, indent=2) + "\n")
    profiles = {}
    for arm in arms:  # an extra run each, outside the timed rounds (the profiler slows what it records)
        if arm.name in (args.profile or []) and time.monotonic() - started < args.budget_s + 60:
            profiles[arm.name] = run_once(arm, base, examples, tokenizer, settings, profile=True).get(
                "profile"
            )
    return assemble(args, arms, runs, profiles, peak, settings, skipped, round_s, started, machine)


def assemble(args, arms, runs, profiles, peak, settings, skipped, round_s, started, machine) -> dict:
    """The report from the runs so far (written after every round too, so a cut-off run leaves one)."""
    references = {
        name: next(run["losses"] for run in arm_runs if "error" not in run)
        for name, arm_runs in runs.items()
        if any("error" not in run for run in arm_runs)
    }
    results = [summarise_arm(arm, runs[arm.name], peak, references) for arm in arms]
    for result in results:
        if profiles.get(result["arm"]):
            result["profile"] = profiles[result["arm"]]
    by_name = {result["arm"]: result for result in results if "tokens_per_s" in result}
    for result in by_name.values():
        against = "mixed padded" if result["mixed"] else BASELINE
        if against in by_name and against != result["arm"]:
            result["speedup_vs"] = against
            result["speedup_on_medians"] = (
                result["tokens_per_s"]["median"] / by_name[against]["tokens_per_s"]["median"]
            )
    return {
        **machine,
        "model": (
            "tiny 2-layer Mistral (smoke), fp32 CPU"
            if args.smoke
            else "mistral-7b architecture (random weights), bf16, LoRA r=16 on all projections"
        ),
        "matmul_peak_tflops": peak / 1e12,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "mixed_lengths": {
            "min": args.mixed_min,
            "max": args.max_length,
            "mean": statistics.mean(settings["lengths"]),
        },
        "steps_per_run": args.steps,
        "warm_steps_excluded": WARM_STEPS,
        "rounds_run": len(round_s),
        "round_s": round_s,
        "wall_s": time.monotonic() - started,
        "skipped": skipped,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{report['gpu']} ({report['nvidia_smi']}); {report['model']}; matmul peak "
        f"{report['matmul_peak_tflops']:.1f} TFLOP/s; batch {report['batch_size']}, {report['rounds_run']} "
        f"rounds interleaved, {report['wall_s']:.0f} s"
    )
    print(
        f"{'arm':36} {'tok/step':>8} {'s/step med [min-max]':>24} {'tok/s med':>9} {'of peak':>7} "
        f"{'speedup':>7} {'GiB':>5} {'max|Δloss|':>10} {'graphs':>6} {'step med':>8}"
    )
    for r in report["results"]:
        if "tokens_per_s" not in r:
            print(f"{r['arm']:36} {r['runs'][0].get('error') if r['runs'] else 'no runs'}")
            continue
        step = r["step_s"]
        delta = r.get("max_loss_difference_vs_reference")
        graphs = r["runs"][0]["dynamo"]["unique_graphs"]
        print(
            f"{r['arm']:36} {r['tokens_per_step']:8.0f} "
            f"{step['median']:8.3f} [{step['min']:.3f}-{step['max']:.3f}] {r['tokens_per_s']['median']:9.0f} "
            f"{r['fraction_of_peak']['median']:7.1%} {r.get('speedup_on_medians', float('nan')):7.2f} "
            f"{r['peak_memory_gib']:5.1f} {'-' if delta is None else f'{delta:.4f}':>10} {graphs:6d} "
            f"{r['step_median_s']['median']:8.3f}"
        )
    for r in report["results"]:
        if "profile" in r:
            from benchmarks.profiling import print_summary

            print_summary(f"{r['arm']}, {r['profile']['steps']} steady steps of an extra run", r["profile"])
    for name, why in report["skipped"].items():
        print(f"{name:36} skipped: {why}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=7, help="steps per run (the first two not timed)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every arm")
    parser.add_argument("--budget-s", type=float, default=400, help="start no round that would end past this")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--mixed-min", type=int, default=128, help="shortest example of the mixed set")
    parser.add_argument("--arms", help="comma-separated subset: " + ",".join(arm.name for arm in ARMS))
    parser.add_argument(
        "--profile",
        help="comma-separated arms to profile (torch.profiler, two steady steps of an extra run each)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="CPU: a tiny Mistral, fp32 (the script's own check)"
    )
    parser.add_argument("--out", default="sft_speed_gpu.json")
    args = parser.parse_args()
    args.arms = args.arms.split(",") if args.arms else None
    args.profile = args.profile.split(",") if args.profile else None
    if args.smoke:
        args.max_length = min(args.max_length, 1024)
    report = run_benchmark(args)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


if __name__ == "__main__":
    main()
