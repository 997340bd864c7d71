"""Activations at sae-lens hook points, token-level or pooled over the reasoning span.

Forward hooks capture the hooked tensors and the pass stops after the deepest one, so a layer-16
read of a 32-layer model costs half a forward. Batches are right-padded; padding, special tokens,
position 0 (the attention sink) and tokens outside the span never reach the pooled figures.

On CUDA the decoder layers' forwards run compiled (``compiled_layers``): inductor fuses the RMSNorm,
RoPE, SiLU and residual-add kernels that took a quarter of an eager 7B extraction pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from af_tasks.core.errors import SettingError
from af_tasks.core.hooks import HookPoint, check_hook, decoder_layers, parse_hook
from af_tasks.core.protocol import reasoning_char_span
from af_tasks.sae.reader import Reader

Span = Literal["reasoning", "all"]
DEFAULT_MAX_TOKENS = 1024


class _StopForward(Exception):
    """Raised inside the last needed hook: nothing deeper is computed."""


@dataclass
class TokenBatch:
    """Selected tokens of one batch: ``acts[hook]`` is [n_tokens, d]; ``sample`` maps each row to
    its text (index into the caller's list); rows of one text are in token order."""

    acts: dict[str, Any]
    sample: Any


@dataclass
class ExtractionStats:
    texts: int = 0
    tokens: int = 0
    truncated: list[int] = field(default_factory=list)
    max_tokens: int = DEFAULT_MAX_TOKENS


def _first(value):
    return value[0] if isinstance(value, tuple) else value


class _Capture:
    """The hooks for a set of hook points on one model, registered for one forward at a time."""

    def __init__(self, model, hooks: Sequence[HookPoint]):
        self.layers = decoder_layers(model)
        self.hooks = list(hooks)
        self.captured: dict[str, Any] = {}
        self.handles: list = []

    def _store(self, hook: HookPoint, tensor) -> None:
        self.captured[hook.name] = tensor
        if len(self.captured) == len(self.hooks):
            raise _StopForward

    def _register(self) -> None:
        for hook in self.hooks:
            layer = self.layers[hook.layer]
            if hook.kind == "hook_resid_pre":
                self.handles.append(
                    layer.register_forward_pre_hook(
                        lambda _m, args, kwargs, h=hook: self._store(
                            h, args[0] if args else kwargs["hidden_states"]
                        ),
                        with_kwargs=True,
                    )
                )
            elif hook.kind == "hook_resid_post":
                self.handles.append(
                    layer.register_forward_hook(lambda _m, _a, out, h=hook: self._store(h, _first(out)))
                )
            elif hook.kind == "hook_mlp_in":
                self.handles.append(
                    layer.mlp.register_forward_pre_hook(lambda _m, args, h=hook: self._store(h, args[0]))
                )
            else:  # hook_mlp_out
                self.handles.append(
                    layer.mlp.register_forward_hook(lambda _m, _a, out, h=hook: self._store(h, _first(out)))
                )

    def _remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def run(self, model, **inputs) -> dict[str, Any]:
        """One forward with the hooks on; they come off before returning, so a paused extraction
        never leaves the model hooked."""
        self.captured = {}
        self._register()
        try:
            with contextlib.suppress(_StopForward):
                model(**inputs, use_cache=False)
        finally:
            self._remove()
        missing = [h.name for h in self.hooks if h.name not in self.captured]
        if missing:
            raise RuntimeError(f"hooks never fired: {missing}")
        return self.captured


COMPILE_OPTIONS = {"emulate_precision_casts": True}
"""Inductor rounds every intermediate that eager rounds (a bf16 ``.to`` inside a fused kernel stays a
bf16 rounding): without it a fused RMSNorm kept fp32 intermediates and the hooked bf16 activations
moved by ~0.5 % (relative norm, tiny Llama on CPU); with it they equalled eager's there (CI checks it).
The fused kernels are memory-bound, so the extra roundings should cost no time."""


def compile_by_default(device: str) -> bool:
    """Compiled on CUDA (where the fused kernels pay); eager elsewhere (a CPU compile takes longer than
    most CPU extractions)."""
    return str(device).startswith("cuda")


@contextlib.contextmanager
def compiled_layers(model, hooks: Sequence[HookPoint]) -> Iterator[None]:
    """Within the block, the forward of each decoder layer up to the deepest hook runs through
    ``torch.compile``; afterwards the layers are as they were.

    Why per layer, not the model: the model's own forward (masks, rotary tables, the stop after the
    deepest hook) and the hooks stay eager, so they fire on the layers' real inputs and outputs exactly
    as in an eager pass, and every layer of a kind shares one graph. Layers read at ``hook_mlp_in`` /
    ``hook_mlp_out`` stay eager: their hooks sit inside the layer's forward. Shapes are dynamic: batches of
    every length and size reuse the graph (a second one is traced for a batch without padding, whose
    mask is None); variable lengths never recompile."""
    import torch

    from af_tasks.engine.generate import allow_shape_graphs

    allow_shape_graphs()  # layer kinds (Gemma 3: sliding / full) x mask present or not x batch size 1
    inside = {h.layer for h in hooks if h.kind in ("hook_mlp_in", "hook_mlp_out")}
    deepest = max(h.last_layer_needed for h in hooks)
    patched = []
    for index, layer in enumerate(decoder_layers(model)[: deepest + 1]):
        if index in inside:
            continue
        patched.append((layer, layer.__dict__.get("forward")))
        layer.forward = torch.compile(layer.forward, dynamic=True, options=COMPILE_OPTIONS)
    try:
        yield
    finally:
        for layer, own in patched:
            if own is None:
                del layer.forward
            else:
                layer.forward = own


def resolve_hooks(reader: Reader, hook_names: Sequence[str]) -> list[HookPoint]:
    hooks = sorted({parse_hook(name) for name in hook_names})
    for hook in hooks:
        check_hook(hook, reader.num_layers, reader.name)
    return hooks


def iter_token_activations(
    reader: Reader,
    texts: Sequence[str],
    hook_names: Sequence[str],
    span: Span = "reasoning",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    batch_size: int = 8,
    stats: ExtractionStats | None = None,
    progress: str = "reading activations",
    compile: bool | None = None,
    pad_multiple: int | None = None,
) -> Iterator[TokenBatch]:
    """Yields the selected tokens' activations batch by batch (on the reader's device).

    Texts are batched in order of length (less padding); ``TokenBatch.sample`` gives each row's
    index in ``texts``. Texts longer than ``max_tokens`` are truncated and counted in ``stats``.
    ``progress`` names the bar shown when bars are on (``af_tasks.sae.progress``). ``compile``: the
    layers through ``compiled_layers`` (None: the reader's ``compile``, else on CUDA only).
    ``pad_multiple``: each batch right-padded to a multiple of this many tokens (shape buckets; the
    real tokens' activations do not depend on it).
    """
    import torch

    from af_tasks.sae.progress import bar

    hooks = resolve_hooks(reader, hook_names)
    stats = stats if stats is not None else ExtractionStats()
    stats.max_tokens = max_tokens
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    capture = _Capture(reader.model, hooks)
    compile = reader.compile if compile is None else compile
    compile = compile_by_default(reader.device) if compile is None else compile
    compiling = compiled_layers(reader.model, hooks) if compile else contextlib.nullcontext()
    with torch.no_grad(), compiling:
        for start in bar(range(0, len(order), batch_size), desc=progress, unit="batch"):
            indices = order[start : start + batch_size]
            batch_texts = [texts[i] for i in indices]
            encoded = reader.tokenizer(
                batch_texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_tokens,
                pad_to_multiple_of=pad_multiple,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                return_overflowing_tokens=False,
            )
            offsets = encoded.pop("offset_mapping")
            special = encoded.pop("special_tokens_mask").bool()
            keep = encoded["attention_mask"].bool() & ~special
            keep[:, 0] = False  # the attention sink: in SmolLM2 its norm is ~100x any other token's
            if span == "reasoning":
                bounds = torch.tensor([reasoning_char_span(text) for text in batch_texts])
                inside = (offsets[..., 1] > bounds[:, None, 0]) & (offsets[..., 0] < bounds[:, None, 1])
                keep &= inside
            if encoded["attention_mask"].shape[1] >= max_tokens:
                lengths = [len(ids) for ids in reader.tokenizer(batch_texts)["input_ids"]]
                stats.truncated += [i for i, n in zip(indices, lengths, strict=True) if n > max_tokens]
            inputs = {k: v.to(reader.device) for k, v in encoded.items()}
            try:
                captured = capture.run(reader.model, **inputs)
            except torch._dynamo.exc.BackendCompilerFailed as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise SettingError(
                    f"{reader.name}: compiling the decoder layers failed ({first}); "
                    "read eagerly with --no-compile (compile=False)"
                ) from error
            keep = keep.to(reader.device)
            sample = torch.tensor(indices, device=reader.device)[:, None].expand_as(keep)[keep]
            stats.texts += len(indices)
            stats.tokens += int(keep.sum())
            yield TokenBatch(acts={name: tensor[keep] for name, tensor in captured.items()}, sample=sample)


@dataclass
class Pooled:
    """Per-text figures over the span: [n_texts, d] arrays (numpy, float32)."""

    mean: Any
    max: Any
    last: Any
    active_tokens: Any
    """How many of the text's tokens have the feature > 0 (meaningful for SAE features)."""
    n_tokens: Any
    """[n_texts]: tokens pooled per text (0 for an empty span: its rows are zeros)."""


@dataclass
class _Rows:
    """A batch's rows by text: ``sample[i]`` is row i's text; ``last_rows`` are the texts' last rows
    and ``last_texts`` their texts (each text once, so copying them needs no duplicate writes)."""

    sample: Any
    last_rows: Any
    last_texts: Any

    def to(self, device) -> _Rows:
        return _Rows(self.sample.to(device), self.last_rows.to(device), self.last_texts.to(device))


def _rows(sample, n_texts: int) -> _Rows:
    """The batch's layout. Finding its last rows is the one sync per batch: it comes before any
    transform is queued, so the device is idle then anyway."""
    import torch

    rows = torch.arange(len(sample), device=sample.device)
    last = torch.full((n_texts,), -1, dtype=torch.long, device=sample.device)
    last.scatter_reduce_(0, sample, rows, reduce="amax")
    last_rows = last[last >= 0]
    return _Rows(sample, last_rows, sample[last_rows])


class _Running:
    """One hook's running per-text figures, float32 [n_texts, d] on the features' device; they go to
    the host once, at the end. A text may span batches: sums and counts add up, maxes reduce and the
    last row is overwritten by later batches (rows come in token order)."""

    def __init__(self, n_texts: int, d: int, device, sparse_k: int | None):
        import torch

        self.d = d
        self.sparse_k = sparse_k
        self.sums = torch.zeros(n_texts, d, device=device)
        self.actives = torch.zeros(n_texts, d, device=device)
        # A sparse row's unlisted features are 0 and its listed ones >= 0: the dense max is the max of 0
        # and the listed values. Dense rows start at -inf; rows of texts with no tokens end as 0.
        self.maxes = torch.full((n_texts, d), 0.0 if sparse_k is not None else -torch.inf, device=device)
        if sparse_k is not None:
            self.last_values = torch.zeros(n_texts, sparse_k, device=device)
            self.last_indices = torch.zeros(n_texts, sparse_k, dtype=torch.long, device=device)
        else:
            self.lasts = torch.zeros(n_texts, d, device=device)

    def add_dense(self, values, rows: _Rows) -> None:
        values = values.float()
        index = rows.sample[:, None].expand_as(values)
        self.sums.scatter_add_(0, index, values)
        self.maxes.scatter_reduce_(0, index, values, reduce="amax")
        self.actives.scatter_add_(0, index, (values > 0).float())
        self.lasts.index_copy_(0, rows.last_texts, values[rows.last_rows])

    def add_sparse(self, features, rows: _Rows) -> None:
        """Only the listed (text, feature) entries change: index (text * d + feature) into the
        flattened figures."""
        values = features.values.float()
        flat = (rows.sample[:, None] * self.d + features.indices).flatten()
        listed = values.flatten()
        self.sums.view(-1).index_add_(0, flat, listed)
        self.maxes.view(-1).scatter_reduce_(0, flat, listed, reduce="amax")
        self.actives.view(-1).index_add_(0, flat, (listed > 0).float())
        self.last_values.index_copy_(0, rows.last_texts, values[rows.last_rows])
        self.last_indices.index_copy_(0, rows.last_texts, features.indices[rows.last_rows])

    def pooled(self, n_tokens) -> Pooled:
        import numpy as np
        import torch

        if self.sparse_k is not None:
            lasts = torch.zeros_like(self.sums).scatter_(1, self.last_indices, self.last_values)
        else:
            lasts = self.lasts
        safe = np.maximum(n_tokens, 1)[:, None]
        return Pooled(
            mean=to_host(self.sums) / safe,
            max=np.where(n_tokens[:, None] > 0, to_host(self.maxes), 0.0),
            last=to_host(lasts),
            active_tokens=to_host(self.actives),
            n_tokens=n_tokens,
        )


def to_host(tensor):
    """A numpy copy; from a GPU through pinned (page-locked) memory. Why: the pooled figures are
    n_texts x d_sae float32 each (~230 MB for 444 texts at 131k features), and a copy into pageable
    memory ran at a few GB/s, a fifth of a whole 7B extraction pass in the profile."""
    import torch

    if tensor.device.type != "cuda":
        return tensor.cpu().numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor)
    return host.numpy()


def pool(
    batches: Iterator[TokenBatch],
    n_texts: int,
    transforms: dict[str, Callable[[Any], Any]] | None = None,
) -> dict[str, Pooled]:
    """Pools each hook's tokens per text; ``transforms[hook]`` (e.g. an SAE encoder) is applied to
    the token activations first, on the device. A transform may return a dense [n, d] tensor or
    ``SparseFeatures`` (``encoder(sae, sparse=True)``), pooled without ever forming [n, d]. The
    running figures stay on the device ([n_texts, d] float32, four of them per hook) and reach the
    host once."""
    import torch

    from af_tasks.sae.saes import SparseFeatures

    running: dict[str, _Running] = {}
    n_tokens = None
    with torch.no_grad():
        for batch in batches:
            rows = _rows(batch.sample, n_texts)
            if n_tokens is None:
                n_tokens = torch.zeros(n_texts, dtype=torch.long, device=batch.sample.device)
            n_tokens.index_add_(0, batch.sample, torch.ones_like(batch.sample))  # bincount would sync
            for name, acts in batch.acts.items():
                values = transforms[name](acts) if transforms and name in transforms else acts
                sparse = isinstance(values, SparseFeatures)
                device = values.values.device if sparse else values.device
                if name not in running:
                    d, k = (values.d, values.values.shape[-1]) if sparse else (values.shape[-1], None)
                    running[name] = _Running(n_texts, d, device, k)
                here = rows.to(device)
                if sparse != (running[name].sparse_k is not None):
                    raise TypeError(f"transform for {name} switched between dense and sparse features")
                if sparse:
                    running[name].add_sparse(values, here)
                else:
                    running[name].add_dense(values, here)
    if n_tokens is None:
        return {}
    n_tokens = n_tokens.cpu().numpy()
    return {name: figures.pooled(n_tokens) for name, figures in running.items()}
