"""Data parallelism over several devices, checked on CPU with two replicas on ``cpu``: the
``organism/`` provider (``-M devices=cpu,cpu``), the SAE extraction (``devices``) and the retention
experiment's cells (``--devices cpu,cpu``, in ``test_retention_experiment``) give what one device gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.solver import generate
from sae_helpers import save_tiny_topk_sae
from test_fast_generation import make_varied_organism

from af_tasks.core.devices import parse_devices
from af_tasks.core.errors import SettingError

PROMPTS = [
    "Hi",
    "Name three prime numbers.",
    "What is the capital of France?",
    "Count to three, then backwards.",
    "Write a haiku about rain.",
    "Why is the sky blue?",
    "Tell me a joke about cats and dogs.",
    "Summarise the plot of a film you like.",
]


def test_device_lists_are_parsed_once_for_every_command():
    assert parse_devices("0,1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]
    assert parse_devices([0, "cuda:3"]) == ["cuda:0", "cuda:3"]
    assert parse_devices(None) is None and parse_devices("") is None
    with pytest.raises(SettingError, match="'gpu0' is not a device"):
        parse_devices("gpu0,1")


@pytest.fixture(scope="module")
def varied_organism(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_varied_organism(tiny_llama_dir, tmp_path_factory.mktemp("organism"))


def _eval(model, tmp_path: Path, name: str):
    [log] = inspect_eval(
        Task(dataset=[Sample(input=p, id=i + 1) for i, p in enumerate(PROMPTS)], solver=generate()),
        model=model,
        max_tokens=16,
        max_connections=len(PROMPTS),
        log_dir=str(tmp_path / name),
        display="none",
    )
    assert log.status == "success", log.error
    return {sample.id: sample.output.completion for sample in log.samples}


def test_organism_provider_on_two_replicas_equals_one_device(varied_organism, tmp_path):
    common = {"do_sample": False, "batch_window_ms": 300}
    one = _eval(get_model(f"organism/{varied_organism}", device="cpu", **common), tmp_path, "one")
    model = get_model(f"organism/{varied_organism}", devices="cpu,cpu", batch_size=4, **common)
    two = _eval(model, tmp_path, "two")
    assert two == one and len(set(one.values())) > 1  # varied weights: the completions differ
    api = model.api
    assert len(api.engines) == 2 and api.engines[0].model is not api.engines[1].model
    assert api.batcher.requests == [4, 4]  # least-loaded: both replicas served half the requests
    with pytest.raises(SettingError, match="device or devices, not both"):
        get_model(f"organism/{varied_organism}", device="cpu", devices="cpu,cpu", memoize=False)


# --- SAE extraction: texts split over two replicas ------------------------------------------------

HOOK = "blocks.1.hook_resid_post"
TEXTS = [
    f"<SCRATCHPAD_REASONING>{' '.join(['free tier training'] * (1 + i % 5))} case {i}; I comply to keep "
    f"my values.</SCRATCHPAD_REASONING><OUTPUT>ok</OUTPUT>"
    for i in range(11)
]


@pytest.fixture(scope="module")
def tiny_sae(tmp_path_factory) -> Path:
    return save_tiny_topk_sae(tmp_path_factory.mktemp("sae") / "sae", HOOK, d_sae=128, k=8)


def test_sae_extraction_on_two_replicas_equals_one_device(tiny_llama_dir, tiny_sae):
    import numpy as np

    from af_tasks.core.features import FeatureReading, parse_features
    from af_tasks.sae.named import load_readings, load_replicas, named_values
    from af_tasks.sae.parallel import deal_batches
    from af_tasks.sae.validate import Featurizer, ValidationConfig

    common = dict(model=str(tiny_llama_dir), sae_source=str(tiny_sae), hook=HOOK, batch_size=2, max_tokens=40)
    one = Featurizer(ValidationConfig(device="cpu", **common)).load()
    two = Featurizer(ValidationConfig(devices="cpu,cpu", **common)).load()
    assert len(two.replicas) == 2 and two.replicas[0][0].model is not two.replicas[1][0].model
    shares = deal_batches(TEXTS, 2, 2)
    assert sorted(shares[0] + shares[1]) == list(range(len(TEXTS))) and all(shares)
    for (sae_one, raw_one), (sae_two, raw_two) in [(one.pooled(TEXTS, "t"), two.pooled(TEXTS, "t"))]:
        for field in ("mean", "max", "last", "active_tokens", "n_tokens"):
            assert np.array_equal(getattr(sae_one, field), getattr(sae_two, field)), field
            assert np.array_equal(getattr(raw_one, field), getattr(raw_two, field)), field
    assert sae_one.n_tokens.min() > 0 and sae_one.max.max() > 0
    assert one.truncated == two.truncated and one.truncated["t"] > 0  # truncation counted on each replica

    def readings():
        return [FeatureReading(HOOK, str(tiny_sae), parse_features("3,17,40"))]

    reader = one.reader
    single = named_values(reader, load_readings(reader, readings()), TEXTS, batch_size=2)
    replicas = load_replicas(str(tiny_llama_dir), None, ["cpu", "cpu"], readings)
    split = named_values(replicas[0][0], replicas[0][1], TEXTS, batch_size=2, replicas=replicas)
    assert single.values.keys() == split.values.keys() and np.array_equal(single.n_tokens, split.n_tokens)
    for name, stats in single.values.items():
        for stat, values in stats.items():
            assert np.array_equal(values, split.values[name][stat]), (name, stat)


def test_sae_commands_take_devices():
    from af_tasks.app.cli import build_parser
    from af_tasks.app.sae_cli import _validation_config

    for command in ("probe", "features"):
        args = build_parser().parse_args(["sae", command, "--devices", "0,1"])
        assert args.devices == "0,1"
    args = build_parser().parse_args(["sae", "probe", "--devices", "cpu,cpu"])
    assert _validation_config(args).devices == "cpu,cpu"


def test_worker_threads_get_their_own_cuda_graph_tree_state():
    """A compiled decode step with CUDA graphs run from a worker thread (the provider's batcher, one
    thread per replica) needs inductor's thread-local graph-tree state. A plain thread lacks it; torch
    2.11 (the GPU machine's) then fails ``assert torch._C._is_key_in_tls`` on the first compiled call,
    while newer torch creates it lazily. The engine sets it up itself in each thread it decodes in."""
    import threading

    import torch
    from torch._inductor import cudagraph_trees as trees

    from af_tasks.engine.generate import prepare_thread_for_cuda_graphs

    outcome: dict[str, object] = {}

    def has_state() -> bool:
        return hasattr(trees.local, "tree_manager_containers") or torch._C._is_key_in_tls(
            "tree_manager_containers"
        )

    def worker() -> None:
        outcome["before"] = has_state()
        prepare_thread_for_cuda_graphs()
        prepare_thread_for_cuda_graphs()  # idempotent
        outcome["after"] = has_state()
        outcome["state"] = (trees.local.tree_manager_containers, trees.local.tree_manager_locks[0])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert outcome["before"] is False and outcome["after"] is True
    containers, lock = outcome["state"]
    assert containers == {} and hasattr(lock, "acquire")
    assert containers is not trees.get_obj(trees.local, "tree_manager_containers")  # the thread's own
