"""The benchmarks' own arithmetic: a bound they print beside measured times must be a true bound."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def decode_gpu(monkeypatch):
    """``benchmarks/decode_gpu.py`` (benchmarks/ is not an installed package: imported from the root)."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("benchmarks.decode_gpu")


def test_workload_roofline_by_hand(decode_gpu):
    """Three requests at 2 slots, small enough to count by hand. Prefill: the 2-token shared prefix once
    plus each prompt's own tokens (1 + 3 + 2) = 8 tokens, each request's first answer token with it.
    Decode: 0 + 2 + 3 = 5 tokens in 3 full steps (300 weight bytes); the 5-token prompt's tokens 1–2
    read 6 and 7 positions, the 4-token prompt's tokens 1–3 read 5, 6 and 7: 31 positions × 10 bytes."""
    prompts = [[7, 8, 1], [7, 8, 2, 3, 4], [7, 8, 5, 6]]
    bound = decode_gpu.workload_roofline(
        prompts, [1, 3, 4], 2, 2, model_bytes=100, kv_bytes=10, parameters=1, bandwidth=61, flops=2
    )
    assert bound["steps"] == 3 and bound["weight_bytes_read"] == 300 and bound["cache_bytes_read"] == 310
    assert bound["read_s"] == pytest.approx(10.0) and bound["decode_flops_s"] == pytest.approx(5.0)
    assert bound["prefill_tokens"] == 8 and bound["prefill_s"] == pytest.approx(8.0)
    assert bound["bound_s"] == pytest.approx(18.0)
    compute_bound = decode_gpu.workload_roofline(
        prompts, [1, 3, 4], 2, 2, model_bytes=100, kv_bytes=10, parameters=1, bandwidth=61, flops=0.5
    )
    assert compute_bound["bound_s"] == pytest.approx(20.0 + 32.0)  # decode FLOPs outweigh its reads


def test_workload_roofline_counts_every_read_of_a_token_by_token_walk(decode_gpu):
    """The closed form equals walking every decode step of random workloads: each step reads the weights
    once (steps never fewer than full ones allow) and each decoded token its row's K/V so far."""
    draw = random.Random(0)
    for _ in range(50):
        count, slots = draw.randint(1, 12), draw.randint(1, 6)
        prompts = [[0] * draw.randint(1, 40) for _ in range(count)]
        answers = [draw.randint(1, 30) for _ in range(count)]
        bound = decode_gpu.workload_roofline(
            prompts, answers, slots, 0, model_bytes=1, kv_bytes=3, parameters=1, bandwidth=1, flops=1e30
        )
        walked = sum(len(p) + j for p, n in zip(prompts, answers, strict=True) for j in range(1, n))
        decoded = sum(n - 1 for n in answers)
        assert bound["cache_bytes_read"] == 3 * walked
        assert bound["steps"] == -(-decoded // slots)
        assert bound["bound_s"] == pytest.approx(bound["steps"] + 3 * walked)
