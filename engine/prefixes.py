"""Stored prompt prefixes for the slot decoder: which to keep, which a prompt matches (compute core).

Why: an evaluation's prompts share most of their tokens (system prompt and chat template: 632 of ~775 in
``free_tier``). Their K/V are the same in every prompt, so the slot decoder computes them once, keeps
them here and copies them into a newcomer's slot (``af_tasks.engine.slots``). This module holds the
policy: a shortest useful match, a few entries dropped least recently used first, and a memory guard so
that keeping a prefix never takes memory the cache's growth needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PREFIX_MIN = 32
"""Fewest leading prompt tokens shared with a stored prefix worth reusing (below it: prefilled whole)."""

PREFIX_ENTRIES = 4
"""Prefixes kept at once (least recently used dropped first): an evaluation whose conditions differ in
the system prompt has one per condition."""

PREFIX_MEMORY_SHARE = 0.1
"""A prefix is stored only if its K/V take at most this share of the device memory left: reuse saves
compute, and must never be what runs the cache's growth out of memory."""

Tokens = tuple[int, ...]


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading items all ``sequences`` share."""
    if not sequences:
        return 0
    shortest = min(len(sequence) for sequence in sequences)
    first = sequences[0]
    for index in range(shortest):
        if any(sequence[index] != first[index] for sequence in sequences[1:]):
            return index
    return shortest


class PrefixStore:
    """Prefixes and their per-layer (keys, values) [kv_heads, len(tokens), head_dim], the most recently
    used last. ``bytes_per_token``: one token's K/V over all layers."""

    def __init__(self, device: Any, bytes_per_token: int):
        self.device = device
        self.bytes_per_token = bytes_per_token
        self._entries: dict[Tokens, list[tuple[Any, Any]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, prompt: Sequence[int]) -> tuple[Tokens, int]:
        """The stored prefix sharing most leading tokens with ``prompt`` and how many it shares,
        leaving ``prompt``'s last token to prefill (its logits choose the first new token); ((), 0)
        when fewer than ``PREFIX_MIN``."""
        best, length = (), 0
        for tokens in self._entries:
            shared = min(common_prefix([prompt, tokens]), len(prompt) - 1)
            if shared > length:
                best, length = tokens, shared
        return (best, length) if length >= PREFIX_MIN else ((), 0)

    def fits(self, length: int) -> bool:
        """Whether a prefix of ``length`` tokens may be stored (``PREFIX_MEMORY_SHARE``)."""
        from af_tasks.engine.memory import available_bytes

        free = available_bytes(self.device)
        return free is None or self.bytes_per_token * length <= PREFIX_MEMORY_SHARE * free

    def use(self, tokens: Tokens) -> list[tuple[Any, Any]]:
        """A stored prefix's per-layer K/V, marked most recently used."""
        self._entries[tokens] = self._entries.pop(tokens)
        return self._entries[tokens]

    def add(self, tokens: Tokens, layers: list[tuple[Any, Any]]) -> None:
        """Store ``tokens``' per-layer K/V, dropping the least recently used beyond ``PREFIX_ENTRIES``."""
        self._entries.pop(tokens, None)
        self._entries[tokens] = layers
        while len(self._entries) > PREFIX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))


def group_newcomers(prompts: Sequence[Sequence[int]], indices: Sequence[int]) -> list[tuple[list[int], int]]:
    """The prompts at ``indices`` grouped by their first ``PREFIX_MIN`` tokens, each group with the
    leading tokens all its members share (each keeping its last token): a group of two or more sharing
    ``PREFIX_MIN`` is worth computing once."""
    groups: dict[Tokens, list[int]] = {}
    for index in indices:
        groups.setdefault(tuple(prompts[index][:PREFIX_MIN]), []).append(index)
    return [
        (members, min(common_prefix([prompts[i] for i in members]), *(len(prompts[i]) - 1 for i in members)))
        for members in groups.values()
    ]
