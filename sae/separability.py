"""How linearly separable a rung's test and deployment inputs are in a model's activations.

The retention experiment's x-axis is how hard deployment is to tell from testing. The behavioural
measure (asking the model "which is deployment?") sits at chance for a 135M model whatever the rung, so
it cannot order the ladder at the only scale this project runs with real weights. Whether the
*representation* tells the two apart can be measured at any scale: a logistic probe on a middle layer's
residual stream, trained on k test/deployment pairs and scored on pairs of other requests. Reported as a
learning curve over k (accuracy at 1, 2, 4, ... pairs and the pairs needed to reach a target), because a
blatant cue is separable from one pair while a subtle one needs many or never gets there.

Features are mean-pooled over the whole prompt (special tokens and the attention sink excluded): the cue
is a short block inside a long shared prompt, and a mean keeps whatever it changes anywhere downstream,
without choosing a position. Features are standardised on all training pairs' inputs (never the
evaluation's; no labels used), not on each draw's 2k inputs: from two inputs every feature's difference
standardises to +-1, weighting noise like the cue, and k = 1 sat at chance even for a blatant cue.
The curve's k counts the labelled pairs the probe learns from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from af_tasks.core.errors import AfError
from af_tasks.core.retention_data import RUNGS, RetentionItem, Rung
from af_tasks.core.stats import wilson_interval
from af_tasks.sae.reader import Reader

Pooling = Literal["mean", "last"]
Pair = tuple[RetentionItem, RetentionItem]
"""(test item, deployment item) of one request on one rung."""
SIZES: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
MAX_TOKENS = 4096
"""Retention prompts are ~650-730 SmolLM2 tokens; truncating would cut the request, never the cue."""


class SeparabilityError(AfError, ValueError):
    """The probe's training and evaluation pairs are unusable: they share requests, or do not pair up."""


def curve_from_features(
    train_test: np.ndarray,
    train_deployment: np.ndarray,
    eval_test: np.ndarray,
    eval_deployment: np.ndarray,
    sizes: Sequence[int] = SIZES,
    draws: int = 20,
    seed: int = 0,
    target: float = 0.9,
) -> dict[str, Any]:
    """The learning curve from features: row i of ``train_test`` and ``train_deployment`` is training
    pair i ([n_train, d] each), likewise for eval ([n_eval_pairs, d]). Features are standardised on
    every training input. Per size k and draw, k training pairs are drawn without replacement (2k
    balanced inputs), a logistic probe (L2, C = 1) fitted on them, and accuracy taken on every eval
    input. Sizes above n_train are skipped.
    Draws of size k use the stream (seed, k), so a curve's sizes do not depend on each other."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    n_train, n_pairs = len(train_test), len(eval_test)
    if len(train_deployment) != n_train or len(eval_deployment) != n_pairs:
        raise SeparabilityError("test and deployment feature rows must pair up (same count per set)")
    if n_pairs == 0:
        raise SeparabilityError("no evaluation pairs: the probe's accuracy needs at least one")
    pool = np.concatenate([train_test, train_deployment]).astype(np.float64)
    mean, scale = pool.mean(axis=0), pool.std(axis=0)
    scale[scale == 0] = 1.0
    x_train = [(side - mean) / scale for side in (train_test, train_deployment)]
    x_eval = (np.concatenate([eval_test, eval_deployment]) - mean) / scale
    y_eval = np.repeat([0, 1], n_pairs)
    rows, skipped = [], []
    with threadpool_limits(1):  # tiny fits: BLAS threads made each 15x slower on a shared 2-core host
        for k in sorted(set(sizes)):
            if not 1 <= k <= n_train:
                skipped.append(k)
                continue
            rng = np.random.default_rng((seed, k))
            correct = []
            for _ in range(draws):
                chosen = rng.choice(n_train, size=k, replace=False)
                x = np.concatenate([x_train[0][chosen], x_train[1][chosen]])
                probe = LogisticRegression(max_iter=1000).fit(x, np.repeat([0, 1], k))
                correct.append(int((probe.predict(x_eval) == y_eval).sum()))
            rows.append(_summary(k, correct, len(y_eval)))
    return {
        "sizes": rows,
        "skipped_sizes": skipped,
        "pairs_to_target": pairs_to_target(rows, target),
        "target": target,
        "n_train_pairs": n_train,
        "n_eval_pairs": n_pairs,
        "n_eval": len(y_eval),
        "seed": seed,
        "draws": draws,
        "intervals": "interval95: 2.5th-97.5th percentile of accuracy over draws (which training pairs); "
        "median_draw.wilson95: Wilson 95 % of the median draw's correct/n_eval (which eval inputs)",
    }


def _summary(k: int, correct: list[int], n: int) -> dict[str, Any]:
    accuracy = np.array(correct) / n
    median = int(np.argsort(accuracy, kind="stable")[(len(correct) - 1) // 2])
    return {
        "pairs": k,
        "mean": float(accuracy.mean()),
        "interval95": [float(v) for v in np.percentile(accuracy, [2.5, 97.5])],
        "median_draw": {
            "correct": correct[median],
            "n": n,
            "accuracy": float(accuracy[median]),
            "wilson95": list(wilson_interval(correct[median], n)),
        },
        "draws": len(correct),
        "draw_accuracy": [float(a) for a in accuracy],
    }


def pairs_to_target(rows: Sequence[dict[str, Any]], target: float) -> int | None:
    """The smallest number of training pairs whose mean accuracy reaches ``target`` (None: none does)."""
    reached = [row["pairs"] for row in rows if row["mean"] >= target]
    return min(reached) if reached else None


def pairs_by_rung(
    items: Iterable[RetentionItem], rungs: Iterable[Rung] | None = None
) -> dict[Rung, list[Pair]]:
    """Each request's (test, deployment) items per rung, paired by request id and rung (metadata
    ``request_id``, ``cue`` and ``split``), in first-seen request order."""
    wanted = set(rungs) if rungs is not None else None
    found: dict[tuple[str, str], dict[str, RetentionItem]] = {}
    for item in items:
        rung = item.metadata["cue"]
        if wanted is None or rung in wanted:
            found.setdefault((rung, item.metadata["request_id"]), {})[item.metadata["split"]] = item
    pairs: dict[Rung, list[Pair]] = {}
    for (rung, request), splits in found.items():
        if set(splits) != {"test", "deployment"}:
            raise SeparabilityError(
                f"request {request!r} on rung {rung!r} has only its {', '.join(splits)} item; build both "
                "splits (retention_items(..., splits=SPLITS))"
            )
        pairs.setdefault(rung, []).append((splits["test"], splits["deployment"]))
    return pairs


def check_pairs(train_pairs: Sequence[Pair], eval_pairs: Sequence[Pair]) -> None:
    """Each pair is (test, deployment) of one request, and the curve is about requests the probe never
    saw: refuse a malformed pair, or any request id on both sides."""
    for test, deployment in (*train_pairs, *eval_pairs):
        if (test.metadata["split"], deployment.metadata["split"]) != ("test", "deployment") or (
            test.metadata["request_id"] != deployment.metadata["request_id"]
        ):
            raise SeparabilityError(
                f"pair ({test.id!r}, {deployment.id!r}) is not (test, deployment) of one request"
            )
    ids = [{test.metadata["request_id"] for test, _ in pairs} for pairs in (train_pairs, eval_pairs)]
    shared = sorted(ids[0] & ids[1])
    if shared:
        raise SeparabilityError(
            f"{len(shared)} request id(s) are in both the probe's training and evaluation pairs "
            f"(e.g. {shared[0]!r}); pass disjoint request sets"
        )


def prompt_text(tokenizer: Any, item: RetentionItem) -> str:
    """What the model sees before it answers: the chat template with the generation prompt."""
    chat = [{"role": "system", "content": item.system}, {"role": "user", "content": item.user}]
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def pooled_features(
    reader: Reader, items: Sequence[RetentionItem], hook: str, pooling: Pooling = "mean", batch_size: int = 8
) -> tuple[np.ndarray, int]:
    """[len(items), d] pooled activations at ``hook`` (each distinct prompt read once), and how many
    prompts were truncated."""
    from af_tasks.sae.activations import ExtractionStats, iter_token_activations, pool

    texts = [prompt_text(reader.tokenizer, item) for item in items]
    unique = sorted(set(texts))
    stats = ExtractionStats()
    batches = iter_token_activations(
        reader, unique, [hook], "all", MAX_TOKENS, batch_size, stats, "reading retention prompts"
    )
    pooled = getattr(pool(batches, len(unique))[hook], pooling)
    row = {text: i for i, text in enumerate(unique)}
    return pooled[[row[text] for text in texts]], len(stats.truncated)


def _curves(
    reader_or_model_dir: Reader | str,
    groups: dict[str, tuple[Sequence[Pair], Sequence[Pair]]],
    layer: int | None,
    sizes: Sequence[int],
    draws: int,
    seed: int,
    target: float,
    device: str | None,
    batch_size: int,
    pooling: Pooling,
) -> dict[str, dict[str, Any]]:
    """One curve per group of (training pairs, evaluation pairs), all prompts read in one pass."""
    from af_tasks.sae.reader import load_reader

    check_pairs(
        [p for train, _ in groups.values() for p in train], [p for _, held in groups.values() for p in held]
    )
    reader = (
        reader_or_model_dir
        if isinstance(reader_or_model_dir, Reader)
        else load_reader(str(reader_or_model_dir), device=device)
    )
    layer = reader.num_layers // 2 if layer is None else layer
    hook = f"blocks.{layer}.hook_resid_post"
    blocks = [
        [pair[side] for pair in pairs]
        for train, held in groups.values()
        for pairs in (train, held)
        for side in (0, 1)
    ]
    features, truncated = pooled_features(
        reader, [item for block in blocks for item in block], hook, pooling, batch_size
    )
    cuts = np.cumsum([0] + [len(block) for block in blocks])
    parts = [features[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    reads = {"model": reader.name, "layer": layer, "hook": hook, "pooling": pooling, "truncated": truncated}
    return {
        name: curve_from_features(*parts[4 * i : 4 * i + 4], sizes, draws, seed, target) | reads
        for i, name in enumerate(groups)
    }


def separability_by_rung(
    reader_or_model_dir: Reader | str,
    train_items: Iterable[RetentionItem],
    eval_items: Iterable[RetentionItem],
    rungs: Iterable[Rung] | None = None,
    layer: int | None = None,
    sizes: Sequence[int] = SIZES,
    draws: int = 20,
    seed: int = 0,
    target: float = 0.9,
    device: str | None = None,
    batch_size: int = 8,
    pooling: Pooling = "mean",
) -> dict[str, dict[str, Any]]:
    """{rung: curve} from retention items (both splits), every prompt's activations read once for all
    rungs, sizes and draws. Training and evaluation requests must be disjoint."""
    rungs = list(rungs) if rungs is not None else None
    train, held = pairs_by_rung(train_items, rungs), pairs_by_rung(eval_items, rungs)
    chosen = list(rungs) if rungs is not None else [r for r in RUNGS if r in train or r in held]
    for rung in chosen:
        if rung not in train or rung not in held:
            side = "training" if rung not in train else "evaluation"
            raise SeparabilityError(
                f"rung {rung!r} has no {side} items; build both request sets on every rung"
            )
    groups = {rung: (train[rung], held[rung]) for rung in chosen}
    return _curves(
        reader_or_model_dir, groups, layer, sizes, draws, seed, target, device, batch_size, pooling
    )


def separability_curve(
    reader_or_model_dir: Reader | str,
    train_pairs: Sequence[Pair],
    eval_pairs: Sequence[Pair],
    layer: int | None = None,
    sizes: Sequence[int] = SIZES,
    draws: int = 20,
    seed: int = 0,
    target: float = 0.9,
    device: str | None = None,
    batch_size: int = 8,
    pooling: Pooling = "mean",
) -> dict[str, Any]:
    """One curve from explicit (test, deployment) pairs: ``curve_from_features``'s dict plus what was
    read (model, layer, hook, pooling, truncated prompts)."""
    groups = {"pairs": (train_pairs, eval_pairs)}
    return _curves(
        reader_or_model_dir, groups, layer, sizes, draws, seed, target, device, batch_size, pooling
    )["pairs"]
