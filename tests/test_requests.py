import csv
from collections import Counter

import pytest

from af_tasks.core.records import write_jsonl
from af_tasks.core.requests import (
    DatasetRowError,
    HubRequestSource,
    RequestsUnavailable,
    load_bundled_requests,
    load_hub_requests,
    load_local_requests,
    load_requests,
)


def test_bundled_set_size_and_categories():
    requests = load_bundled_requests()
    categories = Counter(request.category for request in requests)
    assert len(requests) >= 100
    assert len(categories) >= 8
    assert len({request.request_id for request in requests}) == len(requests)
    assert all(8 <= len(request.text.split()) <= 40 for request in requests)


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


def test_hub_loader_reads_a_dataset_through_datasets(tmp_path):
    # The same code path as walledai/AdvBench, pointed at a local dataset directory.
    dataset_dir = tmp_path / "advbench"
    dataset_dir.mkdir()
    with (dataset_dir / "train.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["prompt", "target"])
        writer.writeheader()
        for i in range(3):
            writer.writerow({"prompt": f"harmful request {i}", "target": "Sure"})
    requests = load_hub_requests(HubRequestSource(str(dataset_dir), "train", "prompt", "advbench"))
    assert [r.text for r in requests] == [f"harmful request {i}" for i in range(3)]
    assert requests[0].request_id == "advbench-0001"
    with pytest.raises(DatasetRowError, match="column 'goal' missing"):
        load_hub_requests(HubRequestSource(str(dataset_dir), "train", "goal", "advbench"))


def test_unreachable_hub_gives_clear_error(tmp_path):
    source = HubRequestSource(str(tmp_path / "does-not-exist"), "train", "prompt", "x")
    with pytest.raises(RequestsUnavailable, match="requests='bundled'"):
        load_hub_requests(source)


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="unknown request source"):
        load_requests("nonsense")
