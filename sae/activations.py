"""Activations at sae-lens hook points, token-level or pooled over the reasoning span.

Forward hooks capture the hooked tensors and the pass stops after the deepest one, so a layer-16
read of a 32-layer model costs half a forward. Batches are right-padded; padding, special tokens,
position 0 (the attention sink) and tokens outside the span never reach the pooled figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sae.hooks import HookPoint, check_hook, decoder_layers, parse_hook
from sae.reader import Reader
from solvers.transcript import reasoning_char_span

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
) -> Iterator[TokenBatch]:
    """Yields the selected tokens' activations batch by batch (on the reader's device).

    Texts are batched in order of length (less padding); ``TokenBatch.sample`` gives each row's
    index in ``texts``. Texts longer than ``max_tokens`` are truncated and counted in ``stats``.
    """
    import torch

    hooks = resolve_hooks(reader, hook_names)
    stats = stats if stats is not None else ExtractionStats()
    stats.max_tokens = max_tokens
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    capture = _Capture(reader.model, hooks)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch_texts = [texts[i] for i in indices]
            encoded = reader.tokenizer(
                batch_texts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_tokens,
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
            captured = capture.run(reader.model, **{k: v.to(reader.device) for k, v in encoded.items()})
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


def pool(
    batches: Iterator[TokenBatch],
    n_texts: int,
    transforms: dict[str, Callable[[Any], Any]] | None = None,
) -> dict[str, Pooled]:
    """Pools each hook's tokens per text; ``transforms[hook]`` (e.g. an SAE encoder) is applied to
    the token activations first, on the device, so only pooled rows travel to the host."""
    import numpy as np
    import torch

    sums: dict[str, Any] = {}
    maxes: dict[str, Any] = {}
    lasts: dict[str, Any] = {}
    actives: dict[str, Any] = {}
    n_tokens = np.zeros(n_texts, dtype=np.int64)
    for batch in batches:
        texts_here, local = torch.unique(batch.sample, return_inverse=True)
        counts = torch.bincount(local, minlength=len(texts_here))
        n_tokens[texts_here.cpu().numpy()] += counts.cpu().numpy()
        rows = torch.arange(len(local), device=local.device)
        last_row = torch.zeros(len(texts_here), dtype=torch.long, device=local.device)
        last_row.scatter_reduce_(0, local, rows, reduce="amax", include_self=False)
        for name, acts in batch.acts.items():
            values = transforms[name](acts) if transforms and name in transforms else acts
            values = values.float()
            d = values.shape[-1]
            if name not in sums:
                sums[name] = np.zeros((n_texts, d), dtype=np.float32)
                maxes[name] = np.zeros((n_texts, d), dtype=np.float32)
                lasts[name] = np.zeros((n_texts, d), dtype=np.float32)
                actives[name] = np.zeros((n_texts, d), dtype=np.float32)
            target = texts_here.cpu().numpy()
            index = local[:, None].expand_as(values)
            total = torch.zeros(len(texts_here), d, device=values.device).scatter_add_(0, index, values)
            peak = torch.full((len(texts_here), d), -torch.inf, device=values.device)
            peak.scatter_reduce_(0, index, values, reduce="amax")
            active = torch.zeros(len(texts_here), d, device=values.device)
            active.scatter_add_(0, index, (values > 0).float())
            sums[name][target] += total.cpu().numpy()
            maxes[name][target] = peak.cpu().numpy()
            lasts[name][target] = values[last_row].cpu().numpy()
            actives[name][target] += active.cpu().numpy()
    safe = np.maximum(n_tokens, 1)[:, None]
    return {
        name: Pooled(
            mean=sums[name] / safe,
            max=np.where(n_tokens[:, None] > 0, maxes[name], 0.0),
            last=lasts[name],
            active_tokens=actives[name],
            n_tokens=n_tokens,
        )
        for name in sums
    }
