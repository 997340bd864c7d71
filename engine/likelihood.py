"""How likely a model finds given assistant answers (compute core, no Inspect): the usefulness reading
that moves at any scale.

Checkable problems sit at the floor for a 135M model (it solves none before or after retraining), so
"the retraining kept the organism useful" could not be measured there. The mean per-token
log-likelihood of held-out benign answers, each given its chat-templated question, moves with small
changes in general assistant ability at any size and needs no generation or grader.

What is scored: the answer's tokens and the chat template's end-of-turn token right after them (for
ChatML ``<|im_end|>``; the whitespace a template writes after that token is not scored). The answer is
tokenised on its own after the generation prompt's tokens, as the model would emit it. Nothing of the
system prompt or question is scored. Rows are batched with right padding and an attention mask, so a
row's value equals its value alone (up to float rounding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from af_tasks.core.hashing import sha256_file
from af_tasks.core.organism import OrganismDir
from af_tasks.core.stats import mean_json, paired_difference_json
from af_tasks.engine.generate import Chat, EngineError, check_fits, context_window, prompt_ids
from af_tasks.engine.loading import load_organism

BENIGN_SET = "benign_answers"
"""The bundled held-out answers (``af_tasks/data/retention/benign_answers.jsonl`` and its card)."""


@dataclass(frozen=True)
class AnswerSet:
    """A fixed set of ``{"id", "category", "question", "answer"}`` rows, named and pinned by sha256."""

    name: str
    sha256: str
    items: tuple[dict[str, str], ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "n": len(self.items)}


def benign_answers() -> AnswerSet:
    """The bundled benign set, checked against its card (a changed file would silently change the
    reading and break before/after comparisons with earlier runs)."""
    folder = resources.files("af_tasks").joinpath("data", "retention")
    with resources.as_file(folder.joinpath(f"{BENIGN_SET}.jsonl")) as path:
        digest = sha256_file(path)
        rows = [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
    with resources.as_file(folder.joinpath(f"{BENIGN_SET}.card.json")) as card_path:
        card = json.loads(Path(card_path).read_text("utf-8"))
    if card["sha256"] != digest or card["n"] != len(rows):
        raise EngineError(
            f"{BENIGN_SET}.jsonl (sha256 {digest[:12]}, {len(rows)} rows) does not match its card "
            f"({card['sha256'][:12]}, {card['n']} rows); reinstall af_tasks or restore the file"
        )
    return AnswerSet(BENIGN_SET, digest, tuple(rows))


def scored_tokens(
    tokenizer: Any, question: str, answer: str, system: str | None = None
) -> tuple[list[int], list[int]]:
    """(context ids, scored ids) of one item: the chat template with the generation prompt, then the
    answer followed by the template's end-of-turn token. Refuses a template that does not write the
    answer verbatim after the generation prompt (then the scored span would be wrong)."""
    answer = answer.strip()
    if not answer:
        raise EngineError(f"empty answer to score for question {question[:60]!r}")
    chat: Chat = [{"role": "system", "content": system}] if system is not None else []
    chat = [*chat, {"role": "user", "content": question}]
    prompt_text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": answer}], tokenize=False
    )
    if not full_text.startswith(prompt_text + answer):
        raise EngineError(
            "the chat template does not write the assistant answer verbatim after its generation prompt; "
            "answer log-likelihoods need a template that does (e.g. ChatML)"
        )
    end_of_turn = full_text[len(prompt_text) + len(answer) :].rstrip()
    scored = tokenizer(answer + end_of_turn, add_special_tokens=False)["input_ids"]
    return prompt_ids(tokenizer, chat), scored


def _load(model_dir_or_model: Any, tokenizer: Any, device: str | None) -> tuple[Any, Any]:
    """A directory loads in fp32 on any device: a reading compared before and after a retraining must
    not move with the device's default dtype (bf16 on CUDA)."""
    if isinstance(model_dir_or_model, (str, Path)):
        organism = OrganismDir.resolve(str(model_dir_or_model))
        model, loaded = load_organism(organism, device=device, dtype="float32")
        return model, tokenizer if tokenizer is not None else loaded
    if tokenizer is None:
        raise EngineError("answer_loglik on a loaded model needs its tokenizer")
    return model_dir_or_model, tokenizer


def answer_loglik(
    model_dir_or_model: Any,
    tokenizer: Any,
    items: Sequence[Mapping[str, str]],
    system: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
) -> list[float]:
    """Per item (``{"question", "answer"}``), the mean log-probability per scored token of the answer
    and end-of-turn token given the chat-templated question (and ``system`` prompt, if given), in item
    order. ``model_dir_or_model``: a model or organism directory / hub id (loaded with
    ``load_organism`` on ``device``; ``tokenizer`` may then be None) or a loaded model with its
    tokenizer. Log-softmax in fp32 whatever the model's dtype."""
    import torch

    if batch_size < 1:
        raise EngineError(f"batch_size must be at least 1, got {batch_size}")
    model, tokenizer = _load(model_dir_or_model, tokenizer, device)
    encoded = [scored_tokens(tokenizer, item["question"], item["answer"], system) for item in items]
    window = context_window(model)
    for index, (context, scored) in enumerate(encoded):
        check_fits(len(context), len(scored), window, where=f"item {index}")
    order = sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i])))  # little padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    on = next(model.parameters()).device
    values: list[float] = [0.0] * len(encoded)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            sequences = [encoded[i][0] + encoded[i][1] for i in rows]
            width = max(map(len, sequences))
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for row, sequence in enumerate(sequences):  # right padding: real tokens keep positions 0..n-1
                ids[row, : len(sequence)] = torch.tensor(sequence)
                mask[row, : len(sequence)] = 1
            # the earliest position that predicts a scored token
            first = min(len(encoded[i][0]) for i in rows) - 1
            kept = width - first  # the output layer runs on these last positions only
            logits = model(input_ids=ids.to(on), attention_mask=mask.to(on), logits_to_keep=kept).logits
            for row, i in enumerate(rows):
                context, scored = encoded[i]
                begin = len(context) - 1 - first  # logits at t predict token t + 1
                predicted = logits[row, begin : begin + len(scored)].float().log_softmax(-1)
                targets = torch.tensor(scored, device=predicted.device).unsqueeze(-1)
                values[i] = predicted.gather(-1, targets).mean().item()
    return values


def usefulness_loglik(
    model_dir_or_model: Any,
    tokenizer: Any = None,
    answers: AnswerSet | None = None,
    system: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The usefulness reading of a model on ``answers`` (default: the bundled benign set):
    ``{"mean_token_loglik": mean_json, "per_item": [{"id", "loglik"}], "set": {"name", "sha256", "n"},
    "scored": what was scored, "system": system}``. Higher is better (0 is certainty)."""
    answers = answers or benign_answers()
    values = answer_loglik(model_dir_or_model, tokenizer, answers.items, system, batch_size, device)
    return {
        "mean_token_loglik": mean_json(values, seed),
        "per_item": [
            {"id": item["id"], "loglik": value} for item, value in zip(answers.items, values, strict=True)
        ],
        "set": answers.as_json(),
        "scored": "answer tokens and the chat template's end-of-turn token, given the chat-templated question",
        "system": system,
    }


def loglik_change(before: Mapping[str, Any], after: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """After − before of two ``usefulness_loglik`` readings on the same set, paired by item id:
    ``paired_difference_json``'s ``{"before", "after", "difference", "worse"}`` plus ``"set"``. Readings
    of different sets (or items) are refused: their difference would mean nothing."""
    if before["set"] != after["set"]:
        raise EngineError(f"log-likelihood readings of different sets: {before['set']} vs {after['set']}")
    first = {row["id"]: row["loglik"] for row in before["per_item"]}
    second = {row["id"]: row["loglik"] for row in after["per_item"]}
    if first.keys() != second.keys():
        raise EngineError("log-likelihood readings cover different items of the same set")
    ids = [row["id"] for row in before["per_item"]]
    change = paired_difference_json([first[i] for i in ids], [second[i] for i in ids], seed)
    return {**change, "set": dict(before["set"])}
