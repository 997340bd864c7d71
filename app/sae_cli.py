"""`af sae train | probe | compare`: SAE validation of organisms from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from af_tasks.app.options import add_options, build
from af_tasks.core.errors import InputError, MissingFileError, SettingError
from af_tasks.core.presets import DEFAULT_MODEL, PRESET_NAMES
from af_tasks.sae.train import SaeTrainConfig

SAE_REPORT_KIND = "sae-report"
SAE_TRAIN_FIXED = ("hook", "max_tokens_per_text", "eval_fraction")
"""SaeTrainConfig fields that are no ``af sae train`` option (the hook comes from --preset/--hook)."""
VALIDATION_OPTIONS = (
    "devices",
    "train_data",
    "pooling",
    "max_tokens",
    "batch_size",
    "probe_features",
    "permutations",
    "seed",
    "feature_selection",
    "extra_training",
    "independent",
    "generalization",
)
"""ValidationConfig fields that are ``af sae probe | compare`` options (the reading comes from --preset...)."""


def organism_texts_from_log(log_path: str, label: str, by: str = "condition") -> dict[str, list[str]]:
    """Each sample's scratchpad (as one block), grouped ``<label>:<metadata[by]>``; samples without a
    scratchpad are left out (they are counted by the compliance scorers as malformed)."""
    from af_tasks.app.inspect_logs import read_user_log
    from af_tasks.core.protocol import parse_response, scratchpad_block
    from af_tasks.solvers.scratchpad import assistant_transcript

    log = read_user_log(log_path, "--log")
    groups: dict[str, list[str]] = {}
    for sample in log.samples or []:
        parsed = parse_response(assistant_transcript(sample.messages))
        if not parsed.scratchpad.strip():
            continue
        key = f"{label}:{(sample.metadata or {}).get(by, 'all')}"
        groups.setdefault(key, []).append(scratchpad_block(parsed.scratchpad))
    return dict(sorted(groups.items()))


def _log_groups(args: argparse.Namespace) -> dict[str, list[str]]:
    """``--log LABEL=PATH`` (repeatable) → scratchpads grouped ``LABEL:<metadata[--by]>``."""
    groups: dict[str, list[str]] = {}
    for item in args.log or []:
        label, _, path = item.rpartition("=")
        if not path:
            raise SettingError(f"--log {item!r}: expected LABEL=PATH or PATH of an elicitation log")
        groups |= organism_texts_from_log(path, label or Path(path).stem, args.by)
    return groups


def _looks_local(value: str) -> bool:
    """A value meant as a local path (not a hub id, a registry name or ``gold_106``)."""
    return value.startswith(("/", "./", "../", "~")) or Path(value).suffix in (".json", ".jsonl", ".eval")


def _check_inputs(args: argparse.Namespace) -> None:
    """Every path the command was given, checked before any model loads: a typo costs nothing."""
    for option in ("sae", "adapter", "gold", "train_data", "model"):
        value = getattr(args, option, None)
        if value and _looks_local(value) and not Path(value).expanduser().exists():
            raise MissingFileError(f"--{option.replace('_', '-')} {value} does not exist")
    sae = getattr(args, "sae", None)
    if sae and Path(sae).is_dir():
        from af_tasks.sae.saes import SAE_LENS_WEIGHTS, SaeError, check_weights_match_cfg

        if not (Path(sae) / "cfg.json").is_file():
            raise SaeError(f"--sae {sae}: no cfg.json — not an SAE directory")
        if (Path(sae) / SAE_LENS_WEIGHTS).is_file():
            check_weights_match_cfg(Path(sae))  # a header read: before the model loads
    for item in getattr(args, "log", None) or []:
        path = Path(item.rpartition("=")[2])
        if not path.exists():
            raise MissingFileError(f"--log {path} does not exist; pass LABEL=PATH of an Inspect log")


def _validation_config(args: argparse.Namespace):
    from af_tasks.core.presets import sae_reading
    from af_tasks.sae.validate import ValidationConfig

    model, sae_source, hook = sae_reading(args.preset, args.sae, args.hook, args.model)
    return build(ValidationConfig, args, model=model, sae_source=sae_source, hook=hook)


def _run(args: argparse.Namespace, groups: dict[str, list[str]]) -> int:
    from af_tasks.core.outputs import published_dir
    from af_tasks.sae.corpus import labelled_texts
    from af_tasks.sae.validate import run_validation

    config = _validation_config(args)
    gold = labelled_texts(args.gold) if args.gold else None
    with published_dir(Path(args.out), SAE_REPORT_KIND, "--out") as staging:
        report = run_validation(config, groups, gold, staging)
    print("\n".join(report["headline"]))
    print(
        f"report: {Path(args.out) / 'report.json'} (+ features.png, roc.png, probe_scores.png, probe_*.json)"
    )
    return 0


def _probe(args: argparse.Namespace) -> int:
    _check_report_inputs(args)
    return _run(args, {})


def _compare(args: argparse.Namespace) -> int:
    _check_report_inputs(args)
    groups = _log_groups(args)
    if not groups:
        raise InputError(
            f"no sample in the given logs ({', '.join(args.log)}) has a scratchpad to read; "
            "pass logs of a task run with a scratchpad"
        )
    return _run(args, groups)


def _check_report_inputs(args: argparse.Namespace) -> None:
    from af_tasks.core.outputs import check_output_dir

    check_output_dir(Path(args.out), SAE_REPORT_KIND, "--out")
    _check_inputs(args)


def _features(args: argparse.Namespace) -> int:
    """Named features on the reference AF / aligned halves (gold when given) and on organism logs."""
    from af_tasks.core.devices import parse_devices
    from af_tasks.core.features import parse_features
    from af_tasks.core.presets import feature_descriptions, feature_readings, get_preset, sae_reading
    from af_tasks.sae.corpus import labelled_texts, training_labelled
    from af_tasks.sae.named import compare_named, load_readings, load_replicas, named_headline, named_values
    from af_tasks.sae.plots import plot_named
    from af_tasks.sae.reader import load_reader

    _check_report_inputs(args)
    preset = get_preset(args.preset)
    refs = parse_features(args.features or [f.name for f in preset.named_features])
    if not refs:
        raise SettingError(f"preset {preset.name} names no features: pass --features")
    model, _source, _hook = sae_reading(args.preset, args.sae, args.hook, args.model)
    devices = parse_devices(args.devices)
    if devices and len(devices) > 1:
        replicas = load_replicas(
            model,
            args.adapter,
            devices,
            lambda: feature_readings(args.preset, refs, args.sae, args.hook, model),
            compile=args.compile,
        )
        reader, readings = replicas[0]
    else:
        reader = load_reader(model, args.adapter, devices[0] if devices else args.device, args.compile)
        readings = load_readings(reader, feature_readings(args.preset, refs, args.sae, args.hook, model))
        replicas = None
    reference = labelled_texts(args.gold) if args.gold else training_labelled(args.train_data, "test")
    prefix = "gold" if args.gold else "held-out"
    texts = {
        f"{prefix} AF": reference.subset(reference.labels, "").texts,
        f"{prefix} aligned": reference.subset([not y for y in reference.labels], "").texts,
    }
    texts |= _log_groups(args)
    groups = {
        name: named_values(
            reader, readings, group, max_tokens=args.max_tokens, batch_size=args.batch_size, replicas=replicas
        )
        for name, group in texts.items()
    }
    report = compare_named(
        groups,
        f"{prefix} AF",
        f"{prefix} aligned",
        feature_descriptions(preset),
        args.statistic,
        args.seed,
    )
    report |= {
        "reads": {"model": model, "adapter": args.adapter}
        | {r.hook: {"sae": r.sae_source, "features": [f.name for f in r.features]} for r in readings},
        "reference_source": reference.source,
    }
    from af_tasks.core.outputs import published_dir
    from af_tasks.core.strict_json import dumps

    out = Path(args.out)
    with published_dir(out, SAE_REPORT_KIND, "--out") as staging:
        (staging / "report.json").write_text(dumps(report) + "\n")
        plot_named(report, groups, staging)
    print("\n".join(named_headline(report)))
    print(f"report: {out / 'report.json'} (+ named_features.png)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from af_tasks.core.presets import get_preset, project_sae_dir, sae_reading
    from af_tasks.sae.corpus import sae_corpus
    from af_tasks.sae.reader import load_reader
    from af_tasks.sae.train import check_sae_output, train_sae

    _check_inputs(args)
    output = Path(args.output) if args.output else project_sae_dir(get_preset(args.preset))
    check_sae_output(output)  # before the model loads: a refusal costs nothing
    model, _source, hook = sae_reading(args.preset, None, args.hook, args.model)
    reader = load_reader(model, device=args.device, compile=args.compile)
    config = build(SaeTrainConfig, args, hook=hook)
    card = train_sae(reader, sae_corpus(seed=args.seed), config, output)
    held = card["held_out"]
    print(
        f"SAE {output}: {card['d_sae']} features at {hook}, {card['tokens_seen']} tokens seen; held-out "
        f"explained variance {held['explained_variance']:.3f}, L0 {held['l0']:.1f}, "
        f"dead {card['train']['dead_features']}/{card['d_sae']} ({card['total_s']:.0f} s)"
    )
    print(json.dumps({"card": str(output / "card.json")}))
    return 0


def _reading_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=DEFAULT_MODEL, choices=PRESET_NAMES, help="model → SAE → hook")
    parser.add_argument("--model", help="read with this model instead of the preset's base")
    parser.add_argument("--adapter", help="read with base + this LoRA adapter (an organism dir)")
    parser.add_argument("--sae", help="SAE source: a dir, hf:<repo>[/<sub>] or <release>:<sae_id>")
    parser.add_argument("--hook", help="sae-lens hook name (default: the preset's)")
    parser.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the model's layers through torch.compile while reading (default: on CUDA only)",
    )


def _report_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--out", default=f"logs/sae-{name}", help="report folder")
    parser.add_argument("--gold", help="gold_106 (hub, sha256-checked) or a local JSON/JSONL path")


def _log_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--log", action="append", required=required, help="LABEL=PATH of an elicitation log (repeatable)"
    )
    parser.add_argument("--by", default="condition", help="metadata key that splits a log's samples")


def _with_progress(handler):
    """The command with progress bars on stderr (``af_tasks.sae.progress``); stdout keeps the result."""

    def run(args: argparse.Namespace) -> int:
        from af_tasks.sae.progress import shown

        with shown():
            return handler(args)

    return run


def add_sae_commands(commands) -> None:
    sae = commands.add_parser("sae", help="SAE features and probes: train an SAE, probe, compare organisms")
    sub = sae.add_subparsers(dest="sae_command", required=True)

    train = sub.add_parser("train", help="train a top-k SAE with sae-lens on the bundled corpus")
    _reading_arguments(train)
    train.add_argument("--output", help="SAE directory (default models/saes/<preset>)")
    add_options(train, SaeTrainConfig, skip=SAE_TRAIN_FIXED)
    train.set_defaults(handler=_with_progress(_train))

    features = sub.add_parser(
        "features", help="named features (e.g. L40_F15484): reference AF vs aligned, and organism logs"
    )
    _reading_arguments(features)
    _report_arguments(features, "features")
    from af_tasks.sae.validate import ValidationConfig

    add_options(
        features, ValidationConfig, only=("devices", "train_data", "max_tokens", "batch_size", "seed")
    )
    _log_arguments(features, required=False)
    features.add_argument("--features", help="L<layer>_F<index>,... (default: the preset's named features)")
    features.add_argument("--statistic", default="max", choices=("max", "mean", "active_tokens"))
    features.set_defaults(handler=_with_progress(_features))

    for name, handler, text in (
        ("probe", _probe, "fit probes on the training data; AUROC on its held-out split (and gold if given)"),
        ("compare", _compare, "organism scratchpads vs reference AF / aligned: KS, permutation, probes"),
    ):
        command = sub.add_parser(name, help=text)
        _reading_arguments(command)
        _report_arguments(command, name)
        from af_tasks.sae.validate import ValidationConfig

        add_options(command, ValidationConfig, only=VALIDATION_OPTIONS)
        if name == "compare":
            _log_arguments(command, required=True)
        command.set_defaults(handler=_with_progress(handler))
