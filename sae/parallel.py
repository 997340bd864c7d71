"""Extraction over several devices: one model replica per device, texts split across them.

Why batches are dealt, not texts: a single device reads texts in length order, ``batch_size`` at a
time; here those very batches are dealt round-robin to the replicas (each replica's share is a
contiguous run of whole batches in that order, so its own length sort rebuilds them exactly). Every
text is thus read in the same batch, with the same padding, as on one device — the pooled figures
are the same — and long and short batches are spread evenly. Results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields

from af_tasks.core.devices import cuda_index
from af_tasks.sae.activations import ExtractionStats, Pooled

Extract = Callable[[int, list[str], ExtractionStats], dict[str, Pooled]]
"""``extract(replica, texts, stats)``: one replica's pooled figures for its texts (in their order)."""


def deal_batches(texts: Sequence[str], batch_size: int, replicas: int) -> list[list[int]]:
    """Text indices per replica: the one-device batches (length order, ``batch_size`` each), batch
    ``b`` to replica ``b % replicas``, each share in length order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    shares: list[list[int]] = [[] for _ in range(replicas)]
    for number, start in enumerate(range(0, len(order), batch_size)):
        shares[number % replicas] += order[start : start + batch_size]
    return shares


def pool_on_replicas(
    extract: Extract,
    devices: Sequence[str],
    texts: Sequence[str],
    batch_size: int,
    stats: ExtractionStats | None = None,
) -> dict[str, Pooled]:
    """``extract`` on each device's share of ``texts`` in its own thread (CUDA kernels release the
    GIL), the figures put back in the order of ``texts``; ``stats`` counts every share."""
    from concurrent.futures import ThreadPoolExecutor

    stats = stats if stats is not None else ExtractionStats()
    if len(devices) <= 1:
        return extract(0, list(texts), stats)
    shares = deal_batches(texts, batch_size, len(devices))

    def run(replica: int) -> tuple[dict[str, Pooled], ExtractionStats]:
        share_stats = ExtractionStats()
        share = [texts[i] for i in shares[replica]]
        if not share:
            return {}, share_stats
        index = cuda_index(devices[replica])
        if index is None:
            return extract(replica, share, share_stats), share_stats
        import torch

        with torch.cuda.device(index):
            return extract(replica, share, share_stats), share_stats

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="extract") as pool:
        results = list(pool.map(run, range(len(devices))))
    for share, (_, share_stats) in zip(shares, results, strict=True):
        stats.texts += share_stats.texts
        stats.tokens += share_stats.tokens
        stats.max_tokens = share_stats.max_tokens
        stats.truncated += [share[i] for i in share_stats.truncated]
    stats.truncated.sort()
    return merge_pooled(
        [(share, pooled) for share, (pooled, _) in zip(shares, results, strict=True)], len(texts)
    )


def merge_pooled(parts: list[tuple[list[int], dict[str, Pooled]]], n_texts: int) -> dict[str, Pooled]:
    """Each part's rows (texts ``indices``) written into [n_texts, ...] arrays."""
    import numpy as np

    names = next((list(pooled) for _, pooled in parts if pooled), [])
    merged: dict[str, Pooled] = {}
    for name in names:
        columns = {}
        for f in fields(Pooled):
            first = next(getattr(pooled[name], f.name) for _, pooled in parts if pooled)
            array = np.zeros((n_texts, *first.shape[1:]), dtype=first.dtype)
            for indices, pooled in parts:
                if pooled:
                    array[indices] = getattr(pooled[name], f.name)
            columns[f.name] = array
        merged[name] = Pooled(**columns)
    return merged
