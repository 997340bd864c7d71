"""Token choice inside the engine's decode step: greedy, or temperature / top-k / top-p sampling with a
random stream per request (compute core, no Inspect).

Why not ``torch.multinomial`` on the global generator (what ``model.generate`` does): one stream shared by
a batch makes a sampled completion depend on which requests were decoded beside it, and on the order they
arrived. Here every row draws from its own counter-based stream — uniforms are a hash of (the row's seed,
the index of the token in its completion, the vocabulary id) — so a request's completion depends only on
its seed and the model's logits, whatever the batch, the slot or the device, and the draw is a fixed
sequence of integer operations that a CUDA graph can replay. The token is chosen by the Gumbel-max trick
(argmax of the kept logits plus Gumbel noise), which samples exactly from the softmax over the kept set.

The kept set is transformers' own: temperature, then top-k, then top-p, the same operations in the same
order as ``TemperatureLogitsWarper`` → ``TopKLogitsWarper`` → ``TopPLogitsWarper`` (tested equal on CPU).
"""

from __future__ import annotations

from typing import Any

MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
"""Odd 32-bit constant that spreads consecutive counters before hashing."""


def mix32(x: Any) -> Any:
    """A 32-bit integer hash (Wellons' lowbias32) on int64 tensors holding values in [0, 2³²): products
    wrap in int64 and are masked back to 32 bits, so CPU, CUDA and compiled kernels agree bit for bit."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def split_seed(seed: int) -> tuple[int, int]:
    """A 64-bit seed as its (low, high) 32-bit halves (the device tensors hold each half)."""
    seed &= (1 << 64) - 1
    return seed & MASK32, seed >> 32


def uniforms(seed_lo: Any, seed_hi: Any, counter: Any, vocab_keys: Any) -> Any:
    """Uniforms in (0, 1), one per row and key: row r's stream at position ``counter[r]``, at the
    tokens whose ``mix32(id)`` are ``vocab_keys`` ([vocab] for every token, or [rows, n] for some):
    a token's uniform is the same whichever tokens are drawn beside it."""
    import torch

    row_key = mix32(seed_lo ^ mix32((seed_hi ^ mix32((counter * GOLDEN32) & MASK32)) & MASK32))
    bits = mix32(row_key[:, None] ^ vocab_keys)
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def kept_logits(logits: Any, temperature: Any, top_k: Any, top_p: Any) -> Any:
    """The logits each row samples from: divided by its temperature, then every token outside its top-k
    (``top_k`` 0: all kept) and outside its top-p nucleus (``top_p`` 1.0: all kept) set to -inf.

    One ascending sort serves both filters: top-k keeps values at or above the k-th largest (ties kept,
    as transformers), and masking the smallest values of an ascending sort keeps it sorted, so top-p's
    cumulative softmax runs over the same sequence transformers sorts. Rows are [rows, vocab] float32;
    ``temperature`` must be > 0 (greedy rows are handled by the caller)."""
    import torch

    scores = logits / temperature[:, None]
    ascending, order = torch.sort(scores, dim=-1)
    vocab = scores.shape[-1]
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), vocab)
    kth = ascending.gather(1, (vocab - k)[:, None])
    ascending = ascending.masked_fill(ascending < kth, -torch.inf)
    remove = outside_nucleus(ascending, top_p) | (ascending == -torch.inf)
    remove = remove.scatter(1, order, remove)
    return scores.masked_fill(remove, -torch.inf)


def outside_nucleus(ascending: Any, top_p: Any) -> Any:
    """Top-p over rows sorted ascending (top-k removals already -inf): True where a token falls
    outside the smallest set whose probability reaches ``top_p`` — transformers' ``TopPLogitsWarper``
    (cumulative softmax from the least likely; top_p 1.0 removes nothing; the likeliest always kept)."""
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    remove = (cumulative <= (1 - top_p)[:, None]) & (top_p < 1)[:, None]
    remove[:, -1] = False  # min_tokens_to_keep = 1
    return remove


def kept_among_top(logits: Any, temperature: Any, top_k: Any, top_p: Any, candidates: int) -> tuple[Any, Any]:
    """``kept_logits`` for rows that all keep at most ``candidates`` tokens (0 < top_k <=
    candidates), computed over the ``candidates`` largest logits instead of a vocabulary sort:
    (kept logits, their token ids), both [rows, candidates] in ascending order. The kept set is the
    same (top-k keeps ties with the k-th value; the nucleus is taken over the top-k set, as
    transformers does)."""
    import torch

    values, ids = (logits / temperature[:, None]).topk(candidates, dim=-1)  # descending
    k = top_k.clamp(min=1, max=candidates)
    kth = values.gather(1, (k - 1)[:, None])
    ascending = values.masked_fill(values < kth, -torch.inf).flip(-1)
    return ascending.masked_fill(outside_nucleus(ascending, top_p), -torch.inf), ids.flip(-1)


def choose_tokens(
    logits: Any,
    temperature: Any,
    top_k: Any,
    top_p: Any,
    seed_lo: Any,
    seed_hi: Any,
    counter: Any,
    vocab_keys: Any,
    candidates: int | None = None,
) -> Any:
    """The next token of every row: argmax where ``temperature`` is 0, else a draw from the row's stream
    at ``counter`` over ``kept_logits`` (Gumbel-max). With ``candidates`` (every sampling row has
    0 < top_k <= candidates) the filters and the draw run over the top candidates only
    (``kept_among_top``); each token keeps its own uniform, so the same token is picked."""
    import torch

    greedy = logits.argmax(-1)
    sampling = temperature > 0
    scale = torch.where(sampling, temperature, 1.0)
    if candidates is None:
        kept, ids = kept_logits(logits.float(), scale, top_k, top_p), None
    else:
        kept, ids = kept_among_top(logits.float(), scale, top_k, top_p, candidates)
    keys = vocab_keys if ids is None else vocab_keys[ids]
    gumbel = -torch.log(-torch.log(uniforms(seed_lo, seed_hi, counter, keys)))
    drawn = (kept + gumbel).argmax(-1, keepdim=True)
    drawn = drawn if ids is None else ids.gather(1, drawn)
    return torch.where(sampling, drawn[:, 0], greedy)
