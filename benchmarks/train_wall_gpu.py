"""Whole ``af train`` runs at 7B, timed as a researcher waits for them: compiled layers vs eager (GPU).

``sft_speed_gpu.py`` times steady steps; this times the command. A run pays its compiles (the first
batch length and the second) before the compiled steps' saving pays them back, so whether compiled
decoder layers are the faster choice depends on the run's length. These runs set the CUDA default's
threshold (``training.sft.COMPILE_BREAK_EVEN``): on the default organism run (the seed set's 166
examples, 3 epochs at batch 4: 126 steps) compiled layers lost. Since then ``defaults`` picks by that
threshold, so on the default run it is the eager path; ``compile`` forces the compiled layers. Each run
is a fresh ``python -m af_tasks.app.cli train`` process on a saved random-weight Mistral-7B with the
embedded tokenizer (``inspect_e2e_gpu.build_folder``), with its own empty inductor cache
(``TORCHINDUCTOR_CACHE_DIR``: a first run on a machine; ``--shared-cache`` keeps one cache for all runs,
as later runs on the same machine would find it). Arms (``ARMS``) are
interleaved, ``--repeats`` times each. Per run: wall seconds of the command, exit code, and from its
``organism.json`` the training's own seconds, steps, first and last loss and whether the layers ran
compiled; the JSON is rewritten after every run and names GPU, driver, versions and ``COMMIT``.

    PYTHONPATH=/tmp/site:$PWD COMMIT=$(git rev-parse HEAD) python3 benchmarks/train_wall_gpu.py \\
        --arms compile,no-compile --repeats 2 --budget-s 560 --out $OUT/train_wall.json
    PYTHONPATH=. python benchmarks/train_wall_gpu.py --tiny --arms no-compile,compile --repeats 1 \\
        --extra="--max-steps 2 --limit 8 --prompt-variant compact" --out /tmp/tw.json   # CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: benchmarks.* from the repository root, which goes last
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benchmarks.decode_gpu import machine, spread  # noqa: E402
from benchmarks.inspect_e2e_gpu import add_run_options, prepared_model, run_interleaved  # noqa: E402

ARMS: dict[str, list[str]] = {
    "defaults": [],
    "no-compile": ["--no-compile"],
    "compile": ["--compile"],
    "padding-free varlen": ["--padding-free", "--varlen-attention"],
}
"""``af train`` flags per arm, on top of ``--extra``."""
ORGANISM_FACTS = ("train_runtime_s", "global_steps", "first_loss", "final_loss", "compiled_layers")


def train_command(model_dir: Path, output: Path, flags: list[str], extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "af_tasks.app.cli", "train",
        "--model", str(model_dir), "--output", str(output), *flags, *extra,
    ]  # fmt: skip


def run_once(arm: str, index: int, model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    output = args.work / f"{arm.replace(' ', '-')}-{index}"
    shutil.rmtree(output, ignore_errors=True)
    cache = args.work / "inductor-cache" if args.shared_cache else Path(tempfile.mkdtemp(prefix="inductor-"))
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    command = train_command(model_dir, output, ARMS[arm], args.extra)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    row: dict[str, Any] = {
        "arm": arm,
        "repeat": index,
        "wall_s": round(time.perf_counter() - started, 2),
        "exit_code": done.returncode,
        "cache": "shared" if args.shared_cache else "empty",
    }
    record = output / "organism.json"
    if record.is_file():
        organism = json.loads(record.read_text())
        row |= {key: organism.get(key) for key in ORGANISM_FACTS}
    if done.returncode or not record.is_file():
        row["stderr_tail"] = (done.stdout + done.stderr)[-3000:]
    if not args.shared_cache:
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(output, ignore_errors=True)  # adapters of random weights: nothing to keep
    return row


def summary(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per arm over its successful runs: wall seconds and the training's own seconds."""
    out: dict[str, Any] = {}
    for arm in arms:
        good = [r for r in rows if r["arm"] == arm and r["exit_code"] == 0 and r.get("global_steps")]
        if good:
            out[arm] = {
                "wall_s": spread([r["wall_s"] for r in good]),
                "train_runtime_s": spread([r["train_runtime_s"] for r in good]),
                "steps": good[0]["global_steps"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, "train_wall", repeats=2)
    parser.add_argument("--arms", default="compile,no-compile", help="comma-separated: " + ", ".join(ARMS))
    parser.add_argument("--extra", default="", help="more `af train` arguments, one shell-quoted string")
    parser.add_argument("--shared-cache", action="store_true", help="one inductor cache for every run")
    args = parser.parse_args()
    arms = [arm for arm in args.arms.split(",") if arm]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    args.extra = shlex.split(args.extra)
    args.work = args.work.resolve()
    model_dir = args.model_dir.resolve()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"
    begun = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()}}
    result["command"] = train_command(Path("<model>"), Path("<output>"), ["<arm flags>"], args.extra)
    result["model"] = prepared_model(model_dir, args.tiny, dtype, device, args.reuse_model)
    args.work.mkdir(parents=True, exist_ok=True)
    run_interleaved(
        result, args.out, arms, args.repeats, args.budget_s, begun,
        run=lambda arm, index: run_once(arm, index, model_dir, args),
        summarise=lambda rows: summary(rows, arms),
    )  # fmt: skip


if __name__ == "__main__":
    main()
