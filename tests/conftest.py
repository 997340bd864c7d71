"""Shared fixtures: local artifacts that stand in for hub downloads (no network in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from af_tasks.engine.tiny import build_tiny_llama

EMBEDDED_MODEL = Path("models/smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    if not (EMBEDDED_MODEL / "af_model.json").is_file():
        pytest.fail(f"{EMBEDDED_MODEL} is not prepared; run `make model` (make test does it)")
    return EMBEDDED_MODEL
