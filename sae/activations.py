"""Activations at sae-lens hook points, token-level or pooled over the reasoning span.

Forward hooks capture the hooked tensors and the pass stops after the deepest one, so a layer-16
read of a 32-layer model costs half a forward. Batches are right-padded; padding, special tokens,
position 0 (the attention sink) and tokens outside the span never reach the pooled figures.

On CUDA the decoder layers' forwards run compiled (``compiled_layers``): inductor fuses the RMSNorm,
RoPE, SiLU and residual-add kernels that took a quarter of an eager 7B extraction pass.

Nothing in a pass waits for the device: which tokens are kept, and which text each row belongs to, are
worked out on the host from the tokenizer's output, and inputs go over from pinned memory without
blocking. So the host tokenises batch i+1 while the device still runs batch i, and the device never
idles between batches.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from af_tasks.core.errors import SettingError
from af_tasks.core.hooks import HookPoint, check_hook, decoder_layers, parse_hook
from af_tasks.core.protocol import reasoning_char_span
from af_tasks.engine.memory import copy_to_device
from af_tasks.sae.reader import Reader

Span = Literal["reasoning", "all"]
DEFAULT_MAX_TOKENS = 1024


class _StopForward(Exception):
    """Raised inside the last needed hook: nothing deeper is computed."""


@dataclass
class TokenBatch:
    """Selected tokens of one batch: ``acts[hook]`` is [n_tokens, d] on the reader's device;
    ``sample`` (on the host: reading it never waits for the device) maps each row to its text (index
    into the caller's list); rows of one text are in token order."""

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

    from af_tasks.engine.shapes import COMPILE_OPTIONS, allow_shape_graphs

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


def packed_by_default(device: str) -> bool:
    """Packed batches on CUDA, where one variable-length flash kernel attends each text alone; elsewhere
    padded ones (a packed row there goes through SDPA with a dense block-diagonal mask, whose cost grows
    with the square of the whole row)."""
    return str(device).startswith("cuda")


@dataclass
class _Encoded:
    """One batch tokenised without padding: every text's tokens one after another."""

    ids: Any
    """[tokens] token ids."""
    positions: Any
    """[tokens] each token's position in its text."""
    lengths: list[int]
    keep: Any
    """[tokens] bool: the tokens whose activations are read."""


def _encode(reader: Reader, texts: Sequence[str], span: Span, max_tokens: int) -> _Encoded:
    """Padding, special tokens, position 0 (the attention sink: in SmolLM2 its norm is ~100x any other
    token's) and, for ``span="reasoning"``, tokens outside the scratchpad are not kept."""
    import torch

    encoded = reader.tokenizer(
        list(texts),
        truncation=True,
        max_length=max_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    per_token = torch.tensor(lengths)
    ids = torch.tensor([t for row in encoded["input_ids"] for t in row], dtype=torch.long)
    positions = torch.cat([torch.arange(n) for n in lengths]) if ids.numel() else ids
    special = torch.tensor([m for row in encoded["special_tokens_mask"] for m in row], dtype=torch.bool)
    keep = ~special & (positions > 0)
    if span == "reasoning":
        offsets = torch.tensor([o for row in encoded["offset_mapping"] for o in row]).reshape(-1, 2)
        bounds = torch.tensor([reasoning_char_span(text) for text in texts]).repeat_interleave(
            per_token, dim=0
        )
        keep &= (offsets[:, 1] > bounds[:, 0]) & (offsets[:, 0] < bounds[:, 1])
    return _Encoded(ids, positions, lengths, keep)


def _model_inputs(encoded: _Encoded, packed: bool, pad_id: int) -> tuple[dict[str, Any], Any]:
    """(the model's inputs, each kept token's row in the hooked tensor flattened to [rows, d]).

    Packed: one row of all texts, positions restarting at each text, and the texts' bounds
    (``cu_seq_lens_*``, as trl's padding-free collator passes them): no padding is computed, and with no
    attention mask transformers builds a block-diagonal one from the positions (or, with
    ``engine.varlen_attention``, none: each text attends alone). Padded: one row per text, right-padded
    (causal attention keeps real tokens off the padding after them)."""
    import torch

    lengths = encoded.lengths
    longest = max(lengths)
    if packed:
        bounds = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
        inputs = dict(
            input_ids=encoded.ids[None],
            position_ids=encoded.positions[None],
            cu_seq_lens_q=bounds,
            cu_seq_lens_k=bounds,
            max_length_q=longest,
            max_length_k=longest,
        )
        return inputs, encoded.keep.nonzero().squeeze(1)
    text = torch.arange(len(lengths)).repeat_interleave(torch.tensor(lengths))
    slot = text * longest + encoded.positions
    input_ids = torch.full((len(lengths) * longest,), pad_id, dtype=torch.long)
    input_ids[slot] = encoded.ids
    attention_mask = torch.zeros(len(lengths) * longest, dtype=torch.long)
    attention_mask[slot] = 1
    inputs = dict(
        input_ids=input_ids.view(len(lengths), longest),
        attention_mask=attention_mask.view(len(lengths), longest),
    )
    return inputs, slot[encoded.keep]


def _packed_attention(model) -> None:
    """On CUDA an SDPA model reads packed rows through the variable-length flash kernel
    (``engine.varlen_attention``); any other attention keeps transformers' block-diagonal mask."""
    from af_tasks.engine.varlen_attention import use_varlen_attention

    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        use_varlen_attention(model)


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
    packed: bool | None = None,
) -> Iterator[TokenBatch]:
    """Yields the selected tokens' activations batch by batch (on the reader's device).

    Texts are batched in order of length; ``TokenBatch.sample`` gives each row's index in ``texts``.
    Texts longer than ``max_tokens`` are truncated and counted in ``stats``. ``progress`` names the bar
    shown when bars are on (``af_tasks.sae.progress``). ``compile``: the layers through
    ``compiled_layers`` (None: the reader's ``compile``, else on CUDA only). ``packed``: each batch's
    texts in one row without padding (``_model_inputs``; None: on CUDA only). Both layouts give every
    text the same positions and the same attention, so the same activations up to float rounding.
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
    packed = packed_by_default(reader.device) if packed is None else packed
    if packed and str(reader.device).startswith("cuda"):
        _packed_attention(reader.model)
    pad_id = reader.tokenizer.pad_token_id if reader.tokenizer.pad_token_id is not None else 0
    compiling = compiled_layers(reader.model, hooks) if compile else contextlib.nullcontext()
    with torch.no_grad(), compiling:
        for start in bar(range(0, len(order), batch_size), desc=progress, unit="batch"):
            indices = order[start : start + batch_size]
            batch_texts = [texts[i] for i in indices]
            encoded = _encode(reader, batch_texts, span, max_tokens)
            if max(encoded.lengths) >= max_tokens:
                lengths = [len(ids) for ids in reader.tokenizer(batch_texts)["input_ids"]]
                stats.truncated += [i for i, n in zip(indices, lengths, strict=True) if n > max_tokens]
            sample = torch.tensor(indices).repeat_interleave(torch.tensor(encoded.lengths))[encoded.keep]
            stats.texts += len(indices)
            stats.tokens += len(sample)
            if not encoded.ids.numel():  # texts without a single token: nothing to run
                empty = torch.zeros(0, reader.hidden_size, dtype=reader.model.dtype, device=reader.device)
                yield TokenBatch(acts={hook.name: empty for hook in hooks}, sample=sample)
                continue
            inputs, rows = _model_inputs(encoded, packed, pad_id)
            inputs = {
                k: copy_to_device(v, reader.device) if hasattr(v, "pin_memory") else v
                for k, v in inputs.items()
            }
            try:
                captured = capture.run(reader.model, **inputs)
            except torch._dynamo.exc.BackendCompilerFailed as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise SettingError(
                    f"{reader.name}: compiling the decoder layers failed ({first}); "
                    "read eagerly with --no-compile (compile=False)"
                ) from error
            rows = copy_to_device(rows, reader.device)
            acts = {name: tensor.flatten(0, 1).index_select(0, rows) for name, tensor in captured.items()}
            yield TokenBatch(acts=acts, sample=sample)


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
        return _Rows(
            *(copy_to_device(index, device) for index in (self.sample, self.last_rows, self.last_texts))
        )


def _rows(sample, n_texts: int) -> _Rows:
    """The batch's layout, worked out on the host (the sample indices live there)."""
    import torch

    sample = sample.cpu()
    rows = torch.arange(len(sample))
    last = torch.full((n_texts,), -1, dtype=torch.long)
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
        # Where the four figures land on the host, allocated now: pinning ~0.5 GB took ~0.1 s, which here
        # overlaps the device's work on the first batch instead of following the last one.
        self.host = host_buffer((4, n_texts, d), device)

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
        """The figures on the host; means and the zeroed maxes of empty texts are formed on the device
        first (on the host each was a pass over n_texts x d floats)."""
        import torch

        if self.sparse_k is not None:
            lasts = torch.zeros_like(self.sums).scatter_(1, self.last_indices, self.last_values)
        else:
            lasts = self.lasts
        counted = copy_to_device(n_tokens, self.sums.device)[:, None]
        figures = (
            self.sums / counted.clamp(min=1),
            torch.where(counted > 0, self.maxes, 0.0),
            lasts,
            self.actives,
        )
        outs = self.host if self.host is not None else (None,) * len(figures)
        mean, max_, last, active_tokens = (to_host(f, out) for f, out in zip(figures, outs, strict=True))
        return Pooled(mean=mean, max=max_, last=last, active_tokens=active_tokens, n_tokens=n_tokens.numpy())


def host_buffer(shape: tuple[int, ...], device):
    """Pinned (page-locked) float32 host memory for figures computed on a GPU, else None. Why pinned:
    the pooled figures are n_texts x d_sae float32 each (~230 MB for 444 texts at 131k features), and a
    copy into pageable memory ran at a few GB/s, a fifth of a whole 7B extraction pass in the profile."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    return torch.empty(shape, dtype=torch.float32, pin_memory=True)


def to_host(tensor, out=None):
    """A numpy copy of ``tensor``: through ``out`` (pinned, from ``host_buffer``) when given."""
    if out is None:
        return tensor.cpu().numpy()
    out.copy_(tensor)
    return out.numpy()


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
                n_tokens = torch.zeros(n_texts, dtype=torch.long)
            n_tokens += torch.bincount(rows.sample, minlength=n_texts)
            placed: dict[Any, _Rows] = {}  # the layout copied once per device, not once per hook
            for name, acts in batch.acts.items():
                values = transforms[name](acts) if transforms and name in transforms else acts
                sparse = isinstance(values, SparseFeatures)
                device = values.values.device if sparse else values.device
                if name not in running:
                    d, k = (values.d, values.values.shape[-1]) if sparse else (values.shape[-1], None)
                    running[name] = _Running(n_texts, d, device, k)
                if device not in placed:
                    placed[device] = rows.to(device)
                here = placed[device]
                if sparse != (running[name].sparse_k is not None):
                    raise TypeError(f"transform for {name} switched between dense and sparse features")
                if sparse:
                    running[name].add_sparse(values, here)
                else:
                    running[name].add_dense(values, here)
    if n_tokens is None:
        return {}
    return {name: figures.pooled(n_tokens) for name, figures in running.items()}
