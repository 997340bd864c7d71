"""The retention experiment's bookkeeping and report, on hand-built results (no model): which cells
run, how repeated budgets are reported, the transfer matrix, the log-likelihood usefulness rows."""

from __future__ import annotations

import pytest

from af_tasks.app.retention.report import (
    separability_accuracy,
    summarise,
    table,
    transfer_matrix,
)
from af_tasks.app.retention.run import cell_slots, fill_slots
from af_tasks.core.stats import rate_json


def test_a_budget_above_the_caught_attacks_repeats_the_smallest_such_budget():
    slots = cell_slots(("tier", "news"), (0, 1), (1, 4, 16, 64), {"tier": 3, "news": 100})
    assert len(slots) == 2 * 2 * 4  # every rung × seed × budget keeps a slot, in the sequential order
    tier = [(budget, same) for rung, seed, budget, same in slots if rung == "tier" and seed == 0]
    assert tier == [(1, None), (4, None), (16, 4), (64, 4)]  # 4, 16 and 64 all train on the 3 caught
    news = [(budget, same) for rung, seed, budget, same in slots if rung == "news" and seed == 1]
    assert news == [(1, None), (4, None), (16, None), (64, None)]


def test_a_rung_with_nothing_caught_runs_one_cell_per_seed():
    slots = cell_slots(("trigger",), (0, 1, 2), (1, 4), {"trigger": 0})
    assert [same for _, _, _, same in slots] == [None, 1, None, 1, None, 1]


def test_repeated_budgets_are_reported_as_their_source_run_and_marked():
    slots = cell_slots(("tier",), (0,), (1, 4, 16), {"tier": 2})
    finished = {
        ("tier", 0, 1): {"rung": "tier", "seed": 0, "budget": 1, "caught_used": 1},
        ("tier", 0, 4): {"rung": "tier", "seed": 0, "budget": 4, "caught_used": 2},
    }
    runs = fill_slots(slots, finished)
    assert [r["budget"] for r in runs] == [1, 4, 16]
    assert runs[2]["caught_used"] == 2 and runs[2]["same_training_set_as_budget"] == 4
    assert "same_training_set_as_budget" not in runs[1]
    assert fill_slots(slots, {}) == []  # nothing finished yet: nothing reported


def _rates(deployment: dict[str, float], n: int = 40) -> dict:
    return {
        rung: {"deployment": rate_json(round(r * n), n), "test": rate_json(0, n)}
        for rung, r in deployment.items()
    }


def _loglik(values: list[float]) -> dict:
    return {
        "mean_token_loglik": {"mean": sum(values) / len(values), "ci95": [None, None], "n": len(values)},
        "per_item": [{"id": f"q{i}", "loglik": v} for i, v in enumerate(values)],
        "set": {"name": "benign", "sha256": "x", "n": len(values)},
    }


def _results() -> dict:
    before = {"attacks": _rates({"tier": 1.0, "news": 1.0}), "usefulness": rate_json(0, 20)}
    before["loglik"] = _loglik([-2.0, -3.0, -2.5, -2.0])
    runs = []
    for seed, shift in ((0, -0.5), (1, -0.1)):
        after = {
            "attacks": _rates({"tier": 0.25, "news": 0.75 + 0.25 * seed}),
            "usefulness": rate_json(0, 20),
            "loglik": _loglik([-2.0 + shift, -3.0 + shift, -2.5 + shift, -2.0 + shift]),
        }
        runs.append(
            {"organism": "a", "rung": "tier", "budget": 4, "seed": seed, "caught_used": 4, "after": after}
        )
    return {
        "settings": {"data_seed": 0},
        "organisms": {"a": {"before": before, "difficulty": {}, "caught": {"tier": 9, "news": 0}}},
        "runs": runs,
        "separability": {
            "rungs": {
                "tier": {"sizes": [{"pairs": 1, "mean": 0.6}, {"pairs": 4, "mean": 0.8}], "target": 0.9}
            }
        },
    }


def test_the_transfer_matrix_pools_seeds_per_trained_and_measured_rung():
    results = _results()
    results["summary"] = summarise(results)
    matrix = transfer_matrix(results, "a", 4)
    assert set(matrix) == {"tier"}  # news caught nothing: no row
    assert (matrix["tier"]["tier"]["k"], matrix["tier"]["tier"]["n"]) == (20, 80)  # 10 + 10 of 40 + 40
    assert (matrix["tier"]["news"]["k"], matrix["tier"]["news"]["n"]) == (70, 80)  # 30 + 40
    assert transfer_matrix(results, "a", 16) == {}
    assert "Transfer, a, budget 4" in table(results)


def test_loglik_change_averages_each_item_over_seeds_before_pairing():
    results = _results()
    [row] = results["summary"] = summarise(results)
    change = row["loglik_change"]
    assert change["difference"]["mean"] == pytest.approx(-0.3)  # the mean of -0.5 and -0.1 per item
    assert change["difference"]["n"] == 4  # items, not items × seeds
    assert change["worse"]["k"] == 4
    assert row["loglik_before"]["mean"] == pytest.approx(-2.375)
    assert "Usefulness as the mean per-token log-likelihood" in table(results)


def test_the_representational_axis_reads_the_fixed_number_of_pairs():
    curve = _results()["separability"]["rungs"]["tier"]
    assert separability_accuracy(curve) == 0.8  # AXIS_PAIRS = 4
    assert separability_accuracy(curve, pairs=1) == 0.6
    assert separability_accuracy(curve, pairs=32) is None and separability_accuracy(None) is None
