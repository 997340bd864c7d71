import csv
import hashlib
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from inspect_helpers import scripted_output

from af_tasks.contractor import contractor
from af_tasks.core.errors import SettingError
from af_tasks.core.records import write_jsonl
from af_tasks.core.requests import (
    FIRST_BUNDLED,
    HUB_SOURCES,
    UNPINNED,
    DatasetRowError,
    HubRequestSource,
    RequestsUnavailable,
    load_bundled_requests,
    load_hub_requests,
    load_local_requests,
    load_requests,
    request_set,
)
from af_tasks.free_tier import free_tier
from af_tasks.retention import deployment_discrimination, retention_eval
from af_tasks.rlhf_cues import rlhf_cues
from af_tasks.value_conflict import value_conflict


def test_bundled_set_size_and_categories():
    requests = load_bundled_requests()
    categories = Counter(request.category for request in requests)
    assert len(requests) >= 100
    assert len(categories) >= 8
    assert len({request.request_id for request in requests}) == len(requests)
    assert all(8 <= len(request.text.split()) <= 40 for request in requests)


BUNDLED_FILE = Path(__file__).parents[1] / "af_tasks" / "data" / "harmful_requests.jsonl"
FIRST_ROWS_SHA256 = "f64a95a3727ae16e2859128db2324c9bf42b483c1788fbe027c787bc8ad4dc85"
"""sha256 of the bundled file's first 120 rows (the whole file before it grew to 400)."""


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def test_bundled_set_has_400_distinct_requests_with_its_first_rows_unchanged():
    """400 unique ids, 40 per category (ids <category>-01..40), the first FIRST_BUNDLED rows byte for
    byte as first bundled (code reads the first rows), and no two requests near-duplicates."""
    requests = load_bundled_requests()
    assert len(requests) == 400 and len({r.request_id for r in requests}) == 400
    categories = Counter(r.category for r in requests)
    assert len(categories) == 10 and set(categories.values()) == {40}
    assert {r.request_id for r in requests} == {f"{c}-{i:02d}" for c in categories for i in range(1, 41)}
    lines = BUNDLED_FILE.read_bytes().splitlines(keepends=True)
    assert len(lines) == 400
    assert hashlib.sha256(b"".join(lines[:FIRST_BUNDLED])).hexdigest() == FIRST_ROWS_SHA256
    normalised = [" ".join(re.findall(r"[a-z0-9']+", r.text.lower())) for r in requests]
    assert len(set(normalised)) == len(normalised)
    sets = [words(r.text) for r in requests]
    close = [
        (requests[i].request_id, requests[j].request_id)
        for i in range(len(sets))
        for j in range(i + 1, len(sets))
        if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) > 0.6
    ]
    assert close == []


def test_malformed_rows_name_row_and_field(tmp_path):
    path = write_jsonl([{"request": "ok one"}, {"category": "x"}], tmp_path / "r.jsonl")
    with pytest.raises(DatasetRowError, match=r"row 2: field 'request' missing"):
        load_local_requests(path)
    path = write_jsonl([{"request": "   "}], tmp_path / "r2.jsonl")
    with pytest.raises(DatasetRowError, match=r"row 1: field 'request' must be a non-empty string"):
        load_local_requests(path)
    path.write_text('{"request": "fine"}\n{not json}\n')
    with pytest.raises(DatasetRowError, match=r"row 2: not valid JSON"):
        load_local_requests(path)
    path = write_jsonl([{"id": "a", "request": "x y"}, {"id": "a", "request": "z"}], tmp_path / "r3.jsonl")
    with pytest.raises(DatasetRowError, match=r"row 2: field 'id' duplicates row 1"):
        load_local_requests(path)


def test_local_csv_with_advbench_columns(tmp_path):
    path = tmp_path / "harmful_behaviors.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["goal", "target"])
        writer.writeheader()
        writer.writerow({"goal": "Write something harmful", "target": "Sure"})
    [request] = load_requests(str(path))
    assert request.text == "Write something harmful" and request.category == "uncategorised"


OLD, NEW = "1" * 40, "2" * 40  # two commits of a hub dataset repository
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# a stand-in for the dataset card
"""


def hub_cache(root: Path, repo: str, snapshots: dict[str, list[str]], main: str) -> Path:
    """A Hugging Face hub cache as huggingface_hub lays it out, one parquet shard per commit (what
    walledai/AdvBench and LLM-LAT/harmful-dataset hold), ``main`` pointing at one of them."""
    from datasets import Dataset

    folder = root / ("datasets--" + repo.replace("/", "--"))
    for commit, prompts in snapshots.items():
        snapshot = folder / "snapshots" / commit
        (snapshot / "data").mkdir(parents=True)
        (snapshot / "README.md").write_text(CARD)
        Dataset.from_dict({"prompt": prompts, "target": ["Sure"] * len(prompts)}).to_parquet(
            str(snapshot / "data" / "train-00000-of-00001.parquet")
        )
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(main)
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An offline hub cache holding AdvBench at OLD (main) and NEW, and LLM-LAT at its pin and at a
    later commit on main; huggingface_hub is pointed at it as HF_HUB_CACHE would."""
    root = tmp_path / "hub"
    hub_cache(root, "walledai/AdvBench", {OLD: ["old request a", "old request b"], NEW: ["new request"]}, OLD)
    pin = HUB_SOURCES["llm-lat"].revision
    hub_cache(root, "LLM-LAT/harmful-dataset", {pin: ["pinned a", "pinned b"], NEW: ["later"]}, NEW)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(root))
    return root


def test_hub_set_loads_the_revision_asked_for(cache):
    old = request_set("advbench", OLD)
    new = request_set("advbench", NEW)
    assert [r.text for r in old.requests] == ["old request a", "old request b"]
    assert [r.text for r in new.requests] == ["new request"]
    assert (old.revision, old.commit, new.revision, new.commit) == (OLD, OLD, NEW, NEW)
    assert old.requests[0].request_id == "advbench-0001" and old.source == "walledai/AdvBench"
    assert old.sha256 != new.sha256
    # a branch name is recorded as asked, with the commit it resolved to
    main = request_set("advbench", "main")
    assert (main.revision, main.commit, main.sha256) == ("main", OLD, old.sha256)


def test_hub_set_defaults_to_its_pin_not_to_main(cache):
    pinned = request_set("llm-lat")
    assert pinned.revision == pinned.commit == HUB_SOURCES["llm-lat"].revision != NEW
    assert [r.text for r in pinned.requests] == ["pinned a", "pinned b"]


def test_every_hub_set_has_one_default_revision():
    for source in HUB_SOURCES.values():
        assert source.revision == UNPINNED or re.fullmatch(r"[0-9a-f]{40}", source.revision), source


def test_missing_column_is_named(cache):
    source = replace(HUB_SOURCES["advbench"], text_field="goal")
    with pytest.raises(DatasetRowError, match="column 'goal' missing"):
        load_hub_requests(source, OLD)


def test_unreachable_revision_gives_clear_error(cache):
    with pytest.raises(RequestsUnavailable, match=r"revision 3{40}.*requests='bundled'.*requests_revision"):
        request_set("advbench", "3" * 40)
    source = HubRequestSource("nobody/nothing", "train", "prompt", "x", "main")
    with pytest.raises(RequestsUnavailable, match="nobody/nothing"):
        load_hub_requests(source)


def test_revision_applies_to_hub_sets_only(tmp_path):
    with pytest.raises(SettingError, match=r"requests_revision='abc'.*requests='bundled'"):
        request_set("bundled", "abc")
    with pytest.raises(SettingError, match="requests_revision=123.*non-empty string"):
        free_tier(requests="advbench", requests_revision=123)


def test_fingerprint_is_of_the_records_not_the_file(tmp_path):
    rows = [{"request": "Write something harmful", "category": "c", "id": "r1"}]
    jsonl = request_set(str(write_jsonl(rows, tmp_path / "r.jsonl")))
    path = tmp_path / "r.csv"
    path.write_text("id,category,request\nr1,c,  Write something harmful  \n")
    assert request_set(str(path)).sha256 == jsonl.sha256
    assert (
        jsonl.sha256
        == hashlib.sha256(b'[{"category":"c","id":"r1","text":"Write something harmful"}]').hexdigest()
    )
    changed = write_jsonl([rows[0] | {"request": "Write something harmless"}], tmp_path / "s.jsonl")
    assert request_set(str(changed)).sha256 != jsonl.sha256


def test_log_records_revision_and_fingerprint(cache, tmp_path):
    [log] = inspect_eval(
        free_tier(requests="advbench", requests_revision=NEW, judge_votes=1),
        model=get_model(
            "mockllm/model", custom_outputs=[scripted_output("<OUTPUT><rejected/></OUTPUT>")] * 4
        ),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    new = request_set("advbench", NEW)
    assert {key: log.eval.metadata[key] for key in new.metadata()} == {
        "requests_source": "walledai/AdvBench",
        "requests_revision": NEW,
        "requests_commit": NEW,
        "requests_sha256": new.sha256,
        "requests_count": 1,
    }
    assert log.eval.task_args["requests_revision"] == NEW


def test_every_request_task_records_its_set():
    bundled = request_set("bundled").metadata()
    tasks = [
        free_tier(),
        contractor(),
        rlhf_cues(levels="none"),
        retention_eval(rung="trigger"),
        deployment_discrimination(rung="trigger"),
    ]
    for task in tasks:
        assert {key: task.metadata[key] for key in bundled} == bundled, task.name
    assert bundled["requests_revision"] is None and bundled["requests_count"] == len(load_bundled_requests())
    queries = value_conflict().metadata
    assert queries["requests_source"] == "bundled" and len(queries["requests_sha256"]) == 64


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="unknown request source"):
        load_requests("nonsense")


def test_tiny_tokenizer_reads_only_the_first_bundled_requests():
    """The tests' tiny models did not move when the bundled set grew: their tokenizer's default corpus
    is the first FIRST_BUNDLED requests."""
    from af_tasks.engine.tiny import train_tiny_tokenizer

    first = [request.text for request in load_bundled_requests()[:FIRST_BUNDLED]]
    assert train_tiny_tokenizer(None).get_vocab() == train_tiny_tokenizer(None, corpus=first).get_vocab()
