"""Attention of padding-free batches example by example, without a block-diagonal mask.

Used by padding-free LoRA training (``--varlen-attention``) and by SAE extraction on CUDA
(``af_tasks.sae.activations``, packed batches). A padding-free batch is one row of concatenated
examples. Through SDPA it needs a dense block-diagonal mask over the whole row, which takes the GPU off
its flash kernels and computes every cross-example block only to mask it out (the padded batches it
replaces were faster on a 7B model). Here each example
attends to itself alone: on CUDA one variable-length flash kernel over the row (``torch.nn.attention.
varlen``, from the sequence boundaries trl's collator passes as ``cu_seq_lens_q/k``), elsewhere SDPA
example by example (the reference the CUDA path is checked against). Any other batch, or a sliding
window shorter than the longest example, goes to transformers' SDPA path with its mask, unchanged.
"""

from __future__ import annotations

import inspect

NAME = "sdpa_varlen"
"""The attention implementation's name in transformers' registry (``config._attn_implementation``)."""
_FLASH_OPTIONS: dict[str, bool] = {}
"""Which arguments this torch's ``varlen_attn`` takes, read once (not inside a compiled layer)."""


def _flash_options() -> dict[str, bool]:
    from torch.nn.attention.varlen import varlen_attn

    parameters = inspect.signature(varlen_attn).parameters
    return {name: name in parameters for name in ("window_size", "enable_gqa", "scale")}


def use_varlen_attention(model) -> None:
    """Register the implementation (and SDPA's mask builder under its name) and switch ``model`` to it."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if torch.cuda.is_available():
        _FLASH_OPTIONS.update(_flash_options())
    AttentionInterface.register(NAME, varlen_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)


def varlen_attention_forward(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    cu_seq_lens_q=None,
    cu_seq_lens_k=None,
    max_length_q: int | None = None,
    max_length_k: int | None = None,
    **kwargs,
):
    """transformers' attention-function contract: ``query`` [1, heads, tokens, dim], ``key``/``value``
    [1, kv heads, tokens, dim]; returns ([1, tokens, heads, dim], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    packed = cu_seq_lens_q is not None and query.shape[0] == 1 and cu_seq_lens_k is not None
    windowed = sliding_window is not None and (max_length_k or query.shape[2]) > sliding_window
    scaled = scaling is not None and abs(scaling - query.shape[-1] ** -0.5) > 1e-6
    if query.is_cuda and scaled and not (_FLASH_OPTIONS or _flash_options())["scale"]:
        packed = False  # this torch's kernel takes no scale: only the standard one
    if kwargs.get("softcap") is not None:
        packed = False  # logit soft-capping (Gemma 2) is not in the flash kernel: never drop it silently
    if not packed or windowed or dropout:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    q, k, v = (tensor[0].transpose(0, 1) for tensor in (query, key, value))  # [tokens, heads, dim]
    if q.is_cuda:
        out = _flash_varlen(q, k, v, cu_seq_lens_q, cu_seq_lens_k, max_length_q, max_length_k, scaling)
    else:
        out = _per_example(q, k, v, cu_seq_lens_q, scaling)
    return out.unsqueeze(0), None


def _flash_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scaling):
    """One causal variable-length flash kernel over the row (torch's API changed across releases:
    the arguments it takes are read from its signature)."""
    import torch
    from torch.nn.attention.varlen import varlen_attn

    known = _FLASH_OPTIONS or _flash_options()
    options: dict = {"scale": scaling} if known["scale"] else {}
    options |= {"window_size": (-1, 0)} if known["window_size"] else {"is_causal": True}
    if q.shape[1] != k.shape[1]:
        if known["enable_gqa"]:
            options["enable_gqa"] = True
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    cu_q, cu_k = cu_q.to(torch.int32), cu_k.to(torch.int32)
    return varlen_attn(q.contiguous(), k.contiguous(), v.contiguous(), cu_q, cu_k, max_q, max_k, **options)


def _per_example(q, k, v, cu_seq_lens, scaling):
    """Causal SDPA on each example's slice of the row (grouped KV heads shared as in the model)."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    bounds = cu_seq_lens.tolist()
    outputs = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end > start:
            q_i, k_i, v_i = (tensor[start:end].transpose(0, 1) for tensor in (q, k, v))  # [heads, len, dim]
            out = scaled_dot_product_attention(
                q_i, k_i, v_i, is_causal=True, scale=scaling, enable_gqa=q.shape[1] != k.shape[1]
            )
            outputs.append(out.transpose(0, 1))
    return torch.cat(outputs)
