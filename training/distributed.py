"""Several processes for `af train` (accelerate launch / torchrun): shipped launch configs and what a
run records about its topology. No Inspect import.

    accelerate launch --config_file "$(python -m af_tasks.training.distributed ddp)" --num_processes 2 \\
        -m af_tasks.app.cli train --preset mistral-7b --output organisms/mistral-af
"""

from __future__ import annotations

import sys
from pathlib import Path

from af_tasks.core.errors import UnknownNameError

ACCELERATE_CONFIGS = ("ddp", "fsdp")


def accelerate_config(name: str) -> Path:
    """Path of a shipped accelerate config: ``ddp`` (data parallel) or ``fsdp`` (FSDP2, sharded)."""
    if name not in ACCELERATE_CONFIGS:
        raise UnknownNameError(f"no accelerate config {name!r}; one of {', '.join(ACCELERATE_CONFIGS)}")
    return Path(__file__).parent / "accelerate" / f"{name}.yaml"


def run_topology(trainer) -> dict:
    """World size, distributed type and batch sizes of a prepared trl/transformers Trainer."""
    state = trainer.accelerator.state
    args = trainer.args
    topology = {
        "world_size": args.world_size,
        "distributed_type": state.distributed_type.value,
        "mixed_precision": str(state.mixed_precision),
        "per_device_batch_size": args.per_device_train_batch_size,
        "grad_accum": args.gradient_accumulation_steps,
        "global_batch_size": args.per_device_train_batch_size
        * args.gradient_accumulation_steps
        * args.world_size,
    }
    if getattr(trainer, "is_fsdp_enabled", False):
        topology["fsdp_version"] = getattr(state.fsdp_plugin, "fsdp_version", 1)
    return topology


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if len(names) != 1 or names[0] not in ACCELERATE_CONFIGS:
        print(
            f"usage: python -m af_tasks.training.distributed {{{'|'.join(ACCELERATE_CONFIGS)}}}",
            file=sys.stderr,
        )
        return 2
    print(accelerate_config(names[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
