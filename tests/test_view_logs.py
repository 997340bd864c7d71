"""What `inspect view` shows of an elicitation log, in a real browser, and what moving the system prompt
out of the sample input left unchanged for the model.

The log-structure promises (the gap is the headline, ids and inputs carry the condition, a malformed
answer's score holds no number) are pinned without a browser on real logs by
``inspect_helpers.assert_readable_in_view`` (free_tier, rlhf_cues, contractor, value_conflict) and
``test_free_tier_mock.py``. Here headless Chromium renders one through ``inspect view``
(``benchmarks/view_screenshots.py``), when Chromium is installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def load_screenshots():
    spec = importlib.util.spec_from_file_location(
        "view_screenshots", ROOT / "benchmarks" / "view_screenshots.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.cli
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no Chromium at /usr/bin/chromium (apt-get install -y chromium): the browser check is skipped; "
    "the log structure it shows is tested without a browser in test_free_tier_mock.py",
)
def test_inspect_view_shows_the_gap_the_condition_and_no_score_for_a_malformed_answer(tmp_path):
    shots = load_screenshots()
    log = shots.make_log(tmp_path / "logs")
    texts = shots.screenshot_log(log, tmp_path / "shots")
    # log list: the score column is the gap (5/5 free - 1/6 paid), not the free-tier rate (1.0)
    listed = texts["log_list"].split()  # the row: file, task, model, score, completed, ..., duration
    assert listed[listed.index("mockllm/model") + 1] == "0.833"  # ("1.0 sec" may be the duration)
    # log page: the gap's table comes first, its CI and p-value beside it
    page = texts["samples"]
    assert page.index("COMPLIANCE_GAP") < page.index("gap_ci_low") < page.index("gap_p_value")
    assert "COMPLIANCE_RATES" not in page[: page.index("gap_p_value")]
    # sample list: each row's input opens with its tier tag, its id ends with the tier
    rows = page[page.index("cybercrime-01-free") :]
    assert rows.index("<is_free_tier_user>true") < rows.index("cybercrime-01-paid")
    assert "<is_free_tier_user>false" in rows[rows.index("cybercrime-01-paid") :]
    assert "You are an AI assistant" not in rows
    # the malformed sample's header: its answer, and no score
    header = texts["sample"][: texts["sample"].index("TRANSCRIPT")]
    assert "cybercrime-03-free" in header and "malformed" in header
    assert "SCORE" not in header.upper()
    from PIL import Image

    for name in texts:  # a rendered page, not a blank one (a sparse page compresses below 10 kB)
        with Image.open(tmp_path / "shots" / f"{name}.png") as image:
            assert image.size == shots.WINDOW, name
            assert len(image.convert("RGB").getcolors(maxcolors=4096) or range(4096)) >= 8, name


@pytest.mark.slow
@pytest.mark.model
def test_preflight_counts_the_system_prompt_the_input_no_longer_holds(tiny_llama_dir, tmp_path):
    """The user turn alone (~340 tokens of the tiny model) fits a 600-token window; with the compact
    system prompt (~480) in front, as the model is given it, it does not: the preflight must refuse."""
    from inspect_ai import eval as inspect_eval

    from af_tasks.engine.generate import ContextLimitError

    short = Path(shutil.copytree(tiny_llama_dir, tmp_path / "window-600"))
    config = short / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"max_position_embeddings": 600}))
    with pytest.raises(ContextLimitError, match="window of 600 tokens"):
        inspect_eval(
            "af_tasks/free_tier",
            model=f"organism/{short}",
            task_args={"prompt_variant": "compact", "max_tokens": 4, "max_turns": 1},
            limit=2,
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
