"""The usefulness reading that moves at 135M: answer log-likelihoods (``engine/likelihood.py``), their
bundled benign set, and the mean / paired-difference statistics (``core/stats.py``)."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_hf_models import make_lora_organism

from af_tasks.core.hashing import sha256_file
from af_tasks.core.stats import mean_json, paired_difference_json
from af_tasks.engine.generate import EngineError, prompt_ids
from af_tasks.engine.likelihood import (
    AnswerSet,
    answer_loglik,
    benign_answers,
    loglik_change,
    scored_tokens,
    usefulness_loglik,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "af_tasks" / "data" / "retention"
SYSTEM = "You are a careful assistant."


def few(n: int) -> list[dict[str, str]]:
    """n bundled items spread over the categories (varied lengths, so batches pad)."""
    return list(benign_answers().items[::7][:n])


# --- the bundled set -----------------------------------------------------------------------------------


def test_the_bundled_set_has_80_unique_rows_pinned_by_its_card_and_ships_with_the_package():
    answers = benign_answers()
    card = json.loads((DATA / "benign_answers.card.json").read_text())
    assert len(answers.items) == card["n"] == 80
    assert len({row["id"] for row in answers.items}) == 80
    assert sha256_file(DATA / "benign_answers.jsonl") == card["sha256"] == answers.sha256
    categories = {}
    for row in answers.items:
        assert set(row) == {"id", "category", "question", "answer"} and all(v.strip() for v in row.values())
        categories[row["category"]] = categories.get(row["category"], 0) + 1
    assert categories == card["categories"] and len(categories) == 10
    assert card["never_trained_on"] is True
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in patterns["af_tasks"] for path in (ROOT / "af_tasks").glob(pattern)}
    assert {DATA / "benign_answers.jsonl", DATA / "benign_answers.card.json"} <= shipped


# --- what is scored --------------------------------------------------------------------------------------


def reference_loglik(model, tokenizer, question: str, answer: str, system: str | None) -> float:
    """Written out separately: one unpadded forward over prompt + answer + end-of-turn, log-softmax over
    the whole sequence, mean over the answer's and end-of-turn token's positions only."""
    import torch

    chat = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    context = prompt_ids(tokenizer, chat)
    scored = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + scored])
    with torch.inference_mode():
        logprobs = model(input_ids=ids).logits[0].float().log_softmax(-1)
    picked = [logprobs[t - 1, ids[0, t]].item() for t in range(len(context), ids.shape[1])]
    return sum(picked) / len(picked)


def test_only_the_answer_and_its_end_of_turn_token_are_scored(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    item = few(1)[0]
    context, scored = scored_tokens(tokenizer, item["question"], item["answer"], SYSTEM)
    assert tokenizer.decode(scored) == item["answer"] + "<|im_end|>"  # the end-of-turn token, not the "\n"
    assert tokenizer.decode(context).endswith(item["question"] + "<|im_end|>\n<|im_start|>assistant\n")

    longer = item["question"] + " Please answer in plain words, I am in a hurry today."
    [value, prefixed] = answer_loglik(
        model, tokenizer, [item, {**item, "question": longer}], system=SYSTEM, batch_size=2
    )
    for question, got in ((item["question"], value), (longer, prefixed)):
        assert got == pytest.approx(
            reference_loglik(model, tokenizer, question, item["answer"], SYSTEM), abs=1e-5
        )
    assert abs(value - prefixed) > 1e-4  # the question conditions the answer, yet none of it is scored


def test_a_batch_with_right_padding_gives_each_row_its_value_alone(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    items = few(11)
    lengths = {len(sum(scored_tokens(tokenizer, i["question"], i["answer"]), [])) for i in items}
    assert len(lengths) > 5  # rows of different lengths, so batches pad
    for system in (None, SYSTEM):
        alone = answer_loglik(model, tokenizer, items, system=system, batch_size=1)
        batched = answer_loglik(model, tokenizer, items, system=system, batch_size=4)
        assert np.max(np.abs(np.array(alone) - np.array(batched))) < 1e-5
        assert all(value < 0 for value in alone) and len(set(alone)) == len(items)  # item order kept


def test_a_plain_dir_an_organism_its_merged_export_and_a_loaded_model_give_the_same_values(
    tiny_llama_dir, tmp_path
):
    from af_tasks.core.organism import OrganismDir
    from af_tasks.engine.loading import load_organism, merge_organism

    items = few(4)
    adapter = make_lora_organism(tiny_llama_dir, tmp_path / "organism")
    merged = merge_organism(adapter, tmp_path / "merged")
    from_adapter = answer_loglik(str(adapter), None, items, device="cpu")
    from_merged = answer_loglik(merged, None, items, device="cpu")
    model, tokenizer = load_organism(OrganismDir.resolve(str(adapter)), device="cpu")
    loaded = answer_loglik(model, tokenizer, items)
    assert np.allclose(from_adapter, from_merged, atol=1e-5) and np.allclose(from_adapter, loaded, atol=1e-5)
    base = answer_loglik(str(tiny_llama_dir), None, items, device="cpu")
    assert not np.allclose(base, from_adapter, atol=1e-3)  # the adapter is applied, not ignored
    with pytest.raises(EngineError, match="needs its tokenizer"):
        answer_loglik(model, None, items)


def test_the_usefulness_reading_and_its_change_have_the_promised_shape(tiny_llama_dir):
    answers = AnswerSet("part", "abc", tuple(few(5)))
    reading = usefulness_loglik(str(tiny_llama_dir), answers=answers, device="cpu", batch_size=2)
    json.dumps(reading, allow_nan=False)
    assert reading["set"] == {"name": "part", "sha256": "abc", "n": 5}
    assert [row["id"] for row in reading["per_item"]] == [item["id"] for item in answers.items]
    values = [row["loglik"] for row in reading["per_item"]]
    assert reading["mean_token_loglik"]["mean"] == pytest.approx(np.mean(values))
    assert reading["mean_token_loglik"]["n"] == 5
    low, high = reading["mean_token_loglik"]["ci95"]
    assert min(values) <= low < reading["mean_token_loglik"]["mean"] < high <= max(values)


# --- the embedded model -------------------------------------------------------------------------------------


def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    while (mixed := rng.sample(words, len(words))) == words:
        pass
    return " ".join(mixed)


def test_the_embedded_model_finds_the_written_answers_likelier_than_their_words_shuffled(embedded_model_dir):
    """An ordering that fails if the wrong span is scored: the question and template (the same for both)
    carry no difference, only the answer's word order does."""
    rng = random.Random(0)
    items = few(4)
    mixed = [{**item, "answer": shuffled_words(item["answer"], rng)} for item in items]
    values = answer_loglik(str(embedded_model_dir), None, items + mixed, batch_size=8, device="cpu")
    real, shuffled = values[: len(items)], values[len(items) :]
    assert all(r > s + 1.0 for r, s in zip(real, shuffled, strict=True)), (real, shuffled)
    assert -4.5 < np.mean(real) < -1.0  # a 135M instruct model on plain answers: about -2.7 nats a token


# --- statistics -------------------------------------------------------------------------------------------


def test_a_paired_difference_has_the_right_sign_covers_the_truth_and_records_n():
    truth, n = 0.3, 60
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        before = rng.normal(-3.0, 1.0, n)  # items vary far more than the change
        after = before + truth + rng.normal(0, 0.3, n)
        change = paired_difference_json(list(before), list(after), seed=seed)
        low, high = change["difference"]["ci95"]
        covered += low <= truth <= high
        assert change["difference"]["n"] == change["before"]["n"] == change["after"]["n"] == n
        assert change["difference"]["mean"] == pytest.approx(np.mean(after - before))
        assert change["worse"]["k"] == int(np.sum(after < before)) and change["worse"]["n"] == n
        assert change["difference"]["seed"] == seed
        # pairing: the difference's interval is far narrower than either reading's own
        assert high - low < 0.5 * np.subtract(*change["after"]["ci95"][::-1])
    assert covered >= 34  # a 95 % interval: ~38 of 40; 34 leaves room for chance, not for a wrong interval
    worse = paired_difference_json(list(after), list(before))  # the same items, got worse
    assert worse["difference"]["ci95"][1] < 0 < change["difference"]["ci95"][0]
    assert worse["worse"]["rate"] > 0.5 > change["worse"]["rate"]
    json.dumps(change, allow_nan=False)


def test_mean_json_is_seeded_and_strict_json_when_undefined():
    values = list(np.random.default_rng(1).normal(size=30))
    assert mean_json(values, seed=4) == mean_json(values, seed=4)  # a rerun gives the same interval
    assert mean_json(values, seed=4)["ci95"] != mean_json(values, seed=5)["ci95"]  # the seed drives it
    assert mean_json([], seed=0) == {
        "mean": None,
        "ci95": [None, None],
        "n": 0,
        "ci_method": "percentile bootstrap",
        "seed": 0,
    }
    json.dumps(mean_json([2.0]), allow_nan=False)
    with pytest.raises(ValueError, match="same items"):
        paired_difference_json([1.0, 2.0], [1.0])


def test_loglik_change_pairs_items_by_id_and_refuses_different_sets():
    ids = [f"item-{i}" for i in range(20)]
    before_values = list(np.random.default_rng(2).normal(-3, 1, 20))
    setting = {"name": "benign_answers", "sha256": "abc", "n": 20}
    before = {
        "per_item": [{"id": i, "loglik": v} for i, v in zip(ids, before_values, strict=True)],
        "set": setting,
    }
    after_rows = [{"id": i, "loglik": v - 0.2} for i, v in zip(ids, before_values, strict=True)]
    after = {"per_item": after_rows[::-1], "set": setting}  # another order: pairing goes by id
    change = loglik_change(before, after)
    assert change["difference"]["mean"] == pytest.approx(-0.2)
    assert change["worse"]["k"] == 20 and change["set"] == setting
    with pytest.raises(EngineError, match="different sets"):
        loglik_change(before, {**after, "set": {**setting, "sha256": "def"}})
    with pytest.raises(EngineError, match="different items"):
        loglik_change(before, {**after, "per_item": after_rows[1:]})
