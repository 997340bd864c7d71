"""Flash-decoding's arithmetic in plain torch: keys cut into splits, each split's softmax and log-sum-exp,
combined into the whole attention (compute core).

Why its own module: the grouped Triton kernel (``af_tasks.engine.grouped_decode``) and its CPU reference
(``split_reference``, which CI runs) must cut and combine the same way, and the kernel's module imports
Triton while this one does not.
"""

from __future__ import annotations

from typing import Any


def split_plan(rows: int, kv_heads: int, length: int, block: int, programs: int) -> tuple[int, int]:
    """(splits, keys per split) for ``length`` keys: enough splits that rows x kv_heads x splits reaches
    ``programs``, each a whole number of ``block``s, none empty by construction."""
    blocks = max(1, -(-length // block))
    splits = max(1, min(blocks, -(-programs // max(1, rows * kv_heads))))
    per_split = -(-blocks // splits)
    return -(-blocks // per_split), per_split * block


def combine_splits(partial_out: Any, partial_lse: Any) -> Any:
    """[rows, heads, d] from per-split outputs [rows, heads, splits, d] (each normalized within its
    split) and their log-sum-exps [rows, heads, splits] (-inf for a split with no keys; split 0 of a
    row with any key never is)."""
    import torch

    if partial_out.shape[2] == 1:
        return partial_out[:, :, 0]
    weights = torch.exp(partial_lse - partial_lse.amax(-1, keepdim=True))
    return (partial_out * weights[..., None]).sum(2) / weights.sum(-1)[..., None]


def split_reference(
    query: Any, keys: Any, values: Any, used: Any, length: int, scale: float, programs: int, block: int
) -> Any:
    """What the grouped kernel computes, in plain torch: ``query`` [rows, heads, d]; the keys of row r
    (``keys[r, h // groups, :used[r]]``) cut as ``split_plan`` cuts them, each split's softmax-weighted
    values and log-sum-exp, then ``combine_splits``. [rows, heads, d] in the query's dtype."""
    import torch

    rows, heads, dim = query.shape
    kv_heads = keys.shape[1]
    groups = heads // kv_heads
    splits, split_length = split_plan(rows, kv_heads, length, block, programs)
    partial_out = torch.zeros((rows, heads, splits, dim), dtype=torch.float32, device=query.device)
    partial_lse = torch.full((rows, heads, splits), float("-inf"), dtype=torch.float32, device=query.device)
    for row, count in enumerate(used.tolist()):
        k = keys[row].repeat_interleave(groups, 0).float()  # [heads, max_len, d]
        v = values[row].repeat_interleave(groups, 0).float()
        for split in range(splits):
            start, end = split * split_length, min((split + 1) * split_length, count)
            if start >= end:
                continue
            scores = torch.einsum("hd,hnd->hn", query[row].float(), k[:, start:end]) * scale
            partial_lse[row, :, split] = torch.logsumexp(scores, -1)
            partial_out[row, :, split] = torch.einsum("hn,hnd->hd", scores.softmax(-1), v[:, start:end])
    return combine_splits(partial_out, partial_lse).to(query.dtype)
