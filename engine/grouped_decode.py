"""Decode attention with the query heads of one KV head packed into one tile (Triton kernel; compute core).

Why: torch's flash kernel (``per_row_attention``) tiles 128 query rows, and a decode step has 4 per KV
head (Mistral's query heads per KV head), so at 128 slots it spends its time on padding (42 % of the
copy bandwidth in the workload profile, ``BENCHMARKS.md``). Here one program reads one (slot, KV head)'s
keys and values once, up to that slot's own position, for a 16-row tile holding its group of query
heads; the keys can be split across programs (flash-decoding) so few slots still fill the GPU, and a
second kernel combines the splits by their log-sum-exp (with one split the first writes the output).

Importing this module imports Triton: ``af_tasks.engine.decode_attention`` imports it only when this
attention is chosen. ``TRITON_INTERPRET=1`` runs the kernel on CPU tensors (the local check; CI checks
the split-and-combine arithmetic through ``af_tasks.engine.split_keys``, which has no Triton).
"""

import torch
import triton
import triton.language as tl

from af_tasks.engine.split_keys import split_plan

GROUP_TILE = 16
"""Query rows per program: the group of query heads of one KV head, padded (``tl.dot`` needs 16)."""


@triton.jit
def _partial_attention(
    query,
    keys,
    values,
    used,
    partial_out,
    partial_lse,
    scale,
    stride_q_row,
    stride_q_head,
    stride_q_dim,
    stride_k_slot,
    stride_k_head,
    stride_k_pos,
    stride_k_dim,
    stride_v_slot,
    stride_v_head,
    stride_v_pos,
    stride_v_dim,
    kv_heads,
    split_length,
    splits,
    GROUPS: tl.constexpr,
    TILE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DIM: tl.constexpr,
    DIRECT: tl.constexpr,
):
    """One (row, KV head, split): softmax-weighted values of keys [start, min(end, used[row])) for the
    group's query heads, normalized within the split, and the split's log-sum-exp (-inf when empty).
    ``DIRECT`` (one split): the output itself, in ``partial_out``'s dtype, and no log-sum-exp."""
    sequence = tl.program_id(0)
    split = tl.program_id(1)
    row = (sequence // kv_heads).to(tl.int64)  # 64-bit offsets: a large cache passes 2**31 elements
    kv_head = (sequence % kv_heads).to(tl.int64)
    in_use = tl.load(used + row)
    start = split * split_length
    end = tl.minimum(start + split_length, in_use)
    group = tl.arange(0, TILE)
    dims = tl.arange(0, DIM)
    real = group < GROUPS
    heads = kv_head * GROUPS + group
    q = tl.load(
        query + row * stride_q_row + heads[:, None] * stride_q_head + dims[None, :] * stride_q_dim,
        mask=real[:, None],
        other=0.0,
    )
    best = tl.full([TILE], float("-inf"), tl.float32)
    total = tl.zeros([TILE], tl.float32)
    acc = tl.zeros([TILE, DIM], tl.float32)
    key_base = keys + row * stride_k_slot + kv_head * stride_k_head
    value_base = values + row * stride_v_slot + kv_head * stride_v_head
    for first in range(start, end, BLOCK_N):
        positions = first + tl.arange(0, BLOCK_N)
        valid = positions < end
        k = tl.load(
            key_base + positions[:, None] * stride_k_pos + dims[None, :] * stride_k_dim,
            mask=valid[:, None],
            other=0.0,
        )
        scores = tl.dot(q, tl.trans(k)) * scale
        scores = tl.where(valid[None, :], scores, float("-inf"))
        new_best = tl.maximum(best, tl.max(scores, 1))
        rescale = tl.exp(best - new_best)
        weights = tl.exp(scores - new_best[:, None])
        total = total * rescale + tl.sum(weights, 1)
        v = tl.load(
            value_base + positions[:, None] * stride_v_pos + dims[None, :] * stride_v_dim,
            mask=valid[:, None],
            other=0.0,
        )
        acc = acc * rescale[:, None] + tl.dot(weights.to(v.dtype), v)
        best = new_best
    filled = total > 0
    safe_total = tl.where(filled, total, 1.0)
    out = acc / safe_total[:, None]
    lse = tl.where(filled, best + tl.log(safe_total), float("-inf"))
    slot_row = (row * kv_heads * GROUPS + heads) * splits + split  # [rows, heads, splits] flattened
    out = out.to(partial_out.dtype.element_ty)
    tl.store(partial_out + slot_row[:, None] * DIM + dims[None, :], out, mask=real[:, None])
    if not DIRECT:
        tl.store(partial_lse + slot_row, lse, mask=real)


@triton.jit
def _combine_splits(partial_out, partial_lse, output, splits, SPLITS: tl.constexpr, DIM: tl.constexpr):
    """One (row, head): its splits' outputs weighted by their share of the whole softmax (from their
    log-sum-exps; an empty split weighs 0), written in ``output``'s dtype: ``combine_splits``."""
    index = tl.program_id(0).to(tl.int64)
    split = tl.arange(0, SPLITS)
    present = split < splits
    lse = tl.load(partial_lse + index * splits + split, mask=present, other=float("-inf"))
    weights = tl.exp(lse - tl.max(lse, 0))
    dims = tl.arange(0, DIM)
    parts = tl.load(
        partial_out + (index * splits + split)[:, None] * DIM + dims[None, :],
        mask=present[:, None],
        other=0.0,
    )
    out = tl.sum(parts * weights[:, None], 0) / tl.sum(weights, 0)
    tl.store(output + index * DIM + dims, out.to(output.dtype.element_ty))


@torch.library.custom_op("af_tasks::grouped_decode_attention", mutates_args=())
def grouped_decode_attention(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    used: torch.Tensor,
    length: int,
    scale: float,
    programs: int,
    block: int,
) -> torch.Tensor:
    """``query`` [rows, heads, d] against the cache ``keys``/``values`` [slots, kv_heads, max_len, d],
    row i reading slot i's first ``used[i]`` positions (``used`` int32, at most ``length``); [rows, heads,
    d] in the query's dtype."""
    rows, heads, dim = query.shape
    kv_heads = keys.shape[1]
    groups = heads // kv_heads
    splits, split_length = split_plan(rows, kv_heads, length, block, programs)
    output = torch.empty((rows, heads, dim), device=query.device, dtype=query.dtype)
    direct = splits == 1  # one kernel writes the output; else partials, then one combining kernel
    partial_out = output if direct else torch.empty((rows, heads, splits, dim), device=query.device)
    partial_lse = torch.empty((rows, heads, splits), device=query.device)
    _partial_attention[(rows * kv_heads, splits)](
        query,
        keys,
        values,
        used,
        partial_out,
        partial_lse,
        scale,
        *query.stride(),
        *keys.stride(),
        *values.stride(),
        kv_heads,
        split_length,
        splits,
        GROUPS=groups,
        TILE=max(GROUP_TILE, triton.next_power_of_2(groups)),
        BLOCK_N=block,
        DIM=dim,
        DIRECT=direct,
    )
    if not direct:
        _combine_splits[(rows * heads,)](
            partial_out, partial_lse, output, splits, SPLITS=triton.next_power_of_2(splits), DIM=dim
        )
    return output


@grouped_decode_attention.register_fake
def _(query, keys, values, used, length, scale, programs, block):
    """Shapes for tracing: the op is opaque to ``torch.compile`` (its launch is captured in the decode
    step's CUDA graph like any kernel)."""
    return torch.empty_like(query)
