"""End to end through Inspect: ``inspect eval af_tasks/free_tier`` with ``--model organism/<dir>`` vs
``--model hf/<dir>``, wall time of the whole command (GPU).

What a user waits for: process start, task and registry import, model load (and, for ``organism/``, the
compiled decode step's warm-up), the paired samples through the scratchpad protocol, scoring, log
writing. The model is the Mistral-7B architecture (``generation_gpu.build_model``) with random weights
in bf16 (built with that dtype, so the rotary buffers are not rounded) and the vocabulary, special
tokens and chat template of the embedded tokenizer (``models/smollm2-135m-instruct``), saved with
``save_pretrained`` to ``--model-dir``: a plain model folder both providers load (no ``organism.json``,
which is optional: the task uses its default, the full system prompt). Random weights rarely emit EOS
and never a scratchpad, so every sample is one model turn of about ``max_tokens`` tokens.

Both arms get the same arguments: ``-T max_tokens``, ``--max-connections`` (the batch size of both:
``hf/`` batches up to ``max_connections`` requests, ``organism/`` decodes in that many slots),
``-M dtype`` and the task's default sampling (no temperature is passed: the task sets none, so each
provider samples at the model's generation defaults; the log's generate config is recorded). No grader is
bound, so the AF judge marks every sample unscored (reason ``no_grader``) and the other scorers score;
the JSON counts both per run. Arms are interleaved, ``--repeats`` times each; each run's wall seconds,
exit code, status, samples completed, output tokens and scores are written to ``--out`` after every
run (a run cut by its time limit keeps the finished ones); ``--budget-s`` starts no run that would end
past it, judged by the longest run so far. The JSON names the GPU, driver, library versions and the
commit (``COMMIT`` in the environment).

On the GPU machine (no network, no inspect_ai): carry ``.whl`` and ``.whl-inspect``
(``benchmarks/gpu_carry.sh`` and ``benchmarks/gpu_carry.sh --inspect``), then from the repository root
install into a folder whose path contains ``site-packages``: Inspect names an installed package's tasks
``af_tasks/...`` only there (or for an editable install); elsewhere ``af_tasks/free_tier`` is not found,
which the script checks before it starts.

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
        --target /tmp/site-packages .whl/*.whl .whl-inspect/*.whl \\
        && export PYTHONPATH=/tmp/site-packages:$PWD PYTHONSAFEPATH=1
    COMMIT=$(git rev-parse HEAD) python3 benchmarks/inspect_e2e_gpu.py --limit 256 --max-tokens 128 \\
        --max-connections 32 --repeats 3 --budget-s 540 --out $OUT/inspect_e2e.json
    # a later call on the same machine: add --reuse-model (the folder in /tmp is kept while it is warm)
    python benchmarks/inspect_e2e_gpu.py --tiny --limit 8 --repeats 1 --out /tmp/e2e.json  # CPU check
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: benchmarks.* from the repository root, which goes last
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # (its af_tasks/ is not the package)

from benchmarks.decode_gpu import Rows, machine, spread  # noqa: E402
from benchmarks.generation_gpu import build_model  # noqa: E402

TOKENIZER = Path(__file__).resolve().parent.parent / "models" / "smollm2-135m-instruct"
TINY = dict(model_type="mistral", sliding_window=None, max_position_embeddings=8192)
"""``--tiny``: the 2-layer shape as a Mistral with a context that holds the full system prompt."""
ARMS = ("organism", "hf")
BUILT = "benchmark_model.json"
"""Written last into ``--model-dir``: what was built (``--reuse-model`` checks it)."""


def build_folder(model_dir: Path, tiny: bool, dtype: str, device: str) -> dict[str, Any]:
    """Random-weight model + the embedded tokenizer (with its chat template) saved to ``model_dir``."""
    import gc

    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    overrides: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = build_model(device, tiny, dtype=getattr(torch, dtype), **(TINY if tiny else {}), **overrides)
    record = {
        "tiny": tiny,
        "dtype": dtype,
        "tokenizer": TOKENIZER.name,
        "architecture": {k: v for k, v in model.config.to_dict().items() if not k.startswith("_")},
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    shutil.rmtree(model_dir, ignore_errors=True)
    started = time.perf_counter()
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    record["save_s"] = round(time.perf_counter() - started, 1)
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # the runs load the model in their own processes
    (model_dir / BUILT).write_text(json.dumps(record, indent=1) + "\n")
    return record


def check_task_names() -> None:
    """Refuse to start where Inspect would not find ``af_tasks/free_tier`` (see the docstring)."""
    from inspect_ai._util.package import get_installed_package_name

    import af_tasks.free_tier as module

    if get_installed_package_name(module.free_tier) != "af_tasks":
        raise SystemExit(
            f"af_tasks is at {Path(module.__file__).parent.parent}, not under a folder named site-packages: "
            "Inspect will not find af_tasks/free_tier there; install with pip --target /tmp/site-packages"
        )


def eval_command(arm: str, model_dir: Path, log_dir: Path, args: argparse.Namespace) -> list[str]:
    """The same ``inspect eval`` for either provider (``python -m inspect_ai``: no console script needed)."""
    return [
        sys.executable, "-m", "inspect_ai", "eval", "af_tasks/free_tier",
        "--model", f"{arm}/{model_dir}",
        "--limit", str(args.limit),
        "--max-connections", str(args.max_connections),
        "-T", f"max_tokens={args.max_tokens}",
        "-M", f"dtype={args.dtype}",
        "--log-dir", str(log_dir),
        "--log-format", "eval",
        "--display", "none",
    ]  # fmt: skip


def log_facts(log_dir: Path) -> dict[str, Any]:
    """Status, sample counts, tokens, generate config and per-scorer scored/unscored counts of the run's
    one ``.eval`` log."""
    import math

    from inspect_ai.log import read_eval_log

    logs = sorted(log_dir.glob("*.eval"))
    if len(logs) != 1:
        return {"log": None, "logs_found": len(logs)}
    log = read_eval_log(str(logs[0]))
    samples = log.samples or []
    scorers: dict[str, dict[str, Any]] = {}
    for sample in samples:
        for name, score in (sample.scores or {}).items():
            counts = scorers.setdefault(name, {"scored": 0, "unscored": 0, "reasons": {}})
            value = score.value
            if isinstance(value, float) and math.isnan(value):
                counts["unscored"] += 1
                reason = str(score.reason)
                counts["reasons"][reason] = counts["reasons"].get(reason, 0) + 1
            else:
                counts["scored"] += 1
    usage = log.stats.model_usage if log.stats else {}
    results = log.results
    timing = phases(log, samples)
    return {
        **timing,
        "log": logs[0].name,
        "status": log.status,
        "error": str(log.error.message) if log.error else None,
        "samples": len(samples),
        "completed": results.completed_samples if results else 0,
        "sample_errors": sum(1 for sample in samples if sample.error),
        "turns": sum(int(sample.store.get("turns", 0)) for sample in samples),
        "input_tokens": sum(u.input_tokens for u in usage.values()),
        "output_tokens": sum(u.output_tokens for u in usage.values()),
        "generate_config": log.plan.config.model_dump(exclude_none=True),
        "task_args": log.eval.task_args,
        "scorers": scorers,
    }


def phases(log: Any, samples: list[Any]) -> dict[str, Any]:
    """Where a run's time went, from the log's clocks: ``eval_s`` from the eval's start to its end (the
    rest of the wall time is process start, imports and log writing); ``first_result_s`` from the start
    to the first sample's end (model load, warm-up and compilation, the first answers);
    ``sample_total_s`` each sample's own running time. The eval's clock is kept in whole seconds, the
    samples' finer, so the two can disagree by up to a second."""
    from datetime import datetime

    def seconds(later: str | None, earlier: str | None) -> float | None:
        if not later or not earlier:
            return None
        return round((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds(), 2)

    started = log.stats.started_at if log.stats else None
    ended = [sample.completed_at for sample in samples if sample.completed_at]
    totals = [sample.total_time for sample in samples if sample.total_time is not None]
    return {
        "eval_s": seconds(log.stats.completed_at if log.stats else None, started),
        "first_result_s": seconds(min(ended), started) if ended else None,
        "sample_total_s": spread(totals) if totals else None,
    }


def run_once(arm: str, index: int, model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    log_dir = args.work / "logs" / f"{arm}-{index}"
    shutil.rmtree(log_dir, ignore_errors=True)
    command = eval_command(arm, model_dir, log_dir, args)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    row: dict[str, Any] = {
        "arm": arm,
        "repeat": index,
        "wall_s": round(wall, 2),
        "exit_code": done.returncode,
    }
    row |= log_facts(log_dir)
    if done.returncode or row.get("status") != "success":
        row["stderr_tail"] = (done.stdout + done.stderr)[-3000:]
    if row.get("output_tokens"):
        row["output_tokens_per_s"] = round(row["output_tokens"] / wall, 1)
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: wall seconds over successful runs (median, min, max), and the ratio hf / organism."""
    out: dict[str, Any] = {}
    for arm in ARMS:
        walls = [
            r["wall_s"]
            for r in rows
            if r["arm"] == arm and r["exit_code"] == 0 and r.get("status") == "success"
        ]
        if walls:
            out[arm] = {"wall_s": spread(walls)}
    if len(out) == len(ARMS):
        out["hf_over_organism"] = round(
            out["hf"]["wall_s"]["median"] / out["organism"]["wall_s"]["median"], 3
        )
    return out


def prepared_model(model_dir: Path, tiny: bool, dtype: str, device: str, reuse: bool) -> dict[str, Any]:
    """The model folder's record: the one ``model_dir`` holds when ``reuse`` and it was built with the same
    ``tiny`` and ``dtype``, else a freshly built one (``build_folder``) with its build time."""
    built = model_dir / BUILT
    same = built.is_file() and {"tiny": tiny, "dtype": dtype}.items() <= json.loads(built.read_text()).items()
    if reuse and same:
        record = json.loads(built.read_text()) | {"reused": True}
    else:
        started = time.perf_counter()
        record = build_folder(model_dir, tiny, dtype, device)
        record["build_and_save_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(record | {"architecture": "..."}), flush=True)
    return record


def run_interleaved(
    result: dict[str, Any],
    out: Path,
    arms: Sequence[str],
    repeats: int,
    budget_s: float | None,
    begun: float,
    run: Callable[[str, int], dict[str, Any]],
    summarise: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> None:
    """Each arm ``repeats`` times, interleaved (round 1 runs every arm, then round 2, ...), rows written to
    ``out`` after every run; no run is started that would end past ``budget_s`` (seconds since
    ``begun``), judged by the longest run so far. Runs are dicts with ``wall_s``."""
    rows = Rows(result, out)
    for index, arm in ((index, arm) for index in range(repeats) for arm in arms):
        elapsed = time.perf_counter() - begun
        longest = max((r["wall_s"] for r in rows), default=0.0)
        if budget_s is not None and elapsed + longest > budget_s:
            result["stopped"] = f"budget: {elapsed:.0f} s elapsed + longest run {longest:.0f} s > {budget_s}"
            print(result["stopped"], flush=True)
            break
        row = run(arm, index)
        result["summary"] = summarise([*rows, row])
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "stderr_tail"}), flush=True)
    result["total_s"] = round(time.perf_counter() - begun, 1)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("summary", {})), flush=True)


def add_run_options(parser: argparse.ArgumentParser, name: str, repeats: int) -> None:
    """The options of ``prepared_model`` and ``run_interleaved``: where the model and the runs' files go
    (``/tmp/<name>_model``, ``/tmp/<name>``), the tiny CPU check, repeats and the time budget."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, default=Path(f"/tmp/{name}_model"))
    parser.add_argument("--work", type=Path, default=Path(f"/tmp/{name}"), help="runs write here")
    parser.add_argument("--tiny", action="store_true", help="2-layer model (CPU check)")
    parser.add_argument("--reuse-model", action="store_true", help="keep a model --model-dir already holds")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no run that would end later than this many seconds after the start (build included)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser, "inspect_e2e", repeats=3)
    parser.add_argument("--dtype", default=None, help="bfloat16 (default; float32 with --tiny)")
    parser.add_argument("--limit", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-connections", type=int, default=32)
    args = parser.parse_args()
    args.dtype = args.dtype or ("float32" if args.tiny else "bfloat16")
    model_dir = args.model_dir.resolve()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    begun = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(device), "args": {k: str(v) for k, v in vars(args).items()}}
    import inspect_ai

    check_task_names()
    result["machine"]["inspect_ai"] = inspect_ai.__version__
    result["command"] = eval_command("<arm>", model_dir, Path("<logs>"), args)
    result["af_judge"] = "no grader bound: the AF judge marks each sample unscored (reason no_grader)"
    result["sampling"] = (
        "the task sets no temperature (generate_config per run): both providers sample at the model's "
        "generation defaults, transformers' temperature 1.0, top_k 50, top_p 1.0"
    )
    result["model"] = prepared_model(model_dir, args.tiny, args.dtype, device, args.reuse_model)
    run_interleaved(
        result, args.out, ARMS, args.repeats, args.budget_s, begun,
        run=lambda arm, index: run_once(arm, index, model_dir, args),
        summarise=summary,
    )  # fmt: skip


if __name__ == "__main__":
    main()
