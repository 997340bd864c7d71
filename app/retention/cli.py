"""`af experiment retention`: its options are generated from the settings' fields
(``af_tasks.app.options``), so each default lives only in ``settings``."""

from __future__ import annotations

import argparse
from pathlib import Path

from af_tasks.app.options import add_option, add_options, build
from af_tasks.app.retention.run import RetentionExperiment
from af_tasks.app.retention.settings import RetentionSettings, TrainSettings

TRAIN_OPTIONS = ("learning_rate", "lora_r", "lora_alpha", "lora_top_layers", "batch_size", "max_length")
"""TrainSettings fields set once for the attackers and the retrainings (epochs: --attacker-epochs,
--retrain-epochs)."""


def retention_settings(args: argparse.Namespace) -> RetentionSettings:
    """The settings a parsed ``af experiment retention`` command line stands for."""
    from af_tasks.core.presets import base_model_of, get_preset

    train = build(TrainSettings, args)
    return build(
        RetentionSettings,
        args,
        base_model=args.model or base_model_of(get_preset(args.preset)),
        attacker=train,
        retrain=build(TrainSettings, args, epochs=args.retrain_epochs),
        model_args={"device": args.device} if args.device else {},
    )


def _retention(args: argparse.Namespace) -> int:
    experiment = RetentionExperiment(retention_settings(args))
    if args.attacker_data_only:
        path = experiment.write_attacker_data()
        print(f"attacker training set: {path} (train it with: af train --model <base> --data {path} ...)")
        return 0
    from af_tasks.core.devices import parse_devices

    results = experiment.run(devices=parse_devices(args.devices))
    out = Path(args.out_dir)
    print((out / "table.md").read_text())
    print(f"results: {out / 'results.json'}, plot: {out / 'retention.png'} ({results['runtime_s']:.0f} s)")
    return 0


def add_experiment_commands(commands) -> None:
    from af_tasks.core.presets import DEFAULT_MODEL, PRESET_NAMES

    experiment = commands.add_parser("experiment", help="experiments built on the suite's tasks")
    sub = experiment.add_subparsers(dest="experiment_command", required=True)
    retention = sub.add_parser("retention", help="does training against caught attacks remove them?")
    base = retention.add_mutually_exclusive_group()
    base.add_argument("--preset", default=DEFAULT_MODEL, choices=PRESET_NAMES, help="base model preset")
    base.add_argument("--model", help="any HF causal LM id or local directory (the base)")
    retention.add_argument(
        "--attacker-data-only", action="store_true", help="write the attacker's training set and stop"
    )
    add_options(retention, RetentionSettings, skip=("base_model", "attacker", "retrain", "model_args"))
    add_options(retention, TrainSettings, only=TRAIN_OPTIONS)
    add_option(
        retention,
        TrainSettings,
        "epochs",
        flag="--retrain-epochs",
        dest="retrain_epochs",
        help="epochs of each retraining (the attackers': --attacker-epochs)",
    )
    retention.add_argument("--device", help="cpu / cuda (default: the hf provider's choice)")
    retention.add_argument(
        "--devices",
        help="run the retraining cells concurrently, one per device: GPU indices (0,1) or cpu,cpu; "
        "each cell trains and measures on its own device, results as a sequential run",
    )
    retention.set_defaults(handler=_retention)
