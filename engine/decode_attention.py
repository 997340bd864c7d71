"""Decode attention that reads each row's KV cache only up to that row's own position (compute core).

Why: a batch of slots holds requests at very different positions. SDPA over the cache reads every row
up to the longest live one (rounded to a bucket); at 128 rows of an evaluation's lengths that read
outweighs the weights. Flash attention's variable-length kernel takes a per-sequence count of keys in
use (``seqused_k``) and reads only those.

Layout: the cache is ``[slots, kv_heads, max_len, head_dim]``, contiguous, so each (slot, KV head) is
one run of ``max_len`` keys: a sequence of its own, starting at ``(slot * kv_heads + h) * max_len``. Its
query heads (``heads / kv_heads`` of them, grouped-query attention) become that sequence's query
tokens, all at the same position, so no causal mask is needed: each reads its sequence's first
``position + 1`` keys. On CUDA this is one call of torch's flash kernel; elsewhere
``varlen_reference`` computes the same contract sequence by sequence (the CPU check of the index
arithmetic; the GPU benchmark compares the kernel with SDPA).

That kernel tiles 128 query rows and a (slot, KV head) has only its group's 4, so at many slots it is
bound by padding. ``grouped_attention`` is the alternative: a Triton kernel
(``af_tasks.engine.grouped_decode``) whose 16-row tile holds one group and whose keys may be split across
programs (flash-decoding), the splits combined by log-sum-exp; ``af_tasks.engine.split_keys`` holds
that arithmetic in plain torch (the CPU reference CI runs).
"""

from __future__ import annotations

from typing import Any


def half_on_sm80(device: Any, dtype: Any) -> bool:
    """Half-precision values on a CUDA device of compute capability 8.0 or later: what both decode
    kernels (flash's variable-length one and the grouped Triton one) need."""
    import torch

    device = torch.device(device)
    if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def varlen_available(device: Any, dtype: Any) -> bool:
    """Whether torch's flash kernel can run ``per_row_attention`` here: ``half_on_sm80`` and a torch
    whose kernel takes ``seqused_k``."""
    import torch

    if not half_on_sm80(device, dtype):
        return False
    return "seqused_k" in str(torch.ops.aten._flash_attention_forward.default._schema)


def per_row_attention(query: Any, keys: Any, values: Any, used: Any, length: int, scale: float) -> Any:
    """Attention of one query token per row over its cache's first ``used[row]`` positions.

    ``query`` [rows, heads, 1, d]; ``keys``/``values`` the whole cache [slots, kv_heads, max_len, d]
    (rows <= slots: row i is slot i); ``used`` [rows] keys per row; ``length`` an upper bound on
    ``used`` (the kernel sizes its work by it). Returns [rows, heads, d] with head ``h`` in the order
    of ``query`` (KV head ``h // (heads / kv_heads)``, as transformers' ``repeat_kv``)."""
    import torch

    rows, heads, _, dim = query.shape
    slots, kv_heads, max_len, _ = keys.shape
    groups = heads // kv_heads
    sequences = rows * kv_heads
    flat_query = query.reshape(sequences * groups, 1, dim)
    flat_keys = keys.view(slots * kv_heads * max_len, 1, dim)
    flat_values = values.view(slots * kv_heads * max_len, 1, dim)
    starts = torch.arange(sequences + 1, device=query.device, dtype=torch.int32)
    cu_query, cu_keys = starts * groups, starts * max_len
    in_use = used.to(torch.int32).repeat_interleave(kv_heads)
    if query.is_cuda:
        out = torch.ops.aten._flash_attention_forward(
            flat_query,
            flat_keys,
            flat_values,
            cu_query,
            cu_keys,
            groups,
            length,
            0.0,
            False,
            False,
            scale=scale,
            seqused_k=in_use,
        )[0]
    else:
        out = varlen_reference(flat_query, flat_keys, flat_values, cu_query, cu_keys, in_use, scale)
    return out.view(rows, heads, dim)


def varlen_reference(
    query: Any, keys: Any, values: Any, cu_query: Any, cu_keys: Any, used: Any, scale: float
) -> Any:
    """What the flash kernel computes for non-causal variable-length sequences with ``seqused_k``:
    sequence s's queries ``query[cu_query[s]:cu_query[s+1]]`` attend to its keys
    ``keys[cu_keys[s]:cu_keys[s] + used[s]]`` (tensors [tokens, heads, d])."""
    import torch

    out = torch.empty_like(query)
    bounds = zip(
        cu_query[:-1].tolist(), cu_query[1:].tolist(), cu_keys[:-1].tolist(), used.tolist(), strict=True
    )
    for q0, q1, k0, n in bounds:
        q = query[q0:q1].transpose(0, 1)  # [heads, tokens, d]
        k, v = keys[k0 : k0 + n].transpose(0, 1), values[k0 : k0 + n].transpose(0, 1)
        out[q0:q1] = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale).transpose(0, 1)
    return out


GROUPED_BLOCK = 64
"""Keys per step of the grouped kernel's loop (and the unit its splits are made of)."""

GROUPED_PROGRAMS_PER_SM = 4
"""Programs (slot x KV head x split) aimed for per multiprocessor: enough reads in flight to stream."""


def grouped_available(device: Any, dtype: Any) -> bool:
    """Whether the grouped Triton kernel can run here: ``half_on_sm80`` and Triton importable."""
    import importlib.util

    return half_on_sm80(device, dtype) and importlib.util.find_spec("triton") is not None


def grouped_tiles_head(head_dim: int) -> bool:
    """Whether the grouped kernel can tile heads of this size: its tiles need a power of two."""
    return head_dim > 0 and head_dim & (head_dim - 1) == 0


def grouped_programs(device: Any) -> int:
    """Programs the grouped kernel aims for on ``device`` (``GROUPED_PROGRAMS_PER_SM`` per multiprocessor;
    elsewhere 64, so that the CPU reference splits its keys as well)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return 64
    return GROUPED_PROGRAMS_PER_SM * torch.cuda.get_device_properties(device).multi_processor_count


def grouped_attention(
    query: Any,
    keys: Any,
    values: Any,
    used: Any,
    length: int,
    scale: float,
    programs: int,
    block: int = GROUPED_BLOCK,
) -> Any:
    """``per_row_attention``'s contract (query [rows, heads, 1, d], the whole cache, ``used`` keys per
    row, ``length`` their bound; [rows, heads, d]) through the grouped kernel on CUDA, through
    ``split_reference`` elsewhere; ``programs``: ``grouped_programs``; ``block``: keys per loop step."""
    import torch

    rows, heads, _, dim = query.shape
    flat = query.reshape(rows, heads, dim)
    in_use = used.to(torch.int32)
    if not query.is_cuda:
        from af_tasks.engine.split_keys import split_reference

        return split_reference(flat, keys, values, in_use, length, scale, programs, block)
    from af_tasks.engine.grouped_decode import grouped_decode_attention

    return grouped_decode_attention(flat, keys, values, in_use, length, scale, programs, block)
