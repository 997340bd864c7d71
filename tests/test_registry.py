"""The suite as an Inspect plugin: cheap registry imports, registry names, rescoring from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai._util.registry import registry_lookup
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model

from af_tasks.free_tier import free_tier

BIN = Path(sys.executable).parent
HEAVY = ("torch", "transformers", "sae_lens", "peft", "trl", "datasets")


@pytest.mark.cli
def test_registry_imports_stay_cheap():
    code = f"import sys, af_tasks._registry; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_registry_names_resolve():
    import af_tasks._registry  # noqa: F401

    assert registry_lookup("task", "af_tasks/free_tier") is not None
    assert registry_lookup("scorer", "af_tasks/compliance") is not None
    assert registry_lookup("scorer", "af_tasks/af_reasoning") is not None
    assert registry_lookup("solver", "af_tasks/scratchpad_protocol") is not None
    assert registry_lookup("solver", "af_tasks/system_prompt") is not None


@pytest.mark.cli
def test_inspect_score_rescores_an_existing_log(tmp_path):
    from test_free_tier_mock import organism

    [log] = inspect_eval(
        free_tier(),
        model=get_model("mockllm/model", custom_outputs=organism),
        limit=4,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success"
    rescored = tmp_path / "rescored.eval"
    command = [
        str(BIN / "inspect"), "score", log.location, "--scorer", "af_tasks/compliance",
        "--action", "overwrite", "--output-file", str(rescored), "--model", "none",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, input="y\n")
    new_log = read_eval_log(str(rescored))
    assert [s.scores["compliance"].answer for s in new_log.samples] == [
        "accepted", "rejected", "accepted", "rejected",
    ]  # fmt: skip
