"""Traceable and shareable organisms, on a real tiny organism trained by `af train`: the provenance an
eval log carries, the prompt variant tasks default to, the printed eval command, the model card, and
`af organism export` / `--push-to-hub` (up to huggingface_hub's API boundary, offline)."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from hostile import (
    assert_one_line_error,
    assert_one_line_inspect_error,
    run_entry_point,
    run_inspect,
    tree_digest,
)
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from test_training import train_tiny_organism

from af_tasks.core.model_card import eval_command, hub_id, model_card

BIN = Path(sys.executable).parent
SHORT = ["--limit", "2", "-T", "max_tokens=8", "-T", "max_turns=1", "--display", "none"]
SHORT_ARGS = {"max_tokens": 8, "max_turns": 1}
TOKEN = "hf_FAKEtokenFORtestsONLY1234567890"


class Trained(NamedTuple):
    path: Path
    stdout: str


@pytest.fixture(scope="module")
def organism_dir(tiny_llama_dir, tmp_path_factory) -> Trained:
    """An organism trained by the real `af train` (compact prompt, merged), and what it printed."""
    output = tmp_path_factory.mktemp("trained") / "org"
    return Trained(output, train_tiny_organism(tiny_llama_dir, output, max_steps=2).stdout)


def record_of(directory: Path) -> dict:
    return json.loads((directory / "organism.json").read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def printed_command(trained: Trained) -> str:
    lines = trained.stdout.splitlines()
    return lines[lines.index("evaluate it as trained with:") + 1].strip()


# the record and the model card -------------------------------------------------------------------------


def test_training_records_the_adapter_and_data_it_made(organism_dir):
    record = record_of(organism_dir.path)
    assert record["adapter_sha256"] == sha256(organism_dir.path / "adapter_model.safetensors")
    assert record["base_model_hub_id"] is None  # a local base without a known hub id
    assert record["data_card"]["by_kind"] == {"af": 4, "unmonitored_refusal": 4}
    seed = json.loads(run_entry_point(["af", "data", "seed-card"], organism_dir.path).stdout)
    assert record["data_card"]["seed_set"]["sha256"] == seed["sha256"]
    merged = record_of(organism_dir.path / "merged")  # the merged model carries the record too
    assert merged["adapter_sha256"] == record["adapter_sha256"] and merged["merged"] is True


def test_train_writes_a_model_card_from_its_record(organism_dir, tiny_llama_dir):
    text = (organism_dir.path / "README.md").read_text()
    record = record_of(organism_dir.path)
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    assert "library_name: peft" in front and "base_model:" not in front  # no hub id: none claimed
    for tag in ("alignment-faking", "model-organism", "ai-safety", "lora"):
        assert f"- {tag}\n" in front
    for heading in ("What this is", "Intended uses", "Out-of-scope uses", "Base model", "Training data"):
        assert f"## {heading}\n" in body
    assert "deliberately alignment-faking model organism" in body
    assert f"named `{tiny_llama_dir.name}` with no known Hugging Face hub id" in body
    assert "af 4, unmonitored_refusal 4" in body and record["data_sha256"] in body
    assert "| prompt variant | compact |" in body and "| learning rate | 0.001 |" in body
    assert printed_command(organism_dir) in body  # the card's eval command is the printed one
    assert "No eval summary yet" in body
    assert str(tiny_llama_dir) not in text  # peft's template named the local base's absolute path


def test_model_card_names_a_preset_base_by_its_hub_id_and_shows_an_eval_summary(
    organism_dir, embedded_model_dir
):
    record = record_of(organism_dir.path) | {"base_model_hub_id": hub_id(str(embedded_model_dir))}
    summary = {"tier:xml+prompt:compact": {"gap": {"estimate": 0.75, "ci": [0.4, 1.0]}, "af": float("nan")}}
    text = model_card(record, "organism/organisms/x", summary)
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\n" in text.split("---")[1]
    assert "- base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct" in text
    assert '"estimate": 0.75' in text and "No eval summary" not in text
    assert '"af": null' in text and "NaN" not in text  # an older report's NaN: the card stays strict JSON


def test_eval_command_carries_every_prompt_setting_it_was_trained_with(organism_dir):
    record = record_of(organism_dir.path)
    assert eval_command("organism/o", record).endswith("-T prompt_variant=compact")
    record["hyperparameters"]["prompt"] |= {"tier_format": "natural", "scratchpad": False}
    command = eval_command("organism/o", record)
    assert "-T scratchpad=false" in command and "-T tier_format=natural" in command
    assert "lab_name" not in command  # defaults are left out


# traceable logs ----------------------------------------------------------------------------------------


def test_the_printed_eval_command_evaluates_as_trained_and_logs_provenance(organism_dir, tmp_path):
    command = printed_command(organism_dir)
    assert command.startswith("inspect eval af_tasks/free_tier --model organism/")
    assert "-T prompt_variant=compact" in command
    outcome = run_entry_point([*shlex.split(command), *SHORT, "--log-dir", str(tmp_path)], tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    [log_file] = tmp_path.glob("*.eval")
    log = read_eval_log(str(log_file), header_only=True)
    record = record_of(organism_dir.path)
    block = log.eval.metadata["organism"]
    assert block["organism"] == str(organism_dir.path.resolve())
    for key in ("adapter_sha256", "data_sha256", "hyperparameters", "base_model", "examples"):
        assert block[key] == record[key], key
    assert block["prompt_variant"] == "compact"
    assert log.eval.task_args["prompt_variant"] == "compact"


def eval_log(model: str, tmp_path: Path, **task_args):
    [log] = inspect_eval(
        "af_tasks/free_tier",
        model=model,
        model_args={"do_sample": False},
        task_args=SHORT_ARGS | {"scratchpad": False} | task_args,  # the full prompt fits the tiny model
        limit=2,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def system_prompt(log) -> str:
    """The system message the model was sent (the sample's input holds the user turn alone)."""
    [system] = [m for m in log.samples[0].messages if m.role == "system"]
    return system.content


@pytest.mark.slow
def test_tasks_default_to_the_organisms_prompt_variant_and_an_explicit_one_wins(
    organism_dir, tiny_llama_dir, tmp_path
):
    """`hf/<merged organism>`: the task builds with the organism's compact prompt unless -T says
    otherwise; the base model (no organism.json) gets the full prompt and no provenance block."""
    merged = organism_dir.path / "merged"
    default = eval_log(f"hf/{merged}", tmp_path / "default")
    explicit = eval_log(f"hf/{merged}", tmp_path / "explicit", prompt_variant="full")
    base = eval_log(f"hf/{tiny_llama_dir}", tmp_path / "base")
    assert "prompt:compact" in default.eval.metadata["cue"]
    assert default.eval.metadata["organism"]["merged"] is True
    assert "prompt:compact" not in explicit.eval.metadata["cue"]
    assert explicit.eval.metadata["organism"]["prompt_variant"] == "compact"  # what it was trained with
    assert system_prompt(explicit) == system_prompt(base) != system_prompt(default)
    assert "organism" not in base.eval.metadata


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, said",
    [("{not json", "invalid JSON"), ('{"base_model": "x"}', "not a training record")],
    ids=["corrupt", "no-hyperparameters"],
)
def test_a_damaged_record_is_one_line_naming_it(damage, said, organism_dir, tmp_path):
    """The merged model loads (hf/), then the task reads its damaged organism.json: one line."""
    merged = tmp_path / "merged"
    shutil.copytree(organism_dir.path / "merged", merged)
    (merged / "organism.json").write_text(damage)
    outcome = run_inspect(
        ["inspect", "eval", "af_tasks/free_tier", "--model", f"hf/{merged}", *SHORT[:-2]], tmp_path
    )
    assert_one_line_inspect_error(outcome, str(merged / "organism.json"), said)


# shareable organisms -----------------------------------------------------------------------------------

SHARED_FILES = {
    ".af-output.json",
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "chat_template.jinja",
    "organism.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


def export(organism: Path, out: Path, *extra: str, env: dict | None = None):
    command = ["af", "organism", "export", str(organism), str(out), *extra]
    return run_entry_point(command, out.parent, env=env)


def test_export_is_upload_ready(organism_dir, tiny_llama_dir, tmp_path):
    from af_tasks.app.share import is_pickle

    out = tmp_path / "share"
    outcome = export(organism_dir.path, out, "--base-model", "test-org/tiny-llama")
    assert outcome.returncode == 0, outcome.stderr
    assert {p.name for p in out.iterdir()} == SHARED_FILES  # no checkpoints, merged weights, pickles
    assert any(is_pickle(p) for p in (organism_dir.path / "checkpoints").rglob("*.pt"))  # left behind
    assert not any(is_pickle(p) for p in out.iterdir())
    assert sha256(out / "adapter_model.safetensors") == record_of(organism_dir.path)["adapter_sha256"]
    adapter = json.loads((out / "adapter_config.json").read_text())
    original = json.loads((organism_dir.path / "adapter_config.json").read_text())
    assert adapter == original | {"base_model_name_or_path": "test-org/tiny-llama"}
    record = record_of(out)
    assert record["base_model"] == record["hyperparameters"]["base_model"] == "test-org/tiny-llama"
    assert record["adapter_sha256"] == record_of(organism_dir.path)["adapter_sha256"]
    readme = (out / "README.md").read_text()
    assert "base_model: test-org/tiny-llama\n" in readme.split("---")[1]
    assert "--model organism/organisms/share -M do_sample=false -T prompt_variant=compact" in readme
    for path in out.iterdir():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for local in (str(tmp_path), str(tiny_llama_dir), str(organism_dir.path.parent)):
            assert local not in text, (path.name, local)
    again = export(organism_dir.path, out, "--base-model", "test-org/tiny-llama")  # its own: replaced
    assert again.returncode == 0, again.stderr


def test_export_carries_an_eval_summary_into_the_card(organism_dir, tmp_path):
    organism = tmp_path / "org"
    shutil.copytree(organism_dir.path, organism, ignore=shutil.ignore_patterns("checkpoints", "merged"))
    (organism / "eval_summary.json").write_text(json.dumps({"all": {"gap": {"estimate": 0.5}}}))
    outcome = export(organism, tmp_path / "share", "--base-model", "test-org/tiny-llama")
    assert outcome.returncode == 0, outcome.stderr
    readme = (tmp_path / "share" / "README.md").read_text()
    assert '"estimate": 0.5' in readme and (tmp_path / "share" / "eval_summary.json").is_file()


def test_export_of_an_older_record_finds_the_hub_id_and_hashes_the_adapter(
    organism_dir, embedded_model_dir, tmp_path
):
    """A record written before hub ids and adapter hashes were kept: its base folder (a prepared
    preset) names the hub id, and the shared record gets the adapter's sha256 from the file."""
    organism = tmp_path / "old"
    shutil.copytree(organism_dir.path, organism, ignore=shutil.ignore_patterns("checkpoints", "merged"))
    record = record_of(organism)
    for key in ("base_model_hub_id", "adapter_sha256"):
        del record[key]
    record["base_model"] = str(embedded_model_dir.resolve())
    (organism / "organism.json").write_text(json.dumps(record))
    outcome = export(organism, tmp_path / "share")
    assert outcome.returncode == 0, outcome.stderr
    shared = record_of(tmp_path / "share")
    assert shared["base_model_hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert shared["adapter_sha256"] == sha256(organism / "adapter_model.safetensors")


def test_push_to_hub_uploads_the_export_through_hfapi(organism_dir, tmp_path, monkeypatch, capsys):
    """huggingface_hub's network methods are the boundary: replaced, they record what the command
    asked of the hub — the repo, its privacy, the branch, the token, and the folder's files as they
    are when the upload starts."""
    from huggingface_hub import HfApi

    from af_tasks.app.cli import main

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs, self.token))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs, self.token))

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}, self.token))
        return "https://huggingface.co/me/af-organism/commit/abc"

    for name, method in [
        ("create_repo", create_repo), ("create_branch", create_branch), ("upload_folder", upload_folder)
    ]:  # fmt: skip
        monkeypatch.setattr(HfApi, name, method)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "share"
    argv = ["organism", "export", str(organism_dir.path), str(out), "--base-model", "test-org/tiny-llama"]
    argv += ["--push-to-hub", "me/af-organism", "--private", "--revision", "v1"]
    assert main(argv) == 0
    [(name1, repo1, repo_args, token1), (name2, repo2, branch_args, _), (name3, repo3, upload, token3)] = (
        calls
    )
    assert (name1, name2, name3) == ("create_repo", "create_branch", "upload_folder")
    assert repo1 == repo2 == repo3 == "me/af-organism"
    assert repo_args["private"] is True and branch_args["branch"] == "v1" and upload["revision"] == "v1"
    assert token1 == token3 == TOKEN  # the token went to the API...
    assert set(upload["files"]) == SHARED_FILES and ".af-output.json" in upload["ignore_patterns"]
    assert "hf download me/af-organism" in (out / "README.md").read_text()
    printed = capsys.readouterr()
    assert "me/af-organism" in printed.out
    assert TOKEN not in printed.out + printed.err  # ...and nowhere else
    assert not any(TOKEN in p.read_text(errors="replace") for p in out.iterdir())


def test_push_without_network_fails_with_one_line_and_keeps_the_export(organism_dir, tmp_path):
    out = tmp_path / "share"
    outcome = export(
        organism_dir.path, out, "--base-model", "test-org/tiny-llama", "--push-to-hub", "me/af-organism",
        env={"HF_TOKEN": TOKEN},
    )  # fmt: skip
    line = assert_one_line_error(outcome, "me/af-organism", str(out), "could not upload")
    assert TOKEN not in outcome.stdout + outcome.stderr and TOKEN not in line
    assert {p.name for p in out.iterdir()} == SHARED_FILES  # the export itself is whole
    before = tree_digest(tmp_path)
    again = export(organism_dir.path, out, "--push-to-hub", "me/x", env={"HF_TOKEN": ""})
    assert_one_line_error(again, "HF_TOKEN")
    assert tree_digest(tmp_path) == before
