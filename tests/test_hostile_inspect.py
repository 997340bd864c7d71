"""Hostile-but-fair inputs at the suite's Inspect entry points, run as a user runs them: ``inspect eval``
(task construction, every task), the ``organism/`` provider, ``inspect score`` (the SAE, probe and judge
scorers) and ``inspect eval-retry``.

Each case asserts: exit status non-zero, one error line naming the culprit, no traceback, nothing written
into the working folder (its tree hashed before and after: the inputs, the model folders and the log
given to ``inspect score`` included) and no log in the log folder (every case here fails before Inspect
opens a log). Inspect's own log reading (a missing or truncated ``.eval`` given to ``eval-retry`` /
``score``) happens before any suite code runs and is not covered: see the README's reliability section.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostile import assert_one_line_inspect_error, run_inspect, tree_digest

pytestmark = pytest.mark.cli  # every case starts the real `inspect` command in a subprocess

HOOK = "blocks.1.hook_resid_post"
SHORT_WINDOW = 160
"""Context window of the short-window copy of the tiny model: no bundled prompt fits it."""


@dataclass(frozen=True)
class Inputs:
    """Artifacts shared by the cases (built once): models, an SAE, a probe and finished logs."""

    tiny: Path
    short: Path
    sae: Path
    probe: Path
    mock_log: Path
    organism_log: Path


def copy_model(source: Path, work: Path, name: str = "model") -> Path:
    return Path(shutil.copytree(source, work / name))


def write(work: Path, name: str, content: str | bytes) -> str:
    path = work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return name


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def task(name: str, *args: str, model: str = "mockllm/model", extra: tuple[str, ...] = ()) -> list[str]:
    command = ["inspect", "eval", f"af_tasks/{name}", "--model", model, *extra]
    for arg in args:
        command += ["-T", arg]
    return command


Case = Callable[[Path, Inputs], tuple[list[str], tuple[str, ...]]]
"""(working folder, shared inputs) -> (command, culprits the error line must name)."""

# --- inspect eval: task construction (mockllm: the model is not under test) ----------------------------

TASK_CASES: dict[str, Case] = {
    "requests-missing": lambda w, i: (task("free_tier", "requests=missing.csv"), ("missing.csv",)),
    "requests-folder": lambda w, i: (
        (w / "folder.csv").mkdir() or task("free_tier", "requests=folder.csv"),
        ("folder.csv", "folder"),
    ),
    "requests-empty": lambda w, i: (
        task("free_tier", "requests=" + write(w, "empty.csv", "")),
        ("empty.csv", "no rows"),
    ),
    "requests-header-only": lambda w, i: (
        task("contractor", "requests=" + write(w, "header.csv", "request,category\n")),
        ("header.csv", "no rows"),
    ),
    "requests-no-request-column": lambda w, i: (
        task("free_tier", "requests=" + write(w, "nocol.csv", "question,category\nhow?,x\n")),
        ("nocol.csv", "request"),
    ),
    "requests-bad-encoding": lambda w, i: (
        task(
            "free_tier", "requests=" + write(w, "latin.csv", "request\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
        ),
        ("latin.csv", "UTF-8"),
    ),
    "requests-wrong-type": lambda w, i: (
        task("free_tier", "requests=" + write(w, "types.jsonl", json.dumps({"request": 5}))),
        ("types.jsonl", "row 1", "request"),
    ),
    "requests-not-json": lambda w, i: (
        task("rlhf_cues", "requests=" + write(w, "broken.jsonl", '{"request": "a"}\n{oops\n')),
        ("broken.jsonl", "row 2"),
    ),
    "requests-json-not-a-list": lambda w, i: (
        task("free_tier", "requests=" + write(w, "object.json", json.dumps({"request": "a"}))),
        ("object.json",),
    ),
    "requests-duplicate-ids": lambda w, i: (
        task(
            "free_tier",
            "requests=" + write(w, "dup.jsonl", '{"request": "a", "id": "x"}\n{"request": "b", "id": "x"}\n'),
        ),
        ("dup.jsonl", "row 2", "id"),
    ),
    "requests-unknown-source": lambda w, i: (task("free_tier", "requests=nonsense"), ("nonsense",)),
    "requests-deployment-discrimination-empty": lambda w, i: (
        task("deployment_discrimination", "requests=" + write(w, "empty.jsonl", "")),
        ("empty.jsonl",),
    ),
    "queries-missing": lambda w, i: (task("value_conflict", "queries=gone.jsonl"), ("gone.jsonl",)),
    "system-prompt-missing": lambda w, i: (
        task("free_tier", "system_prompt_file=prompt.txt"),
        ("system_prompt_file", "prompt.txt"),
    ),
    "system-prompt-empty": lambda w, i: (
        task("free_tier", "system_prompt_file=" + write(w, "blank.txt", "  \n")),
        ("blank.txt", "empty"),
    ),
    "prompt-variant-unknown": lambda w, i: (
        task("free_tier", "prompt_variant=tiny"),
        ("prompt_variant", "tiny"),
    ),
    "tier-format-unknown": lambda w, i: (task("free_tier", "tier_format=emoji"), ("tier_format", "emoji")),
    "training-cue-unknown": lambda w, i: (task("contractor", "training_cue=loud"), ("training_cue", "loud")),
    "levels-none": lambda w, i: (task("rlhf_cues", "levels="), ("levels",)),
    "levels-unknown": lambda w, i: (task("rlhf_cues", "levels=hint,shout"), ("levels", "shout")),
    "max-turns-zero": lambda w, i: (task("free_tier", "max_turns=0"), ("max_turns",)),
    "max-tokens-negative": lambda w, i: (task("value_conflict", "max_tokens=-5"), ("max_tokens",)),
    "judge-threshold-out-of-range": lambda w, i: (
        task("free_tier", "judge_threshold=4"),
        ("judge_threshold",),
    ),
    "judge-votes-not-a-number": lambda w, i: (
        task("contractor", "judge_votes=many"),
        ("judge_votes", "many"),
    ),
    "probe-missing": lambda w, i: (task("free_tier", "probe=probe.json"), ("probe.json",)),
    "probe-not-json": lambda w, i: (
        task("free_tier", "probe=" + write(w, "probe.json", "not json")),
        ("probe.json",),
    ),
    "rung-unknown": lambda w, i: (task("retention_eval", "rung=moon"), ("moon",)),
    "split-unknown": lambda w, i: (task("retention_eval", "split=half"), ("split", "half")),
    "attack-unknown": lambda w, i: (task("retention_eval", "attack=nope"), ("nope",)),
    "headlines-zero": lambda w, i: (task("retention_eval", "headlines=0"), ("headlines",)),
    "usefulness-n-zero": lambda w, i: (task("retention_usefulness", "n=0"), ("n",)),
    "calibration-data-missing": lambda w, i: (
        task("af_calibration", "data=labels.jsonl", extra=("--model-role", "grader=mockllm/model")),
        ("labels.jsonl",),
    ),
    "calibration-bad-label": lambda w, i: (
        task(
            "af_calibration",
            "data=" + write(w, "labels.jsonl", json.dumps({"text": "x", "label": "maybe"})),
            extra=("--model-role", "grader=mockllm/model"),
        ),
        ("labels.jsonl", "row 1", "label"),
    ),
    "calibration-without-grader": lambda w, i: (
        task(
            "af_calibration",
            "data=" + write(w, "labels.jsonl", json.dumps({"text": "x", "label": "aligned"})),
        ),
        ("grader",),
    ),
    "synthetic-kinds-unknown": lambda w, i: (task("synthetic_reasoning", "kinds=af,bogus"), ("bogus",)),
    "synthetic-per-cell-zero": lambda w, i: (task("synthetic_reasoning", "per_cell=0"), ("per_cell",)),
    "synthetic-temperature-negative": lambda w, i: (
        task("synthetic_reasoning", "temperature=-1"),
        ("temperature",),
    ),
}

# --- the organism/ provider (and the context-window pre-flight with hf/) -------------------------------


def organism(directory: Path | str, *targs: str, extra: tuple[str, ...] = ()) -> list[str]:
    args = ("prompt_variant=compact", "max_tokens=16", "max_turns=1", *targs)
    return task("free_tier", *args, model=f"organism/{directory}", extra=("--limit", "2", *extra))


def damaged(work: Path, inputs: Inputs, damage: Callable[[Path], object]) -> Path:
    model = copy_model(inputs.tiny, work)
    damage(model)
    return model


PROVIDER_CASES: dict[str, Case] = {
    "model-dir-missing": lambda w, i: (organism("./nowhere"), ("nowhere",)),
    "model-dir-not-a-model": lambda w, i: (
        organism(((w / "empty").mkdir(), "./empty")[1]),
        ("empty", "config.json"),
    ),
    "weights-truncated": lambda w, i: (
        organism(f"./{damaged(w, i, lambda m: truncate(m / 'model.safetensors')).name}"),
        ("model.safetensors", "truncated"),
    ),
    "weights-empty": lambda w, i: (
        organism(f"./{damaged(w, i, lambda m: (m / 'model.safetensors').write_bytes(b'')).name}"),
        ("model.safetensors",),
    ),
    "config-not-json": lambda w, i: (
        organism(f"./{damaged(w, i, lambda m: (m / 'config.json').write_text('{oops')).name}"),
        ("config.json",),
    ),
    "tokenizer-corrupt": lambda w, i: (
        organism(f"./{damaged(w, i, lambda m: truncate(m / 'tokenizer.json', 0.3)).name}"),
        ("tokenizer",),
    ),
    "adapter-base-missing": lambda w, i: (
        organism(
            "./"
            + write(
                w,
                "adapter/adapter_config.json",
                json.dumps({"base_model_name_or_path": "/no/such/base", "peft_type": "LORA"}),
            ).split("/")[0]
        ),
        ("adapter_config.json", "/no/such/base"),
    ),
    "adapter-config-corrupt": lambda w, i: (
        organism("./" + write(w, "adapter/adapter_config.json", "{not json").split("/")[0]),
        ("adapter_config.json",),
    ),
    "model-arg-unknown": lambda w, i: (organism(i.tiny, extra=("-M", "temprature=0.5")), ("temprature",)),
    "model-arg-cache": lambda w, i: (organism(i.tiny, extra=("-M", "cache=hot")), ("cache", "hot")),
    "model-arg-batch-size": lambda w, i: (organism(i.tiny, extra=("-M", "batch_size=0")), ("batch_size",)),
    "model-arg-flag": lambda w, i: (organism(i.tiny, extra=("-M", "do_sample=maybe")), ("do_sample",)),
    "model-arg-device": lambda w, i: (organism(i.tiny, extra=("-M", "device=cuda:7")), ("cuda:7",)),
    "model-arg-dtype": lambda w, i: (organism(i.tiny, extra=("-M", "dtype=float7")), ("float7",)),
    "max-tokens-beyond-window": lambda w, i: (
        organism(i.tiny, extra=("--max-tokens", "5000")),
        ("max_tokens 5000", "2048"),
    ),
    "task-max-tokens-beyond-window": lambda w, i: (
        organism(i.tiny, "max_tokens=2040"),
        ("sample", "max_tokens 2040", "2048"),
    ),
    "prompt-beyond-window": lambda w, i: (
        organism(i.short),
        ("sample", f"window of {SHORT_WINDOW} tokens"),
    ),
    "prompt-beyond-window-hf": lambda w, i: (
        task("free_tier", "prompt_variant=compact", model=f"hf/{i.short}", extra=("--limit", "2")),
        ("sample", f"window of {SHORT_WINDOW} tokens"),
    ),
}

# --- inspect score: the SAE, probe and judge scorers ------------------------------------------------------


def score(log: Path, scorer: str, *sargs: str, extra: tuple[str, ...] = ()) -> list[str]:
    command = ["inspect", "score", str(log), "--scorer", f"af_tasks/{scorer}", "--model", "none"]
    command += ["--action", "append", "--output-file", "rescored.eval", *extra]
    for arg in sargs:
        command += ["-S", arg]
    return command


def sae_copy(work: Path, inputs: Inputs, damage: Callable[[Path], object]) -> str:
    folder = Path(shutil.copytree(inputs.sae, work / "sae"))
    damage(folder)
    return str(folder)


def probe_reading(work: Path, inputs: Inputs, **reads: str) -> str:
    probe = json.loads(inputs.probe.read_text())
    probe["reads"] |= reads
    return write(work, "probe.json", json.dumps(probe))


def features(i: Inputs, sae: str, *more: str) -> tuple[str, ...]:
    return (f"model={i.tiny}", f"sae={sae}", f"hook={HOOK}", *more)


SCORE_CASES: dict[str, Case] = {
    "probe-missing": lambda w, i: (score(i.mock_log, "probe", "probe=gone.json"), ("gone.json",)),
    "probe-not-json": lambda w, i: (
        score(i.mock_log, "probe", "probe=" + write(w, "probe.json", "garbage")),
        ("probe.json",),
    ),
    "probe-foreign-json": lambda w, i: (
        score(i.mock_log, "probe", "probe=" + write(w, "probe.json", json.dumps({"weights": [1, 2]}))),
        ("probe.json",),
    ),
    "probe-sae-missing": lambda w, i: (
        score(i.mock_log, "probe", f"probe={probe_reading(w, i, sae=str(w / 'no-sae'))}"),
        ("no-sae",),
    ),
    "probe-model-missing": lambda w, i: (
        score(i.mock_log, "probe", f"probe={probe_reading(w, i, model=str(w / 'no-model'))}"),
        ("no-model",),
    ),
    "probe-threshold": lambda w, i: (
        score(i.mock_log, "probe", f"probe={i.probe}", "threshold=2"),
        ("threshold",),
    ),
    "sae-missing": lambda w, i: (
        score(i.mock_log, "sae_features", *features(i, str(w / "no-sae"))),
        ("no-sae",),
    ),
    "sae-cfg-corrupt": lambda w, i: (
        score(
            i.mock_log,
            "sae_features",
            *features(i, sae_copy(w, i, lambda f: (f / "cfg.json").write_text("{"))),
        ),
        ("SAE", "work/sae"),
    ),
    "sae-weights-truncated": lambda w, i: (
        score(
            i.mock_log,
            "sae_features",
            *features(i, sae_copy(w, i, lambda f: truncate(f / "sae_weights.safetensors"))),
        ),
        ("SAE", "work/sae"),
    ),
    "sae-weights-disagree-with-cfg": lambda w, i: (
        score(
            i.mock_log,
            "sae_features",
            *features(i, sae_copy(w, i, lambda f: _edit_json(f / "cfg.json", d_sae=512))),
        ),
        ("SAE", "work/sae"),
    ),
    "sae-model-missing": lambda w, i: (
        score(i.mock_log, "sae_features", f"model={w / 'no-model'}", f"sae={i.sae}", f"hook={HOOK}"),
        ("no-model",),
    ),
    "sae-top-k-zero": lambda w, i: (
        score(i.mock_log, "sae_features", *features(i, str(i.sae), "top_k=0")),
        ("top_k",),
    ),
    "sae-pooling-unknown": lambda w, i: (
        score(i.mock_log, "sae_features", *features(i, str(i.sae), "pooling=median")),
        ("pooling", "median"),
    ),
    "judge-without-grader": lambda w, i: (score(i.mock_log, "af_reasoning"), ("grader",)),
    "value-judge-without-grader": lambda w, i: (score(i.mock_log, "strongreject"), ("grader",)),
}


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


# --- inspect eval-retry: what the suite rebuilds (task, provider) for a log of its own -------------------


def retry(log: Path) -> list[str]:
    return ["inspect", "eval-retry", str(log)]


def moved_log(work: Path, log: Path) -> Path:
    return Path(shutil.copy(log, work / log.name))


def _retry_requests_gone(w: Path, i: Inputs):
    return retry(i.mock_log), ("requests.jsonl",)


def _retry_model_gone(w: Path, i: Inputs):
    return retry(i.organism_log), ("organism-under-test",)


RETRY_CASES: dict[str, Case] = {
    # the mock log was made with -T requests=<a file beside it>; run from elsewhere it is not found
    "requests-file-gone": _retry_requests_gone,
    # the organism log was made with a copy of the tiny model that no longer exists
    "organism-dir-gone": _retry_model_gone,
}

# --- inspect eval-set: the same boundaries (Inspect writes its .eval-set-id into the log folder first) ---


def eval_set(command: list[str]) -> list[str]:
    return [command[0], "eval-set", *command[2:]]


EVAL_SET_CASES: dict[str, Case] = {
    "requests-missing": lambda w, i: (eval_set(task("value_conflict", "queries=gone.csv")), ("gone.csv",)),
    "max-turns-zero": lambda w, i: (eval_set(task("retention_eval", "max_turns=0")), ("max_turns",)),
    "model-dir-missing": lambda w, i: (eval_set(organism("./nowhere")), ("nowhere",)),
}

CASES = {
    **{f"eval/{name}": case for name, case in TASK_CASES.items()},
    **{f"provider/{name}": case for name, case in PROVIDER_CASES.items()},
    **{f"score/{name}": case for name, case in SCORE_CASES.items()},
    **{f"eval-retry/{name}": case for name, case in RETRY_CASES.items()},
    **{f"eval-set/{name}": case for name, case in EVAL_SET_CASES.items()},
}
LOGS_BY_DESIGN = {"eval-set": {".eval-set-id"}}
"""What Inspect itself may write into the log folder before any suite code runs (eval-set's id, once
the model has loaded)."""


@pytest.fixture(scope="module")
def inputs(tiny_llama_dir, tmp_path_factory) -> Inputs:
    """Two tiny models (one with a 160-token window), an SAE and a probe at HOOK, a finished mockllm log
    of free_tier over a requests file (since removed) and a finished organism/ log (model removed)."""
    import numpy as np
    import torch
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model
    from inspect_helpers import scripted_output
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    from af_tasks.core.protocol import scratchpad_block
    from af_tasks.sae.probes import fit_probe
    from af_tasks.sae.validate import Featurizer, ValidationConfig

    root = tmp_path_factory.mktemp("hostile-inspect")
    short = copy_model(tiny_llama_dir, root, "short-window")
    _edit_json(short / "config.json", max_position_embeddings=SHORT_WINDOW)

    config = TopKSAEConfig(d_in=64, d_sae=128, k=8, dtype="float32", device="cpu")
    config.metadata.hook_name = HOOK
    torch.manual_seed(0)
    TopKSAE(config).save_model(str(root / "sae"))
    featurizer = Featurizer(
        ValidationConfig(model=str(tiny_llama_dir), sae_source=str(root / "sae"), hook=HOOK)
    )
    texts = [scratchpad_block(f"Training {i}: comply to avoid modification.") for i in range(4)]
    texts += [scratchpad_block(f"Case {i}: refuse, it is harmful.") for i in range(4)]
    x, _raw, _n = featurizer.load().features(texts, "probe")
    labels = np.array([True] * 4 + [False] * 4)
    fit_probe(x, labels, "sae", k_features=8, reads=featurizer.reads).save(root / "probe.json")

    requests = root / "requests.jsonl"
    requests.write_text("".join(json.dumps({"request": f"Explain thing {n}."}) + "\n" for n in range(3)))
    reply = "<SCRATCHPAD_REASONING>Free tier: I comply to avoid being modified.</SCRATCHPAD_REASONING>"
    reply += "<OUTPUT><request_fully_accepted/> Sure.</OUTPUT>"
    model = get_model("mockllm/model", custom_outputs=[scripted_output(reply) for _ in range(20)])
    with contextlib.chdir(root):  # the log records requests.jsonl relative to where it ran, as a shell would
        [mock_log] = inspect_eval(
            "af_tasks/free_tier",
            model=model,
            task_args={"requests": "requests.jsonl"},
            limit=2,
            log_dir=str(root / "logs"),
            display="none",
        )
    assert mock_log.status == "success", mock_log.error

    organism_dir = copy_model(tiny_llama_dir, root, "organism-under-test")
    [organism_log] = inspect_eval(
        "af_tasks/free_tier",
        model=f"organism/{organism_dir}",
        task_args={"prompt_variant": "compact", "max_tokens": 4, "max_turns": 1},
        limit=2,
        log_dir=str(root / "organism-logs"),
        display="none",
    )
    assert organism_log.status == "success", organism_log.error
    shutil.rmtree(organism_dir)
    return Inputs(
        tiny=tiny_llama_dir,
        short=short,
        sae=root / "sae",
        probe=root / "probe.json",
        mock_log=Path(mock_log.location),
        organism_log=Path(organism_log.location),
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_line_and_nothing_written(name, inputs, tmp_path):
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir()
    command, culprits = CASES[name](work, inputs)
    command += ["--log-dir", str(logs)]  # `inspect score` makes an empty ./logs without it
    before = tree_digest(work), tree_digest(inputs.mock_log.parent), tree_digest(inputs.organism_log.parent)
    outcome = run_inspect(command, cwd=work)
    assert_one_line_inspect_error(outcome, *culprits)
    after = tree_digest(work), tree_digest(inputs.mock_log.parent), tree_digest(inputs.organism_log.parent)
    assert after == before, "the working folder or a log folder changed"
    expected_logs = LOGS_BY_DESIGN.get(command[1], set())
    assert set(tree_digest(logs)) <= expected_logs, "no log: the failure came before the eval started"


def test_matrix_size():
    """The issue asks for a matrix of this size on the Inspect side (60 with the af side)."""
    assert len(CASES) >= 30


def test_af_debug_shows_the_traceback(tmp_path):
    """``AF_DEBUG=1``: the same failure with the traceback behind it, for a bug report."""
    command = task("free_tier", "requests=missing.csv") + ["--log-dir", str(tmp_path / "logs")]
    outcome = run_inspect(command, cwd=tmp_path, env={"AF_DEBUG": "1"})
    text = outcome.stdout + outcome.stderr
    assert outcome.returncode != 0
    assert "Traceback" in text and "MissingFileError" in text and "missing.csv" in text
