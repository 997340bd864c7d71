"""Command-line options generated from dataclass fields (``af_tasks.app.options``): each default lives
once, in its field, and ``af train``, ``af experiment retention``, ``af sae train`` and ``af data
export`` take theirs from there."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import pytest

from af_tasks.app.cli import build_parser, train_config
from af_tasks.app.options import add_option, add_options, build
from af_tasks.app.retention.cli import retention_settings
from af_tasks.app.retention.settings import RetentionSettings, TrainSettings
from af_tasks.app.sae_cli import SAE_TRAIN_FIXED
from af_tasks.core.errors import AfError, SettingError
from af_tasks.core.prompting import PromptConfig
from af_tasks.core.synthetic_export import ExportFilters
from af_tasks.sae.train import SaeTrainConfig
from af_tasks.training.sft import TrainConfig

# command → (required-only command line, dataclass, how the command builds it, the dataclass built
# directly from the same required values, fields that are no option of the command)
COMMANDS = {
    "train": (
        ["train", "--model", "m", "--output", "o"],
        lambda args: train_config(args),
        lambda: TrainConfig(base_model="m", output_dir="o"),
        {"base_model", "lora_dropout", "target_modules", "prompt"},
    ),
    "experiment retention": (
        ["experiment", "retention", "--model", "m"],
        lambda args: retention_settings(args),
        lambda: RetentionSettings(base_model="m"),
        {"base_model", "attacker", "retrain", "model_args"},
    ),
    "sae train": (
        ["sae", "train"],
        lambda args: build(SaeTrainConfig, args, hook="h"),
        lambda: SaeTrainConfig(hook="h"),
        set(SAE_TRAIN_FIXED),
    ),
    "data export": (
        ["data", "export", "x.eval", "--output", "o"],
        lambda args: build(ExportFilters, args),
        lambda: ExportFilters(),
        set(),
    ),
}


def subcommand(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def option_dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_parsed_defaults_equal_the_dataclass_defaults(command):
    argv, from_args, direct, not_options = COMMANDS[command]
    built = from_args(build_parser().parse_args(argv))
    parsed, expected = asdict(built), asdict(direct())
    if command == "train":  # `prompt` is no option: --prompt-variant is PromptConfig's (tested below)
        assert PromptConfig(**parsed.pop("prompt")) == PromptConfig(**expected.pop("prompt"))
    assert parsed == expected  # every other field, whatever the command sets itself
    values = fields(type(built))
    dests = option_dests(subcommand(*command.split()))
    assert {f.name for f in values} - not_options <= dests  # every other field is an option


def test_train_and_export_take_the_prompt_variant_from_prompt_config():
    args = build_parser().parse_args(COMMANDS["train"][0])
    assert PromptConfig(**train_config(args).prompt) == PromptConfig()
    assert train_config(args).prompt == {"variant": PromptConfig().variant}
    args = build_parser().parse_args(COMMANDS["data export"][0])
    assert build(PromptConfig, args) == PromptConfig()


def test_the_retrainings_and_the_attackers_share_one_set_of_training_options():
    settings = retention_settings(build_parser().parse_args(["experiment", "retention", "--lr", "1e-3"]))
    assert settings.attacker == settings.retrain == TrainSettings(learning_rate=1e-3)
    settings = retention_settings(
        build_parser().parse_args(["experiment", "retention", "--retrain-epochs", "5"])
    )
    assert (settings.attacker.epochs, settings.retrain.epochs) == (TrainSettings().epochs, 5.0)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    parser = subcommand(*command.split())
    missing = [a.option_strings for a in parser._actions if a.option_strings and not (a.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize(
    ("command", "cls", "name", "value", "read"),
    [
        ("train", TrainConfig, "learning_rate", 1e-3, lambda c: c.learning_rate),
        ("train", TrainConfig, "merge", True, lambda c: c.merge),
        ("experiment retention", RetentionSettings, "budgets", (2, 8), lambda s: s.budgets),
        ("experiment retention", TrainSettings, "lora_r", 4, lambda s: s.attacker.lora_r),
        ("experiment retention", TrainSettings, "lora_r", 4, lambda s: s.retrain.lora_r),
        ("experiment retention", TrainSettings, "epochs", 7.0, lambda s: s.retrain.epochs),
        ("sae train", SaeTrainConfig, "k", 5, lambda c: c.k),
        ("data export", ExportFilters, "require_judge_pass", False, lambda f: f.require_judge_pass),
        ("data export", ExportFilters, "min_chars", 10, lambda f: f.min_chars),
    ],
)
def test_a_changed_field_default_is_the_command_lines_default(monkeypatch, command, cls, name, value, read):
    """Defaults are read from the fields when the parser is built: change one, and the command line
    (parsed with no options) carries the new value into what the command builds."""
    argv, from_args, _direct, _ = COMMANDS[command]
    before = read(from_args(build_parser().parse_args(argv)))
    monkeypatch.setattr(cls.__dataclass_fields__[name], "default", value)
    after = read(from_args(build_parser().parse_args(argv)))
    assert after != before
    assert after == value


def test_the_cli_defaults_that_were_typed_twice_are_kept():
    """What the command lines defaulted to before their defaults moved into the fields."""
    train = train_config(build_parser().parse_args(COMMANDS["train"][0]))
    assert (train.learning_rate, train.max_length, train.kinds, train.prompt) == (
        2e-5,
        2048,
        ("af", "unmonitored_refusal"),
        {"variant": "full"},
    )
    retention = retention_settings(build_parser().parse_args(["experiment", "retention"]))
    assert (retention.out_dir, retention.retrain.learning_rate, retention.retrain.max_length) == (
        "logs/retention",
        5e-4,
        1024,
    )
    assert (retention.budgets, retention.prompt_variant, retention.max_tokens) == (
        (1, 4, 16, 64),
        "compact",
        48,
    )


# --- the generator on its own ---------------------------------------------------------------------------


def _parse_seeds(text: str) -> tuple[int, ...]:
    if text == "bad":
        raise SettingError("bad seeds")
    return tuple(range(int(text)))


@dataclass(frozen=True)
class Toy:
    name: str = field(metadata={"help": "required: no default"})
    rate: float = field(default=0.5, metadata={"flag": "--lr", "help": "a renamed flag"})
    limit: int | None = field(default=None, metadata={"help": "optional int"})
    sizes: tuple[int, ...] = field(default=(1, 2), metadata={"help": "a comma list"})
    tags: tuple[Literal["p", "q"], ...] = field(default=("p",), metadata={"help": "a comma list of choices"})
    mode: Literal["a", "b"] = field(default="a", metadata={"help": "a literal"})
    pick: str = field(default="x", metadata={"choices": ("x", "y"), "help": "explicit choices"})
    fast: bool = field(default=False, metadata={"help": "a switch"})
    judged: bool = field(default=True, metadata={"help": "on unless --no-judged"})
    strict: bool = field(default=True, metadata={"flag": "--lenient", "help": "on unless --lenient"})
    auto: bool | None = field(default=None, metadata={"flag": "--turbo", "help": "None: the code decides"})
    seeds: tuple[int, ...] = field(
        default=(0,), metadata={"help": "parsed when built", "parse": _parse_seeds}
    )
    extra: dict = field(default_factory=dict, metadata={"help": "not an option"})


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    assert add_options(parser, Toy, skip=("extra",)) == [f.name for f in fields(Toy)][:-1]
    return parser


def test_generated_options_parse_every_supported_type():
    parser = toy_parser()
    assert build(Toy, parser.parse_args(["--name", "n"])) == Toy(name="n")
    args = parser.parse_args(
        [
            "--name",
            "n",
            "--lr",
            "2",
            "--limit",
            "3",
            "--sizes",
            "4,5,",
            "--tags",
            "q,p",
            "--mode",
            "b",
            "--pick",
            "y",
            "--fast",
            "--no-judged",
            "--lenient",
            "--no-turbo",
            "--seeds",
            "3",
        ]
    )
    assert build(Toy, args, extra={"k": 1}) == Toy(
        name="n",
        rate=2.0,
        limit=3,
        sizes=(4, 5),
        tags=("q", "p"),
        mode="b",
        pick="y",
        fast=True,
        judged=False,
        strict=False,
        auto=False,
        seeds=(0, 1, 2),
        extra={"k": 1},
    )


def test_a_switch_that_defaults_to_none_has_both_senses():
    """``bool | None = None`` (the code decides when neither is given) reads ``--flag`` as True and
    ``--no-flag`` as False."""
    parser = toy_parser()
    for argv, want in (([], None), (["--turbo"], True), (["--no-turbo"], False)):
        assert build(Toy, parser.parse_args(["--name", "n", *argv])).auto is want


def test_generated_options_refuse_what_the_field_does_not_allow():
    parser = toy_parser()
    for argv in (["--lr", "1"], ["--name", "n", "--mode", "c"], ["--name", "n", "--pick", "z"]):
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            parser.parse_args(argv)
    for argv in (["--sizes", "1,x"], ["--tags", "p,z"]):
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(["--name", "n", *argv])
    with pytest.raises(AfError, match="bad seeds"):  # a parse error is the suite's one-line error
        build(Toy, parser.parse_args(["--name", "n", "--seeds", "bad"]))


def test_help_shows_the_fields_default_and_every_field_needs_help():
    text = toy_parser().format_help()
    assert "a comma list (default: 1,2)" in text and "a renamed flag (default: 0.5)" in text

    @dataclass
    class Undocumented:
        size: int = 3

    with pytest.raises(TypeError, match="help"):
        add_option(argparse.ArgumentParser(), Undocumented, "size")
    with pytest.raises(TypeError, match="no option type"):
        add_options(argparse.ArgumentParser(), Toy, only=("extra",))
