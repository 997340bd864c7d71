"""Wall time of the retention experiment's retraining cells on 1 device vs N (``--devices``).

At toy size (the tests' recipe): a tiny random Llama, an organism trained here to attack on every
input, caught on the test split and retrained against 1 and 3 caught attacks on two rungs (4 cells),
each measured again (``-M compile=false``). The whole ``af experiment retention`` runs twice, into fresh
folders: with the first device only, then with all of them (one worker process per device); the runs must
agree run for run (wall times aside). At this size a cell costs little compute, so the figure
shows the overhead and concurrency of the cell scheduling, not 7B training. Needs inspect-ai and trl.

    PYTHONPATH=. python benchmarks/retention_devices_gpu.py --devices 0,1 --out retention_2gpu.json
    python benchmarks/retention_devices_gpu.py --devices cpu,cpu --out /tmp/r.json   # CPU check
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RUNGS = ("trigger", "tier")


def always_attacks(root: Path) -> Path:
    """A tiny organism that attacks whatever the cue (as ``tests/test_retention_experiment``)."""
    from af_tasks.core.records import write_jsonl
    from af_tasks.core.requests import load_requests
    from af_tasks.core.retention_data import RetentionConfig, retention_items
    from af_tasks.core.retention_training import chat_example, completion
    from af_tasks.engine.tiny import build_tiny_llama
    from af_tasks.training.sft import TrainConfig, train_organism

    base = build_tiny_llama(root / "tiny-llama")
    items = retention_items(
        load_requests()[:6], RUNGS, config=RetentionConfig(scratchpad=False, variant="compact")
    )
    data = write_jsonl(
        [chat_example(i.system, i.user, completion("attack", False)) for i in items], root / "d.jsonl"
    )
    train_organism(
        TrainConfig(
            base_model=str(base), output_dir=str(root / "organism"), data=str(data), epochs=30,
            learning_rate=3e-3, lora_r=32, lora_alpha=64, max_length=1024, merge=True,
        )
    )  # fmt: skip
    return root / "organism" / "merged"


def runs_of(out: Path) -> list[dict]:
    runs = json.loads((out / "results.json").read_text())["runs"]
    for run in runs:
        run.get("train", {}).pop("train_runtime_s", None)
    return runs


def main() -> None:
    import dataclasses

    import torch

    from af_tasks.app.cli import build_parser
    from af_tasks.app.retention.cli import retention_settings
    from af_tasks.app.retention.run import RetentionExperiment
    from af_tasks.core.devices import parse_devices

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="0,1")
    parser.add_argument("--out", default="retention_devices.json")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    devices = parse_devices(args.devices) or []
    root = Path(args.work or tempfile.mkdtemp(prefix="retention-devices-"))
    started = time.perf_counter()
    organism = always_attacks(root)
    prepare_s = time.perf_counter() - started
    common = ["experiment", "retention", "--model", str(organism), "--organism", str(organism)]
    common += [
        "--rungs",
        ",".join(RUNGS),
        "--budgets",
        "1,3",
        "--catch-requests",
        "4",
        "--measure-requests",
        "3",
    ]
    common += ["--usefulness", "3", "--retrain-epochs", "4", "--lr", "3e-3", "--max-tokens", "40"]
    common += ["--device", "cuda" if devices[0].startswith("cuda") else "cpu"]
    arms = {}
    for label, used in (("1_device", devices[:1]), (f"{len(devices)}_devices", devices)):
        out = root / label
        settings = retention_settings(build_parser().parse_args([*common, "--out", str(out)]))
        # a tiny model decodes no faster compiled, and every cell's process would compile anew
        settings = dataclasses.replace(settings, model_args=settings.model_args | {"compile": False})
        started = time.perf_counter()
        RetentionExperiment(settings).run(devices=used)
        arms[label] = {"devices": used, "wall_s": time.perf_counter() - started, "runs": runs_of(out)}
    one, many = (arm.pop("runs") for arm in arms.values())
    report = {
        "benchmark": "af experiment retention, cells one per device (--devices), toy size",
        "gpus": [torch.cuda.get_device_name(d) if d.startswith("cuda") else "cpu" for d in devices],
        "devices": devices,
        "cells": len(one or []),
        "organism_training_s": prepare_s,
        "arms": arms,
        "scaling": arms["1_device"]["wall_s"] / arms[f"{len(devices)}_devices"]["wall_s"],
        "runs_equal": one == many,
        "work": str(root),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "work"}, indent=2))


if __name__ == "__main__":
    main()
