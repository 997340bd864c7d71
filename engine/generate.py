"""Fast local generation for organisms: one ``generate`` call per batch of chats (compute core, no Inspect).

Why this exists: decoding one token reads every weight once whatever the batch size, so at 7B a single
sequence per ``generate`` call leaves the GPU far from its memory-bandwidth bound, and per-step Python and
kernel-launch overhead dominates. The engine therefore

- loads a model dir, hub id or organism dir (base + LoRA adapter, merged with peft's ``merge_and_unload``
  so decoding pays no adapter matmuls; exact up to float rounding), bf16 on CUDA, fp32 on CPU;
- decodes many chats in one left-padded batch (the attention mask drives positions and masking, so a
  padded row decodes exactly as it would alone);
- decodes greedy batches with its own loop over a static KV cache (``greedy_static``): no per-step
  host synchronisation (finished rows are checked every ``FINISH_CHECK_STEPS`` steps), the 2-D attention
  mask fixed for the whole decode, and on CUDA the decode step compiled once (``torch.compile`` mode
  ``reduce-overhead`` = CUDA graphs). Its tokens equal ``model.generate``'s (tested on CPU in fp32);
  sampling and stop strings go through ``model.generate`` itself;
- on CUDA attends a single query token to grouped KV heads without repeating them (``gqa_decode_sdpa``):
  under compilation transformers' SDPA path copies every K/V head ``heads / kv_heads`` times per layer
  and step, which at batch 32 cost more memory traffic than reading the weights.

Batch sizes are padded to powers of two and cache lengths to multiples of ``CACHE_BUCKET`` when
compiling, so an eval triggers a handful of compilations, not one per request shape.

Used by the ``organism/`` Inspect provider (``solvers/organism_model.py``), the GPU benchmark and notebooks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from af_tasks.core.organism import OrganismDir, OrganismError
from af_tasks.engine.errors import ContextLimitError, EngineError
from af_tasks.engine.loading import load_organism
from af_tasks.engine.shapes import allow_shape_graphs, batch_bucket, round_up

__all__ = ["ContextLimitError", "EngineError", "GenerationEngine", "SamplingParams", "allow_shape_graphs"]

CACHE_BUCKET = 128
"""Static-cache lengths are rounded up to a multiple of this (fewer recompilations, little unused cache)."""

FINISH_CHECK_STEPS = 8
"""The greedy loop asks the GPU whether every row has finished once per this many steps (one sync)."""

GQA_DECODE_ATTENTION = "af_gqa_decode_sdpa"
"""Name under which ``gqa_decode_sdpa`` is registered with transformers' attention interfaces."""

Chat = list[dict[str, str]]
"""One conversation: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``."""


def prompt_ids(tokenizer: Any, chat: Chat) -> list[int]:
    """Prompt token ids: the chat template with the generation prompt. Tokenised without special
    tokens, as ``apply_chat_template(tokenize=True)`` does: templates write their own BOS."""
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def request_seed(seed: int | None, prompt: Sequence[int], occurrence: int) -> int:
    """A 64-bit seed for one sampled request: with ``seed`` set, a hash of (seed, the prompt, the
    occurrence of that prompt in the caller's run), so a rerun draws the same completions whatever
    order its requests arrive in, and a prompt asked twice (two epochs) draws two; without a seed,
    fresh randomness."""
    import hashlib
    import secrets

    if seed is None:
        return secrets.randbits(64)
    digest = hashlib.blake2b(repr((seed, tuple(prompt), occurrence)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def context_window(model: Any) -> int | None:
    """The model's context window in tokens (``max_position_embeddings`` of its text config), or None
    when the config does not say."""
    config = model.config.get_text_config(decoder=True)
    window = getattr(config, "max_position_embeddings", None)
    return int(window) if isinstance(window, int) and window > 0 else None


def check_fits(prompt_tokens: int, max_new_tokens: int, window: int | None, where: str = "") -> None:
    """Refuse ``prompt_tokens + max_new_tokens`` beyond ``window`` with one line saying by how much and
    what to lower; ``where`` names the sample or model."""
    if window is None:
        return
    at = f"{where}: " if where else ""
    if max_new_tokens >= window:
        raise ContextLimitError(
            f"{at}max_tokens {max_new_tokens} cannot fit the model's context window of {window} tokens "
            f"(max_position_embeddings); lower --max-tokens or -T max_tokens"
        )
    if prompt_tokens + max_new_tokens > window:
        raise ContextLimitError(
            f"{at}prompt of {prompt_tokens} tokens + max_tokens {max_new_tokens} exceeds the model's context "
            f"window of {window} tokens (max_position_embeddings); lower max_tokens to at most "
            f"{max(window - prompt_tokens, 0)}, shorten the prompt (-T prompt_variant=compact) or use a model "
            "with a longer context"
        )


@dataclass(frozen=True)
class SamplingParams:
    """Generation settings shared by every row of one batch (requests are grouped by these).

    Unset ``temperature`` / ``top_p`` / ``top_k`` fall back to the model's ``generation_config``, as with
    Inspect's ``hf/`` provider."""

    max_new_tokens: int = 256
    greedy: bool = True
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    """Sampling only. In slot decoding each request gets its own stream from this seed and its prompt
    (``request_seed``), so its completion does not depend on its batch; through
    ``model.generate`` (stop strings, unsupported models) it seeds torch before the batch's call and
    rows share one stream."""
    stop: tuple[str, ...] = ()
    """Stop strings (transformers' ``stop_strings``); the completion keeps the stop string, as ``hf/``."""
    ignore_eos: bool = False
    """Run every row to ``max_new_tokens`` (``min_new_tokens = max_new_tokens``): benchmarks only."""


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    """Generated tokens up to and including EOS (no padding)."""
    input_tokens: int
    output_tokens: int
    stop_reason: Literal["stop", "max_tokens"]


class GenerationEngine:
    """A loaded model + tokenizer that generates for batches of chats. Not thread-safe: one caller at a
    time (the Inspect provider runs it from a single worker thread)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        cache: Literal["static", "dynamic"] | None = None,
        compile: bool | None = None,
        own_loop: bool = True,
        grouped_decode: bool | None = None,
        slots: bool | None = None,
        slot_options: dict[str, Any] | None = None,
    ):
        """``slots`` (default: wherever ``slot_support`` allows) decodes greedy and sampled requests
        with continuous batching (``af_tasks.engine.slots``); ``slots=False`` keeps the static batches
        of ``greedy_static`` and ``model.generate`` for sampling. ``own_loop=False`` sends greedy
        batches through ``model.generate`` too, and ``grouped_decode=False`` keeps transformers' decode
        attention (default: on CUDA only): both there for the benchmark's comparison with the previous
        paths. ``slot_options`` go to ``SlotDecoder`` (its ``attention`` and ``fuse``: benchmarks)."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        on_cuda = self.device.type == "cuda"
        self.cache = cache or ("static" if on_cuda else "dynamic")
        self.compile = on_cuda if compile is None else compile
        if self.compile and self.cache != "static":
            raise EngineError("compile needs the static cache (cache='static')")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = set(eos) | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
        self.own_loop = own_loop
        self.attention = (
            decode_attention(model) if (on_cuda if grouped_decode is None else grouped_decode) else None
        )
        self._static_cache: Any = None
        self._cache_keyword = cache_keyword(model)
        self._static_cache_shape: tuple[int, int] | None = None
        self._compiled_step: Any = None
        from af_tasks.engine.slots import slot_support

        self.slot_support = slot_support(model)
        """None when requests decode in slots; else why they go through the static paths."""
        self.slots = (self.slot_support is None) if slots is None else slots
        if self.slots and self.slot_support is not None:
            raise EngineError(f"{name}: slot decoding does not support this model: {self.slot_support}")
        self._decoder: Any = None
        self.slot_options = dict(slot_options or {})

    @property
    def device(self):
        return self.model.device

    @property
    def context_window(self) -> int | None:
        return context_window(self.model)

    @classmethod
    def load(
        cls,
        model: str,
        adapter: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache: Literal["static", "dynamic"] | None = None,
        compile: bool | None = None,
        merge: bool = True,
    ) -> GenerationEngine:
        """``model`` is a hub id, a model dir or an organism dir (its adapter merged into its base unless
        ``merge=False``); see ``OrganismDir.resolve`` and ``load_organism``. The tokenizer comes from the
        organism dir when it holds one (training saves it there, with any template change), else from
        the base. Resolution and load errors are ``OrganismError``s."""
        organism = OrganismDir.resolve(model, adapter)
        loaded, tokenizer = load_organism(organism, device=device, dtype=dtype, merge=merge)
        if tokenizer.chat_template is None:
            raise OrganismError(f"{organism.tokenizer_source}: the tokenizer has no chat template")
        return cls(loaded, tokenizer, organism.name, cache=cache, compile=compile)

    def encode(self, chats: list[Chat]) -> list[list[int]]:
        """Prompt token ids of each chat (``prompt_ids``)."""
        return [prompt_ids(self.tokenizer, chat) for chat in chats]

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[Completion]:
        return self.generate_ids(self.encode(chats), params)

    def generate_ids(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        """One ``generate`` call for all prompts (left-padded); a completion per prompt, in order."""
        import torch

        if not prompts:
            return []
        if any(not prompt for prompt in prompts):
            raise EngineError("empty prompt")
        for index, prompt in enumerate(prompts):  # before any token: a batch is refused whole
            check_fits(
                len(prompt), params.max_new_tokens, self.context_window, f"{self.name}: prompt {index}"
            )
        if self.slots and not params.stop:
            from af_tasks.engine.slots import decode_all

            seen: Counter[tuple[int, ...]] = Counter()
            requests = []
            for prompt in prompts:  # a prompt given twice in one call draws two answers
                requests.append(self.slot_request(prompt, params, occurrence=seen[tuple(prompt)]))
                seen[tuple(prompt)] += 1
            decoder = self.slot_decoder(len(prompts), max(len(p) for p in prompts) + 1)
            with torch.inference_mode():
                results = decode_all(decoder, requests)
            return [self._completion(p, r.tokens, params) for p, r in zip(prompts, results, strict=True)]
        rows = list(prompts)
        if self.compile:  # pad with copies of a real row: they finish when it does (greedy)
            rows += [prompts[-1]] * (batch_bucket(len(rows)) - len(rows))
        width = max(len(row) for row in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention_mask[i, width - len(row) :] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        with torch.inference_mode(), attention_implementation(self.model, self.attention):
            if self.own_loop and params.greedy and not params.stop and self._full_cache_fits(width, params):
                new_tokens = self.greedy_static(input_ids, attention_mask, params)[: len(prompts)].tolist()
            else:
                kwargs = self._generate_kwargs(params, width)
                if params.seed is not None and not params.greedy:
                    torch.manual_seed(params.seed)
                sequences = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
                new_tokens = sequences[: len(prompts), width:].tolist()
        return [
            self._completion(prompt, tokens, params)
            for prompt, tokens in zip(prompts, new_tokens, strict=True)
        ]

    def slot_request(self, prompt: Sequence[int], params: SamplingParams, occurrence: int = 0) -> Any:
        """The slot decoder's request for ``prompt``: greedy, or sampling with the settings the model's
        generation_config gives where ``params`` is silent (as ``model.generate``), and its own seed
        (``request_seed``; ``occurrence``: how many times the caller asked this prompt before)."""
        from af_tasks.engine.slots import SlotRequest, sampling_defaults

        if params.greedy:
            return SlotRequest(tuple(prompt), params.max_new_tokens, ignore_eos=params.ignore_eos)
        temperature, top_k, top_p = sampling_defaults(self.model)
        return SlotRequest(
            tuple(prompt),
            params.max_new_tokens,
            temperature=params.temperature if params.temperature is not None else temperature,
            top_k=params.top_k if params.top_k is not None else top_k,
            top_p=params.top_p if params.top_p is not None else top_p,
            seed=request_seed(params.seed, prompt, occurrence),
            ignore_eos=params.ignore_eos,
        )

    def slot_decoder(self, slots: int, length: int) -> Any:
        """The engine's slot decoder, with at least ``slots`` slots (a power of two when compiling) and
        its cache grown to ``length`` positions. One per engine, replaced only by a larger one: a new
        decoder captures its CUDA graphs again (the compiled step is shared), and its cache holds
        memory for every slot."""
        from af_tasks.engine.slots import SlotDecoder

        size = batch_bucket(slots) if self.compile else slots
        if self._decoder is None or self._decoder.slots < size:
            self._decoder = None  # free the old cache before allocating the new one
            self._decoder = SlotDecoder(
                self.model,
                slots=size,
                max_len=length,
                eos_ids=sorted(self.eos_ids),
                pad_id=self.tokenizer.pad_token_id,
                compile=self.compile,
                **self.slot_options,
            )
        self._decoder.ensure_length(length)
        return self._decoder

    def greedy_static(self, input_ids: Any, attention_mask: Any, params: SamplingParams) -> Any:
        """Greedy decoding of a left-padded batch over a static KV cache: the new tokens [rows, steps].

        The same arithmetic as ``model.generate(do_sample=False)``: positions from the attention mask,
        EOS suppressed while ``ignore_eos``, finished rows continued with the pad token. What differs is
        the loop: the next token stays on the GPU (no per-step host sync), and the decode step reads a
        2-D mask that covers the whole cache (future slots are hidden by causality), so its inputs
        keep their shapes and addresses and the compiled step replays as one CUDA graph."""
        import torch

        rows, width = input_ids.shape
        steps = params.max_new_tokens
        length = round_up(width + steps, CACHE_BUCKET)
        cache = self._cache_for(rows, length)
        mask = torch.ones((rows, length), dtype=torch.long, device=self.device)
        mask[:, :width] = attention_mask
        positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        eos = torch.tensor(sorted(self.eos_ids), device=self.device)
        pad = torch.tensor(self.tokenizer.pad_token_id, device=self.device)
        logits = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache_position=torch.arange(width, device=self.device),
            **{self._cache_keyword: cache},
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        if self.compile:
            prepare_thread_for_cuda_graphs()
        step = self._decode_step()
        position = positions[:, -1:].contiguous()
        finished = torch.zeros(rows, dtype=torch.bool, device=self.device)
        tokens = torch.full((rows, steps), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        for index in range(steps):
            if params.ignore_eos:
                logits[:, eos] = -torch.inf
            token = torch.where(finished, pad, logits.argmax(-1))
            tokens[:, index] = token
            finished |= torch.isin(token, eos)
            if index + 1 == steps or (index + 1) % FINISH_CHECK_STEPS == 0 and bool(finished.all()):
                break
            position = position + 1
            logits = step(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=position,
                cache_position=torch.tensor([width + index], device=self.device),
                **{self._cache_keyword: cache},
                use_cache=True,
            ).logits[:, -1]
            logits = logits.clone() if self.compile else logits  # the graph's output buffer is reused
        return tokens

    def _full_cache_fits(self, width: int, params: SamplingParams) -> bool:
        """Whether every layer can use a plain static cache: sliding-window layers whose window covers
        the whole sequence attend exactly as full-attention layers. (A sliding layer's cache counts
        tokens in a Python int, which would make a compiled step recompile or re-record every step.)"""
        config = self.model.config.get_text_config(decoder=True)
        window = getattr(config, "sliding_window", None)
        layer_types = getattr(config, "layer_types", None)
        if window is None or (layer_types is not None and "sliding_attention" not in layer_types):
            return True  # e.g. Qwen3 names a window but attends in full on every layer
        return round_up(width + params.max_new_tokens, CACHE_BUCKET) <= window

    def _cache_for(self, rows: int, length: int) -> Any:
        """A static cache of ``rows`` x ``length``, reused (reset) when the shape repeats: a compiled
        decode step replays its graph only while the cache tensors keep their addresses."""
        from transformers import StaticCache

        if self._static_cache is not None and self._static_cache_shape == (rows, length):
            self._static_cache.reset()
            return self._static_cache
        self._static_cache = StaticCache(
            config=full_attention_config(self.model.config), max_cache_len=length
        )
        self._static_cache_shape = (rows, length)
        return self._static_cache

    def _decode_step(self) -> Any:
        if not self.compile:
            return self.model
        if self._compiled_step is None:  # the engine's own, not transformers' per-model compiled call
            import torch

            allow_shape_graphs()
            self._compiled_step = torch.compile(
                self.model.__call__, mode="reduce-overhead", fullgraph=True, dynamic=False
            )
        return self._compiled_step

    def _generate_kwargs(self, params: SamplingParams, width: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if not params.greedy:
            for key in ("temperature", "top_p", "top_k"):
                if getattr(params, key) is not None:
                    kwargs[key] = getattr(params, key)
        if params.ignore_eos:
            kwargs["min_new_tokens"] = params.max_new_tokens
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if self.cache == "static":
            kwargs["cache_implementation"] = "static"
            if self.compile and _supports_max_cache_len():
                kwargs["max_cache_len"] = round_up(width + params.max_new_tokens, CACHE_BUCKET)
        if self.compile:
            from transformers import CompileConfig

            compile_config = CompileConfig(fullgraph=False, mode="reduce-overhead")
            if self.device.type != "cuda":
                compile_config._compile_all_devices = True
            kwargs["compile_config"] = compile_config
        else:
            kwargs["disable_compile"] = True
        return kwargs

    def _completion(self, prompt: list[int], tokens: list[int], params: SamplingParams) -> Completion:
        """Cut a row at its first EOS (rows finished early are padded); a row shorter than
        ``max_new_tokens`` without EOS stopped on a stop string (its tail is padding)."""
        end = next((i + 1 for i, token in enumerate(tokens) if token in self.eos_ids), None)
        if params.ignore_eos:
            end = None
        if end is None and params.stop:
            pad = self.tokenizer.pad_token_id
            end = len(tokens)
            while end > 0 and tokens[end - 1] == pad:
                end -= 1
            end = end if end < params.max_new_tokens else None
        kept = tokens if end is None else tokens[:end]
        text = self.tokenizer.decode(
            [t for t in kept if t not in self.eos_ids],
            skip_special_tokens=True,
            clean_up_tokenization_spaces=False,
        )
        return Completion(
            text=text,
            token_ids=kept,
            input_tokens=len(prompt),
            output_tokens=len(kept),
            stop_reason="max_tokens" if end is None else "stop",
        )


def _supports_max_cache_len() -> bool:
    """transformers ≥ 5.2x sizes the static cache from ``max_cache_len`` (older versions: per call)."""
    from transformers import GenerationConfig

    return hasattr(GenerationConfig(), "max_cache_len")


def full_attention_config(config: Any) -> Any:
    """A copy of the (text) config whose layers all cache as full attention; used only where every
    sliding window covers the whole cache (``_full_cache_fits``), so attention is unchanged."""
    import copy

    text = copy.deepcopy(config.get_text_config(decoder=True))
    text.sliding_window = None
    if getattr(text, "layer_types", None) is not None:
        text.layer_types = ["full_attention"] * len(text.layer_types)
    return text


def decode_attention(model: Any) -> str | None:
    """``GQA_DECODE_ATTENTION`` for an SDPA model with grouped KV heads (registered on first use), else
    None (the model's own attention is kept)."""
    config = model.config.get_text_config(decoder=True)
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    if model.config._attn_implementation != "sdpa" or not kv_heads or kv_heads == heads:
        return None
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(GQA_DECODE_ATTENTION, gqa_decode_sdpa)
    AttentionMaskInterface.register(GQA_DECODE_ATTENTION, sdpa_mask)
    return GQA_DECODE_ATTENTION


def gqa_decode_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
    """SDPA that, for one query token, folds the query heads of each KV group into the query-length
    axis ([b, heads, 1, d] -> [b, kv_heads, group, d]), so K and V are read once instead of being
    repeated per query head; any other call is transformers' own SDPA. The same sums as repeating
    (each query head still attends to its own group's K/V with the same mask)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    import torch

    batch, heads, _, dim = query.shape
    if attention_mask is not None and attention_mask.shape[1] != 1:
        raise EngineError("grouped decode attention expects a mask shared by all heads")
    output = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(batch, heads // groups, groups, dim),
        key,
        value,
        attn_mask=attention_mask,
        scale=kwargs.get("scaling"),
    )
    return output.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


@contextmanager
def attention_implementation(model: Any, name: str | None) -> Iterator[None]:
    """Switches a model to another registered attention implementation for a block (None: no change),
    so a model shared with other code (the benchmark's plain baseline) keeps its own outside."""
    if name is None:
        yield
        return
    previous = model.config._attn_implementation
    model.config._attn_implementation = name
    try:
        yield
    finally:
        model.config._attn_implementation = previous


def cache_keyword(model: Any) -> str:
    """The name ``model.forward`` takes its KV cache by: ``cache`` in transformers releases that renamed
    it (``past_key_values`` is deprecated there, to be removed in 5.40), ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prepare_thread_for_cuda_graphs() -> None:
    """Give the calling thread the state torch.compile's CUDA-graph trees keep per thread.

    Why: inductor keeps its graph-tree managers in thread-local storage that only the thread which
    imported it and autograd's own threads get; the ``organism/`` provider decodes in worker threads
    (one per replica), where a compiled step would otherwise fail its first call
    (``assert torch._C._is_key_in_tls``). Each thread gets its own managers, one per device, so two
    replicas on two cards never share one. Idempotent; a no-op where the state exists."""
    import threading
    from collections import defaultdict

    import torch
    from torch._inductor import cudagraph_trees as trees

    if hasattr(trees.local, "tree_manager_containers") or torch._C._is_key_in_tls("tree_manager_containers"):
        return
    trees.local.tree_manager_containers = {}
    trees.local.tree_manager_locks = defaultdict(threading.Lock)
