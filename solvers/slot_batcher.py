"""Inspect's concurrent ``generate`` calls → the engine's continuous-batching server.

Why: ``af_tasks.engine.server.SlotServer`` decodes in its own thread and reports each completion
through a callback; Inspect awaits each sample's call in an event loop. This bridges the two with one
future per request (the same ``submit(key, item)`` shape as ``RequestBatcher``, so replicas take either).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import Counter
from typing import Any


class SlotBatcher:
    """``await submit(params, prompt)`` → ``(Completion, rows decoding)`` from a ``SlotServer``.

    Each request tells the server how many times its event loop has asked this prompt with this seed
    before: Inspect runs each ``eval()`` in a fresh loop, so an eval's epochs of one sample draw
    different answers and a rerun of the eval (in this process or another) draws the same ones."""

    def __init__(self, server: Any):
        self.server = server
        self._seen: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Counter] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def batch_sizes(self) -> list[int]:
        return []

    async def submit(self, params: Any, prompt: list[int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def settle(outcome: Any) -> None:
            if future.done():  # the sample was cancelled meanwhile
                return
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        def deliver(outcome: Any) -> None:  # on the server's thread
            with contextlib.suppress(RuntimeError):  # the eval's loop is closed: nobody awaits this
                loop.call_soon_threadsafe(settle, outcome)

        seen = self._seen.setdefault(loop, Counter())
        key = (params.seed, tuple(prompt))
        occurrence = seen[key]
        seen[key] += 1
        self.server.submit(prompt, params, deliver, occurrence)
        return await future

    def close(self) -> None:
        self.server.close()
