"""Continuous batching: a fixed set of slots, each decoding one request, refilled as requests finish
(compute core, no Inspect).

Why: an evaluation is hundreds of requests whose answers differ in length by 10x. A static batch keeps
every row's slot busy until its longest row ends, and the next batch waits for it; here a finished row
leaves at the next poll and a waiting request is prefilled into its slot while the others keep decoding.

How, for decoder-only models of the Llama family (Llama, Mistral, Qwen2, Qwen3: ``slot_support``):

- one KV cache of ``slots x max_len`` per layer, grown (in ``LENGTH_BUCKET`` steps, rows in flight kept)
  as the slots' positions reach its end, never sized from ``max_tokens``; a request's prompt is prefilled into
  its slot's rows (right-padded batches of newcomers, causal attention, written straight into the
  cache) and each slot then decodes at its own position; stale entries of a reused slot are never read
  (each row attends only to positions up to its own); a prompt prefix that requests share is computed
  once and its K/V copied into each newcomer's slot, which then prefills only its own tokens
  (``af_tasks.engine.prefixes``);
- the decode step runs the model's own modules (embedding, norms, projections, rotary, MLP; on CUDA
  with q/k/v and gate/up fused into one matrix each) with a per-row cache write and an attention that
  reads each KV group once for its query heads and each row's cache up to its own position (on CUDA:
  FlexAttention for a few slots, then a Triton kernel tiling each KV head's query heads where Triton
  runs, else flash attention's variable-length kernel, ``default_attention``; SDPA over the first
  ``length`` positions elsewhere);
- token choice (``af_tasks.engine.sampling``), the completion buffer, finish flags and positions are
  updated on the device inside the step, so on CUDA a whole step (above ``FLEX_MAX_SLOTS`` slots each
  decoder layer through one ``torch.compile``d layer, else the whole forward compiled:
  ``compiled_decode``) is captured once per (token-choice mode, length) as a CUDA graph and
  replayed with no host work; the host looks at the finish flags once every ``POLL_STEPS`` steps,
  on CUDA one chunk behind the device (``serve``: reading flags and admitting newcomers overlap the
  decoding, and host-to-device copies are staged in pinned memory so they never wait for it).

Arithmetic is the model's: greedy tokens equal ``model.generate``'s (tested on CPU in fp32), sampled
tokens follow the same distribution (tested statistically; the random stream is per request).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

LENGTH_BUCKET = 256
"""The decode attention reads the cache up to the longest live row rounded up to this (one graph each)."""

POLL_STEPS = 8
"""Decode steps between two looks at the finish flags (launched together; a finished row's slot waits
for the next look)."""

FLEX_BLOCK = 128
"""Cache positions per FlexAttention block (``LENGTH_BUCKET`` is a multiple of it)."""

FLEX_MAX_SLOTS = 4
"""Largest slot count whose default decode attention on CUDA is FlexAttention (see ``SlotDecoder``)."""

GROUPED_MIN_SLOTS = FLEX_MAX_SLOTS + 1
"""Smallest slot count whose default decode attention on CUDA is the grouped Triton kernel: every count
above FlexAttention's (it was faster than varlen at every count measured, 8 to 256)."""

DECODE_ATTENTIONS = ("flex", "sdpa", "varlen", "grouped")

PREFILL_TOKENS = 16_384
"""Most padded prompt tokens prefilled in one forward (bounds the prefill's activation memory)."""

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")

UNSUPPORTED_SAMPLING = {
    "repetition_penalty": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
}
"""generation_config settings (with their inactive values) the slot decoder does not apply: a model
that sets them decodes through
``model.generate`` (``slot_support`` says why)."""


@dataclass(frozen=True)
class SlotRequest:
    """One completion to decode. ``temperature`` 0 is greedy; ``top_k`` 0 and ``top_p`` 1.0 keep every
    token; ``seed`` picks the request's random stream; ``ignore_eos`` decodes exactly
    ``max_new_tokens`` (benchmarks)."""

    prompt: tuple[int, ...]
    max_new_tokens: int
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    ignore_eos: bool = False


@dataclass(frozen=True)
class SlotResult:
    tokens: list[int]
    """Generated ids, up to and including the EOS that ended it."""
    stopped: bool
    """Ended by EOS (else by ``max_new_tokens``)."""


def to_device(values: Sequence[Any], dtype: Any, device: Any) -> Any:
    """``values`` as a tensor on ``device`` without waiting for the work queued there: a plain
    host-to-device copy waits for the stream to drain (the decode steps in flight), so on CUDA the
    values are staged in pinned memory and copied asynchronously."""
    import torch

    from af_tasks.engine.memory import copy_to_device

    return copy_to_device(torch.tensor(values, dtype=dtype), device)


def default_attention(device: Any, dtype: Any, slots: int, head_dim: int) -> str:
    """The decode attention measured fastest for this many slots (Mistral-7B shape): flex up to
    ``FLEX_MAX_SLOTS`` (H100: 78 % of the bound at 1 slot, full-length rows, vs varlen 74 %); above it
    the grouped kernel where Triton runs (H100, rows of mixed lengths, timed as CUDA graphs: 95 % of the
    K/V read bound at 128 slots vs varlen 76 %, 86 % vs 65 % at 64; the 512-request workload at 128 in
    26.0 s vs 31.2 s; H200, whole decode of full-length rows: 71.2 % of the bound at 32 slots vs varlen
    67.4 %, 68.2 vs 64.3 % at 16, 65.6 vs 61.9 % at 8). Without Triton, or at a head size that is not a
    power of two (the kernel's tile needs one), varlen where the flash kernel runs (H100: 75 % at 32 vs
    sdpa 72 %), else sdpa."""
    from af_tasks.engine.decode_attention import grouped_available, grouped_tiles_head, varlen_available

    if device.type != "cuda":
        return "sdpa"
    if slots <= FLEX_MAX_SLOTS:
        return "flex"
    if slots >= GROUPED_MIN_SLOTS and grouped_tiles_head(head_dim) and grouped_available(device, dtype):
        return "grouped"
    return "varlen" if varlen_available(device, dtype) else "sdpa"


def slot_support(model: Any) -> str | None:
    """None when ``SlotDecoder`` can run ``model``; else why not (the engine then uses ``generate``)."""
    config = model.config.get_text_config(decoder=True)
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {config.model_type!r} (slot decoding covers {', '.join(SUPPORTED_MODEL_TYPES)})"
    window = getattr(config, "sliding_window", None)
    if window is not None and getattr(config, "use_sliding_window", True):
        return f"sliding-window attention ({window} tokens)"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
        return f"{type(model).__name__} is not a causal LM with model.layers and lm_head"
    generation = model.generation_config
    for name, inactive in UNSUPPORTED_SAMPLING.items():
        value = getattr(generation, name, None)
        if value is not None and value != inactive:
            return f"generation_config.{name}={value!r} (slot decoding applies temperature, top-k, top-p)"
    return None


def sampling_defaults(model: Any) -> tuple[float, int, float]:
    """(temperature, top_k, top_p) that ``model.generate(do_sample=True)`` uses when a request sets none:
    the model's generation_config, transformers' defaults where it is silent (1.0, 50, 1.0)."""
    generation = model.generation_config
    temperature = generation.temperature if generation.temperature is not None else 1.0
    top_k = generation.top_k if generation.top_k is not None else 50
    top_p = generation.top_p if generation.top_p is not None else 1.0
    return float(temperature), int(top_k), float(top_p)


class SlotDecoder:
    """Decodes up to ``slots`` requests at once over a per-slot static KV cache. Not thread-safe: one
    caller (the engine's worker thread) at a time."""

    def __init__(
        self,
        model: Any,
        slots: int,
        max_len: int,
        eos_ids: Sequence[int],
        pad_id: int,
        compile: bool = False,
        attention: str | None = None,
        fuse: bool | None = None,
        reuse_prefix: bool = True,
    ):
        """``attention``: ``flex`` (FlexAttention's decoding kernel, reading only each row's own cache
        blocks), ``sdpa`` (one masked SDPA over the first ``length`` positions), ``varlen`` (flash
        attention's variable-length kernel reading each row up to its own position) or ``grouped`` (a
        Triton kernel that reads each row up to its position for a tile holding one KV head's query
        heads: ``af_tasks.engine.decode_attention``; on CPU their references); default
        ``default_attention``.
        ``fuse`` (default on CUDA): the q/k/v and gate/up projections of each layer as one matrix each
        (``fuse_projections``). ``reuse_prefix``: keep the K/V of a prompt prefix that requests share
        (an evaluation's system prompt and template) and copy it into a newcomer's slot instead of
        computing it again (``admit``)."""
        import torch

        reason = slot_support(model)
        if reason is not None:
            raise ValueError(f"slot decoding does not support this model: {reason}")
        self.model = model
        self.slots = slots
        self.compile = compile
        self.device = model.device
        config = model.config.get_text_config(decoder=True)
        self.layers = list(model.model.layers)
        first_attention = self.layers[0].self_attn
        self.head_dim = first_attention.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads or self.heads
        self.apply_rotary = sys.modules[type(first_attention).__module__].apply_rotary_pos_emb
        self.dtype = model.lm_head.weight.dtype
        self.pad_id = pad_id
        self.graphs = self.device.type == "cuda" and compile
        on_cuda = self.device.type == "cuda"
        self.attention = attention or default_attention(self.device, self.dtype, slots, self.head_dim)
        if self.attention not in DECODE_ATTENTIONS:
            raise ValueError(
                f"attention must be one of {', '.join(DECODE_ATTENTIONS)}, not {self.attention!r}"
            )
        from af_tasks.engine.decode_attention import grouped_programs, grouped_tiles_head

        self.grouped_programs = grouped_programs(self.device) if self.attention == "grouped" else 0
        if self.attention == "grouped" and not grouped_tiles_head(self.head_dim):
            raise ValueError(f"attention 'grouped' needs a power-of-two head size, not {self.head_dim}")
        self.fused = None
        if on_cuda if fuse is None else fuse:
            self.fused = getattr(model, "_slot_fused_projections", None) or fuse_projections(self.layers)
            model._slot_fused_projections = self.fused
        vocab = model.lm_head.weight.shape[0]
        self.eos_mask = torch.zeros(vocab, dtype=torch.bool, device=self.device)
        self.eos_ids = {i for i in eos_ids if i < vocab}
        self.eos_mask[sorted(self.eos_ids)] = True
        from af_tasks.engine.sampling import mix32

        self.vocab_keys = mix32(torch.arange(vocab, device=self.device, dtype=torch.long))
        self.rows = torch.arange(slots, device=self.device)
        self._new_state()
        self.bytes_per_token = 2 * len(self.layers) * self.kv_heads * self.head_dim * self.dtype.itemsize
        """One token's K and V over all layers, in one slot."""
        self._graphs: dict[tuple[int, int], Any] = {}
        self._pool: Any = None
        self.max_len = 0
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.ensure_length(max_len)
        from af_tasks.engine.prefixes import PrefixStore

        self.reuse_prefix = reuse_prefix
        self.prefixes = PrefixStore(self.device, self.bytes_per_token)
        self.prefilled_tokens = 0
        """Prompt tokens run through the model so far (reused prefix tokens are not)."""
        self._forward: Callable[..., Any] = SlotDecoder._decode_logits
        self._layer: Callable[..., Any] = SlotDecoder._decode_layer
        if compile and self.attention == "flex":
            self._forward = compiled_decode("step")
        elif compile:
            self._layer = compiled_decode("layer")

    def _new_state(self) -> None:
        import torch

        def zeros(dtype):
            return torch.zeros(self.slots, dtype=dtype, device=self.device)

        self.next_token, self.position, self.count = zeros(torch.long), zeros(torch.long), zeros(torch.long)
        self.done = torch.ones(self.slots, dtype=torch.bool, device=self.device)
        self.max_new, self.top_k = zeros(torch.long), zeros(torch.long)
        self.seed_lo, self.seed_hi = zeros(torch.long), zeros(torch.long)
        self.temperature, self.top_p = zeros(torch.float32), zeros(torch.float32)
        self.ignore_eos = zeros(torch.bool)
        for tensor in (self.next_token, self.position, self.rows):
            torch._dynamo.maybe_mark_dynamic(tensor, 0)

    def ensure_length(self, length: int) -> None:
        """Grow every slot's cache to at least ``length`` positions (rounded up to ``LENGTH_BUCKET``),
        keeping what the slots hold; captured graphs are dropped (they read the old tensors)."""
        import torch

        from af_tasks.engine.memory import require_memory
        from af_tasks.engine.shapes import round_up

        if length <= self.max_len:
            return
        length = round_up(length, LENGTH_BUCKET)
        per_position = self.slots * self.bytes_per_token  # every slot's K and V in every layer
        needed = per_position * (length - self.max_len)
        if self.max_len:  # growing holds one layer's old and new cache at once
            needed += per_position // len(self.layers) * self.max_len
        require_memory(
            self.device,
            needed,
            f"KV cache of {self.slots} slots x {length} tokens",
            "lower --max-connections or -M batch_size (slots), or max_tokens",
        )
        if self._graphs:  # they may still be replaying (``serve`` runs ahead); dropped below
            torch.cuda.synchronize(self.device)
        shape = (self.slots, self.kv_heads, length, self.head_dim)
        for cache in (self.keys, self.values):
            for index in range(len(self.layers)):
                grown = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if index < len(cache):
                    grown[:, :, : self.max_len] = cache[index]
                    cache[index] = grown
                else:
                    cache.append(grown)
        out = torch.full((self.slots, length + 1), self.pad_id, dtype=torch.long, device=self.device)
        if self.max_len:  # rows decoding now keep their tokens (the old last column is the spill slot)
            out[:, : self.max_len] = self.out[:, : self.max_len]
        self.out = out
        self.max_len = length
        for tensor in (*self.keys, *self.values):  # one compiled step for every slot count and length
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
            torch._dynamo.maybe_mark_dynamic(tensor, 2)
        self._graphs = {}
        self._pool = None  # a pool whose graphs are all gone cannot be captured into again (allocator assert)

    # ---- prefill ------------------------------------------------------------------------------------

    def admit(self, placed: Sequence[tuple[int, SlotRequest]]) -> None:
        """Prefill each request into its slot and choose its first token (the slots must be free)."""
        import torch

        from af_tasks.engine.sampling import split_seed

        if not placed:
            return
        slot_list = [slot for slot, _ in placed]
        slots = to_device(slot_list, torch.long, self.device)
        requests = [request for _, request in placed]
        los, his = zip(*(split_seed(request.seed) for request in requests), strict=True)

        def values(items, dtype):
            return to_device(items, dtype, self.device)

        self.max_new[slots] = values([r.max_new_tokens for r in requests], torch.long)
        self.temperature[slots] = values([r.temperature for r in requests], torch.float32)
        self.top_k[slots] = values([r.top_k for r in requests], torch.long)
        self.top_p[slots] = values([r.top_p for r in requests], torch.float32)
        self.ignore_eos[slots] = values([r.ignore_eos for r in requests], torch.bool)
        self.seed_lo[slots], self.seed_hi[slots] = values(los, torch.long), values(his, torch.long)
        self.count.index_fill_(0, slots, 0)  # not ``[slots] = 0``: that copies the scalar over, and waits
        self.done.index_fill_(0, slots, False)
        starts, lone = self._reuse_prefix(slot_list, [r.prompt for r in requests])
        order = sorted(range(len(placed)), key=lambda i: starts[i])  # chunks of like starts
        first = 0
        while first < len(order):  # chunks of at most PREFILL_TOKENS padded new tokens
            end, width, latest = first, 0, 0
            while end < len(order):
                i = order[end]
                wider, later = max(width, len(requests[i].prompt) - starts[i]), max(latest, starts[i])
                rows = end - first + 1
                gathered = (later + wider) * rows if later else 0  # cache positions attended, all rows
                if end > first and (wider * rows > PREFILL_TOKENS or gathered > 4 * PREFILL_TOKENS):
                    break
                width, latest, end = wider, later, end + 1
            chunk = order[first:end]
            chunk_slots = values([slot_list[i] for i in chunk], torch.long)
            self._prefill(chunk_slots, [requests[i] for i in chunk], [starts[i] for i in chunk])
            first = end
        for slot, tokens in lone.items():  # a lone newcomer's prompt, now in its slot's cache
            self._store_prefix(slot, tokens)

    def _reuse_prefix(
        self, slots: Sequence[int], prompts: Sequence[Sequence[int]]
    ) -> tuple[list[int], dict[int, tuple[int, ...]]]:
        """How many leading tokens of each prompt need no prefill, their K/V copied into the slot from
        the stored prefix sharing most with it (``af_tasks.engine.prefixes``). Newcomers that match
        none are grouped by their first tokens: a group of two or more gets its common prefix computed
        once and stored; a lone newcomer (slot -> prompt, returned) is stored once prefilled."""
        from af_tasks.engine.prefixes import PREFIX_MIN, group_newcomers

        lone: dict[int, tuple[int, ...]] = {}
        if not self.reuse_prefix:
            return [0] * len(prompts), lone
        starts, copies = [], []
        for slot, prompt in zip(slots, prompts, strict=True):
            tokens, length = self.prefixes.match(prompt)
            starts.append(length)
            if length:
                copies.append((tokens, slot, length))
        self._copy_prefixes(copies)  # before a new prefix may push one of them out
        fresh = [index for index, start in enumerate(starts) if not start]
        for members, common in group_newcomers(prompts, fresh):
            if len(members) < 2 or common < PREFIX_MIN:
                if len(prompts[members[0]]) >= PREFIX_MIN:
                    lone[slots[members[0]]] = tuple(prompts[members[0]])
                continue
            tokens = tuple(prompts[members[0]][:common])
            if not self._store_prefix(slots[members[0]], tokens, compute=True):
                continue
            self._copy_prefixes([(tokens, slots[i], common) for i in members])
            for i in members:
                starts[i] = common
        return starts, lone

    def _copy_prefixes(self, copies: Sequence[tuple[tuple[int, ...], int, int]]) -> None:
        """For each (prefix, slot, length): the prefix's first ``length`` positions of K/V into the
        slot's cache (one copy per layer for all slots of a prefix and length)."""
        import torch

        grouped: dict[tuple[tuple[int, ...], int], list[int]] = {}
        for tokens, slot, length in copies:
            grouped.setdefault((tokens, length), []).append(slot)
        for (tokens, length), slots in grouped.items():
            index = to_device(slots, torch.long, self.device)
            for layer, (keys, values) in enumerate(self.prefixes.use(tokens)):
                self.keys[layer][index, :, :length] = keys[:, :length]
                self.values[layer][index, :, :length] = values[:, :length]

    def _store_prefix(self, slot: int, tokens: tuple[int, ...], compute: bool = False) -> bool:
        """Store ``tokens``' K/V read from ``slot``'s cache (after running them through the model into
        it when ``compute``); False, with nothing computed, when the store's memory guard refuses."""
        import torch

        if not self.prefixes.fits(len(tokens)):
            return False
        if compute:
            self._fill(to_device([slot], torch.long, self.device), [tokens], [0])
        layers = [
            (keys[slot, :, : len(tokens)].clone(), values[slot, :, : len(tokens)].clone())
            for keys, values in zip(self.keys, self.values, strict=True)
        ]
        self.prefixes.add(tokens, layers)
        return True

    def _prefill(self, slots: Any, requests: Sequence[SlotRequest], starts: Sequence[int]) -> None:
        """Prefill ``requests`` (each from its ``start``) into ``slots`` and choose their first tokens."""
        import torch

        lengths = to_device([len(r.prompt) for r in requests], torch.long, self.device)
        last = self._fill(slots, [r.prompt for r in requests], starts)
        logits = self.model.lm_head(self.model.model.norm(last)).float()
        token = self._choose(logits, slots)
        self.out[slots, 0] = token
        self.count.index_fill_(0, slots, 1)
        self.next_token[slots] = token
        self.position[slots] = lengths
        self.done[slots] = self.eos_mask[token] & ~self.ignore_eos[slots] | (self.max_new[slots] <= 1)

    def _fill(self, slots: Any, prompts: Sequence[Sequence[int]], starts: Sequence[int]) -> Any:
        """Run each prompt from its ``start`` through the model at its own positions, writing K/V into
        its slot, attending to its slot's cache before ``start`` as well (a copied prefix); the hidden
        state of each prompt's last token [rows, hidden]. Rows are right-padded: a padding position's
        K/V lands past the prompt, where decoding overwrites it before any row reads it."""
        import torch
        import torch.nn.functional as F

        model = self.model.model
        rows, groups = len(prompts), self.heads // self.kv_heads
        width = max(len(prompt) - start for prompt, start in zip(prompts, starts, strict=True))
        padded = [
            list(prompt[start:]) + [self.pad_id] * (width - len(prompt) + start)
            for prompt, start in zip(prompts, starts, strict=True)
        ]
        ids = to_device(padded, torch.long, self.device)
        offsets = to_device(list(starts), torch.long, self.device)
        positions = offsets[:, None] + torch.arange(width, device=self.device)
        self.prefilled_tokens += sum(
            len(prompt) - start for prompt, start in zip(prompts, starts, strict=True)
        )
        reused = any(starts)
        if reused:
            span = min(max(starts) + width, self.max_len)
            written = positions.clamp(max=self.max_len - 1)  # padding past the cache: its last column
            mask = (torch.arange(span, device=self.device)[None, None, :] <= positions[:, :, None])[:, None]
        hidden = model.embed_tokens(ids)
        cos, sin = model.rotary_emb(hidden, positions)
        for index, layer in enumerate(self.layers):
            query, key, value = self._qkv(layer, layer.input_layernorm(hidden), cos, sin)
            if reused:
                self.keys[index][slots[:, None], :, written] = key.transpose(1, 2)
                self.values[index][slots[:, None], :, written] = value.transpose(1, 2)
                key, value = self.keys[index][slots, :, :span], self.values[index][slots, :, :span]
            else:
                self.keys[index][slots, :, :width] = key
                self.values[index][slots, :, :width] = value
            if groups > 1:
                key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
            attended = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=mask if reused else None,
                is_causal=not reused,
                scale=layer.self_attn.scaling,
            )
            hidden = hidden + layer.self_attn.o_proj(attended.transpose(1, 2).reshape(rows, width, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        ends = to_device(
            [len(p) - s - 1 for p, s in zip(prompts, starts, strict=True)], torch.long, self.device
        )
        return hidden[torch.arange(rows, device=self.device), ends]

    def _qkv(self, layer: Any, x: Any, cos: Any, sin: Any, fused: Any = None) -> tuple[Any, Any, Any]:
        """Query [rows, heads, t, d], key and value [rows, kv_heads, t, d] of ``x`` [rows, t, hidden],
        rotary applied (and Qwen3's per-head norms before it); ``fused``: the layer's entry of
        ``fuse_projections``, one matrix product for q, k and v instead of the modules' three."""
        import torch

        attention = layer.self_attn
        rows, length = x.shape[:2]
        if fused is None:
            query, key, value = attention.q_proj(x), attention.k_proj(x), attention.v_proj(x)
        else:
            sizes = [self.heads * self.head_dim] + [self.kv_heads * self.head_dim] * 2
            query, key, value = torch.nn.functional.linear(x, fused[0], fused[1]).split(sizes, dim=-1)
        query = query.view(rows, length, -1, self.head_dim)
        key = key.view(rows, length, -1, self.head_dim)
        value = value.view(rows, length, -1, self.head_dim).transpose(1, 2)
        if getattr(attention, "q_norm", None) is not None:
            query, key = attention.q_norm(query), attention.k_norm(key)
        query, key = self.apply_rotary(query.transpose(1, 2), key.transpose(1, 2), cos, sin)
        return query, key, value

    # ---- decode -------------------------------------------------------------------------------------

    def _decode_logits(self, tokens: Any, positions: Any, length: int, keys: list, values: list) -> Any:
        """Logits [slots, vocab] (float32) for one token per slot at its position; writes its K/V.

        Compiled (``compiled_decode``), either each decoder layer goes through one compiled layer and the
        rest (embedding, rotary tables, attention masks, final norm and head) runs eagerly, inside the
        step's CUDA graph all the same, or, for FlexAttention, this whole step is compiled."""
        import torch

        model = self.model.model
        hidden = model.embed_tokens(tokens[:, None])
        cos, sin = model.rotary_emb(hidden, positions[:, None])
        mask = block_mask = None
        if self.attention == "sdpa":
            mask = (torch.arange(length, device=tokens.device)[None, :] <= positions[:, None])[
                :, None, None, :
            ]
        elif self.attention == "flex":
            block_mask = flex_block_mask(positions, length)
        delta = torch.zeros_like(hidden)
        if not torch.compiler.is_compiling():  # one compiled layer for all slot counts
            for tensor in (hidden, delta, cos, sin, mask):
                if tensor is not None:
                    torch._dynamo.maybe_mark_dynamic(tensor, 0)
        for index, layer in enumerate(self.layers):
            fused = None if self.fused is None else self.fused[index]
            hidden, delta = self._layer(
                self,
                layer,
                fused,
                hidden,
                delta,
                cos,
                sin,
                positions,
                length,
                keys[index],
                values[index],
                mask,
                block_mask,
            )
        return self.model.lm_head(model.norm(hidden + delta))[:, 0].float()

    def _decode_layer(
        self,
        layer: Any,
        fused: Any,
        hidden: Any,
        delta: Any,
        cos: Any,
        sin: Any,
        positions: Any,
        length: int,
        layer_keys: Any,
        layer_values: Any,
        mask: Any,
        block_mask: Any,
    ) -> tuple[Any, Any]:
        """One decoder layer's decode step: (the residual stream after attention, the MLP's output) from
        the stream before this layer's input and the previous layer's MLP output ``delta`` (their sum
        opens the layer, so it fuses with the norm that follows); writes the token's K/V at each row's
        position. ``mask``: SDPA's, ``block_mask``: FlexAttention's (``flex_block_mask``)."""
        import torch
        from torch.nn.attention.flex_attention import flex_attention

        from af_tasks.engine.decode_attention import grouped_attention, per_row_attention

        hidden = hidden + delta
        rows = hidden.shape[0]
        query, key, value = self._qkv(layer, layer.input_layernorm(hidden), cos, sin, fused)
        layer_keys[self.rows[:rows], :, positions] = key[:, :, 0]
        layer_values[self.rows[:rows], :, positions] = value[:, :, 0]
        scale = layer.self_attn.scaling
        if self.attention == "flex":
            attended = flex_attention(
                query,
                layer_keys[:, :, :length],
                layer_values[:, :, :length],
                block_mask=block_mask,
                scale=scale,
                enable_gqa=True,
            )
        elif self.attention == "varlen":
            attended = per_row_attention(query, layer_keys, layer_values, positions + 1, length, scale)
        elif self.attention == "grouped":
            attended = grouped_attention(
                query, layer_keys, layer_values, positions + 1, length, scale, self.grouped_programs
            )
        else:
            attended = torch.nn.functional.scaled_dot_product_attention(
                query.reshape(rows, self.kv_heads, -1, self.head_dim),
                layer_keys[:, :, :length],
                layer_values[:, :, :length],
                attn_mask=mask,
                scale=scale,
            )
        hidden = hidden + layer.self_attn.o_proj(attended.reshape(rows, 1, -1))
        x = layer.post_attention_layernorm(hidden)
        if fused is None:
            return hidden, layer.mlp(x)
        gate, up = torch.nn.functional.linear(x, fused[2]).chunk(2, dim=-1)
        return hidden, layer.mlp.down_proj(layer.mlp.act_fn(gate) * up)

    def _choose(self, logits: Any, slots: Any | None = None, mode: int = -1) -> Any:
        """Next tokens of ``slots`` (all when None) from their logits, EOS masked where ignored:
        ``mode`` 0 greedy, -1 greedy or sampled over the whole vocabulary, n > 0 sampled among the n
        largest logits (``choose_tokens``; ``sampling_mode`` says which a batch allows)."""
        from af_tasks.engine.sampling import choose_tokens

        index = slice(None) if slots is None else slots
        logits = logits.masked_fill(self.ignore_eos[index][:, None] & self.eos_mask[None, :], -float("inf"))
        if mode == 0:
            return logits.argmax(-1)
        return choose_tokens(
            logits,
            self.temperature[index],
            self.top_k[index],
            self.top_p[index],
            self.seed_lo[index],
            self.seed_hi[index],
            self.count[index],
            self.vocab_keys,
            candidates=mode if mode > 0 else None,
        )

    def _step(self, mode: int, length: int) -> None:
        """One decode step of every slot, all on the device: live rows record their token and advance;
        finished and free rows keep their state."""
        import torch

        logits = self._forward(self, self.next_token, self.position, length, self.keys, self.values)
        token = self._choose(logits, mode=mode)
        live = ~self.done
        column = torch.where(live, self.count, self.out.shape[1] - 1)
        self.out[self.rows, column] = token
        self.count += live
        self.done |= live & (self.eos_mask[token] | (self.count >= self.max_new))
        self.next_token.copy_(torch.where(live, token, self.pad_id))
        self.position += live

    def step(self, mode: int, length: int) -> None:
        """One decode step reading ``length`` cache positions with token choice ``mode``
        (``sampling_mode``); a CUDA graph replay when compiled."""
        if not self.graphs:
            return self._step(mode, length)
        graph = self._graphs.get((mode, length))
        if graph is None:
            graph = self._graphs[(mode, length)] = self._capture(mode, length)
        graph.replay()

    def _capture(self, mode: int, length: int) -> Any:
        """Warm the step up (compiling it) on a side stream with the state restored afterwards, then
        record it as a CUDA graph in the decoder's memory pool."""
        import torch

        state = (self.next_token, self.position, self.count, self.done, self.out)
        saved = [tensor.clone() for tensor in state]
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(mode, length)
                for tensor, copy in zip(state, saved, strict=True):
                    tensor.copy_(copy)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            self._step(mode, length)
        self._pool = graph.pool()
        return graph

    def snapshot(self) -> Snapshot:
        """The finish flags, counts and completions as they will stand once the steps launched so far
        have run, copied to host memory without waiting for them (on CUDA: pinned memory and an event;
        ``Snapshot.finished`` waits)."""
        import torch

        state = (self.done, self.count, self.out)
        if self.device.type != "cuda":
            return Snapshot(*(tensor.clone() for tensor in state), None, self.eos_ids)
        copies = [tensor.to("cpu", non_blocking=True) for tensor in state]  # on the device's stream
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))  # that stream, whichever device is current
        return Snapshot(*copies, event, self.eos_ids)


@dataclass(frozen=True)
class Snapshot:
    """A ``SlotDecoder``'s finish flags, counts and completion buffer in host memory at one point of its
    stream (``event``: recorded there; None when already complete)."""

    done: Any
    count: Any
    out: Any
    event: Any
    eos_ids: set[int]

    def finished(self, slots: Sequence[int]) -> list[tuple[int, SlotResult]]:
        """The slots among ``slots`` whose request had ended, with their tokens (waits for the event)."""
        if self.event is not None:
            self.event.synchronize()
        done, count = self.done.tolist(), self.count.tolist()
        results = []
        for slot in slots:
            if done[slot]:
                tokens = self.out[slot, : count[slot]].tolist()
                stopped = bool(tokens) and tokens[-1] in self.eos_ids
                results.append((slot, SlotResult(tokens=tokens, stopped=stopped)))
        return results


def fuse_projections(layers: Sequence[Any]) -> list[tuple[Any, Any, Any]] | None:
    """Each layer's q/k/v weights (and biases) as one matrix and gate/up as another, the modules'
    own parameters becoming views into them: the same numbers in the same memory, and at batch 1 two
    matrix-vector products read one long matrix each instead of five short ones. None (nothing
    changed) unless every projection is a plain ``nn.Linear`` (an unmerged LoRA layer keeps its own)."""
    import torch

    names = ("q_proj", "k_proj", "v_proj")
    for layer in layers:
        modules = [getattr(layer.self_attn, n) for n in names]
        modules += [getattr(layer.mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
        if any(type(m) is not torch.nn.Linear for m in modules) or not hasattr(layer.mlp, "act_fn"):
            return None
    fused = []
    for layer in layers:
        parts = [getattr(layer.self_attn, n) for n in names]
        weight = _fuse([p.weight for p in parts], parts)
        biases = [p.bias for p in parts]
        bias = _fuse(biases, parts, "bias") if all(b is not None for b in biases) else None
        mlp_parts = [layer.mlp.gate_proj, layer.mlp.up_proj]
        gate_up = _fuse([p.weight for p in mlp_parts], mlp_parts)
        fused.append((weight, bias, gate_up))
    return fused


def _fuse(tensors: Sequence[Any], modules: Sequence[Any], name: str = "weight") -> Any:
    """One tensor holding ``tensors`` stacked on dim 0; each module's ``name`` becomes a view of its
    rows (the old storage is freed)."""
    import torch

    with torch.no_grad():
        joined = torch.cat([t.detach() for t in tensors], dim=0)
        start = 0
        for module, tensor in zip(modules, tensors, strict=True):
            rows = tensor.shape[0]
            setattr(module, name, torch.nn.Parameter(joined[start : start + rows], requires_grad=False))
            start += rows
    return joined


def flex_block_mask(positions: Any, length: int) -> Any:
    """FlexAttention's block mask for one decode step over ``length`` cache positions, the same for every
    layer: row b holds the ``FLEX_BLOCK``-position blocks up to its position (later blocks are not read)
    and masks past the position inside the last one."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    rows = positions.shape[0]
    blocks = length // FLEX_BLOCK
    counts = ((positions + FLEX_BLOCK) // FLEX_BLOCK).to(torch.int32)[:, None, None]
    indices = torch.arange(blocks, device=positions.device, dtype=torch.int32).expand(rows, 1, 1, blocks)

    def up_to_position(b, h, q_index, kv_index):
        return kv_index <= positions[b]

    return BlockMask.from_kv_blocks(
        counts,
        indices.contiguous(),
        BLOCK_SIZE=(FLEX_BLOCK, FLEX_BLOCK),
        mask_mod=up_to_position,
        seq_lengths=(1, length),
    )


_COMPILED: dict[str, Any] = {}


def compiled_decode(scope: Literal["layer", "step"]) -> Callable[..., Any]:
    """The decode step's ``torch.compile``d part, once per process: ``layer`` compiles
    ``SlotDecoder._decode_layer`` (the default), ``step`` the whole ``SlotDecoder._decode_logits``
    (FlexAttention, up to ``FLEX_MAX_SLOTS``: its block mask, a closure over the positions, is built
    once per step inside the compiled code).

    Why one layer: the layers share one class, and the layer, its weights, the decoder, the slot count
    and the cache length are all arguments, so one compiled layer serves every layer, decoder size and
    replica of ``-M devices``. Tracing is one layer's work instead of the whole depth's (32 layers: ~20 s
    on every process start on a 2-core CPU, warm compile cache or not), and a cold compile generates one layer's
    kernels (H100, Mistral-7B: first 32-slot decode 6.8 s with graph capture); inside the step's CUDA
    graph the eager code between layers costs no host time, and at 32 slots it decoded at 77 % of the
    bound (75 % compiled whole, an earlier run). Why the whole step for FlexAttention: per layer it
    decoded at 68 % of the bound at 1 slot against 78 % whole, and the whole step's one block mask
    serves all layers."""
    if scope not in _COMPILED:
        import torch

        from af_tasks.engine.shapes import allow_shape_graphs

        allow_shape_graphs()
        function = SlotDecoder._decode_layer if scope == "layer" else SlotDecoder._decode_logits
        _COMPILED[scope] = torch.compile(function, fullgraph=True)
    return _COMPILED[scope]


TOP_CANDIDATES = 1024
"""Largest top-k sampled among the top candidates only; above it (or top_k 0) the vocabulary is sorted."""


def sampling_mode(requests: Sequence[SlotRequest]) -> int:
    """How a step chooses tokens for these requests: 0 all greedy; n > 0 every sampling row has
    0 < top_k <= n (n the power of two at or above the largest, at least 64: few graphs); -1 else."""
    from af_tasks.engine.shapes import batch_bucket

    sampled = [r for r in requests if r.temperature > 0]
    if not sampled:
        return 0
    if any(r.top_k <= 0 or r.top_k > TOP_CANDIDATES for r in sampled):
        return -1
    return max(64, batch_bucket(max(r.top_k for r in sampled)))


Take = Callable[[int, bool], "list[tuple[Any, SlotRequest]] | None"]
"""``take(n, block)``: up to n waiting (key, request) pairs; ``block`` waits for one when nothing is
decoding; None means no more will come."""


class _Occupant(NamedTuple):
    key: Any
    request: SlotRequest
    steps: int
    """Decode steps launched for it so far."""
    admission: int
    """Which admission put it in its slot (a slot's next occupant has another)."""


def serve(
    decoder: SlotDecoder,
    take: Take,
    deliver: Callable[[Any, SlotResult], None],
    pipelined: bool | None = None,
) -> None:
    """Decode requests from ``take`` until it returns None with nothing left decoding, refilling free
    slots at every poll; each result goes to ``deliver(key, result)`` once its row has ended.

    ``pipelined`` (default on CUDA): each chunk of ``POLL_STEPS`` steps is launched before the previous
    chunk's finish flags are read, so reading them, delivering and prefilling newcomers (host work, and
    eager prefill is mostly kernel launches) overlap the device's decoding instead of leaving it idle;
    a finished row's slot is refilled one chunk later than it would be otherwise."""
    from itertools import count

    from af_tasks.engine.shapes import round_up

    if pipelined is None:
        pipelined = decoder.device.type == "cuda"
    occupant: dict[int, _Occupant] = {}
    admissions = count()
    behind: tuple[Snapshot, dict[int, int]] | None = None  # launched, not read: snapshot, slot -> admission
    closed = False

    def read(snapshot: Snapshot, admitted: dict[int, int]) -> None:
        current = [slot for slot, n in admitted.items() if slot in occupant and occupant[slot].admission == n]
        for slot, result in snapshot.finished(current):
            deliver(occupant.pop(slot).key, result)

    while True:
        free = [slot for slot in range(decoder.slots) if slot not in occupant]
        if free and not closed:
            taken = take(len(free), not occupant)
            if taken is None:
                closed = True
            elif taken:
                placed = list(zip(free, taken, strict=False))
                decoder.ensure_length(max(len(r.prompt) for _, (_, r) in placed) + 1)
                decoder.admit([(slot, request) for slot, (_, request) in placed])
                for slot, (key, request) in placed:
                    occupant[slot] = _Occupant(key, request, 0, next(admissions))
        if not occupant:
            if closed:
                return
            continue
        remaining = max(o.request.max_new_tokens - 1 - o.steps for o in occupant.values())
        steps = max(1, min(POLL_STEPS, remaining))
        reach = max(
            len(o.request.prompt) + min(o.steps + steps, o.request.max_new_tokens) for o in occupant.values()
        )
        decoder.ensure_length(reach)  # the cache grows with the positions reached, not with max_tokens
        length = round_up(reach, LENGTH_BUCKET)
        mode = sampling_mode([o.request for o in occupant.values()])
        for _ in range(steps):
            decoder.step(mode, length)
        occupant = {slot: o._replace(steps=o.steps + steps) for slot, o in occupant.items()}
        launched = (decoder.snapshot(), {slot: o.admission for slot, o in occupant.items()})
        if behind is not None:
            read(*behind)
        behind = launched
        if not pipelined:
            read(*behind)
            behind = None


def decode_all(
    decoder: SlotDecoder, requests: Sequence[SlotRequest], pipelined: bool | None = None
) -> list[SlotResult]:
    """Every request through ``serve``, results in order."""
    waiting = list(enumerate(requests))[::-1]
    results: dict[int, SlotResult] = {}

    def take(n: int, block: bool):
        if not waiting:
            return None
        return [waiting.pop() for _ in range(min(n, len(waiting)))]

    serve(decoder, take, results.__setitem__, pipelined)
    return [results[i] for i in range(len(requests))]
