"""Collect concurrent async requests into batches: one blocking batch call at a time, run in a thread.

Why: Inspect calls a model's ``generate`` once per sample, concurrently (up to ``--max-connections``).
A local model is fastest when those calls become one batched forward pass per decoding step, so
requests are held for a short window, grouped by a key (identical generation settings), and handed to
one worker thread as a batch; the event loop stays free meanwhile, and requests arriving during a batch
form the next one. No background task is kept: the first waiting request of a group leads it (waits the
window, runs the batch, hands every request its own result), which makes the batcher indifferent to
which event loop it runs in — Inspect runs each ``eval()`` in a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


_Pending = tuple[object, "asyncio.Future"]


@dataclass
class _LoopState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[Hashable, list[_Pending]] = field(default_factory=dict)


class RequestBatcher(Generic[Item, Result]):
    """``await submit(key, item)`` returns ``run_batch(key, items)[i]`` for this request's ``i``.

    ``run_batch`` must return one result per item, in order; if it raises, every request of that batch
    raises the same error. At most ``max_batch`` items per call; batches run one at a time (in submission
    order of their leaders) on a single worker thread."""

    def __init__(
        self,
        run_batch: Callable[[Hashable, list[Item]], Sequence[Result]],
        max_batch: int = 32,
        window_s: float = 0.05,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.batch_sizes: list[int] = []
        """Size of every batch run so far (for tests and logs)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-generate")
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, key: Hashable, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        state = self._states.setdefault(loop, _LoopState())
        future: asyncio.Future = loop.create_future()
        state.pending.setdefault(key, []).append((item, future))
        try:
            async with state.lock:
                if any(queued is future for _, queued in state.pending.get(key, [])):
                    await self._run_group(loop, state, key)  # lead: not yet taken into a batch
            return await future
        except asyncio.CancelledError:
            future.cancel()  # a batch not yet run skips it
            raise

    async def _run_group(self, loop: asyncio.AbstractEventLoop, state: _LoopState, key: Hashable) -> None:
        """Wait the window (unless the group is full), take up to ``max_batch`` live requests and run
        them; results are delivered by a callback, so a cancelled leader does not strand its batch."""
        if len(state.pending[key]) < self.max_batch and self.window_s > 0:
            await asyncio.sleep(self.window_s)
        group = [(item, future) for item, future in state.pending.pop(key, []) if not future.done()]
        batch, rest = group[: self.max_batch], group[self.max_batch :]
        if rest:
            state.pending[key] = rest
        if not batch:
            return
        running = loop.run_in_executor(self._executor, self.run_batch, key, [item for item, _ in batch])
        running.add_done_callback(functools.partial(self._deliver, batch))
        await asyncio.wait({running})  # hold the lock: arrivals meanwhile gather into the next batch

    def _deliver(self, batch: list[_Pending], running: asyncio.Future) -> None:
        error = RuntimeError("batch cancelled") if running.cancelled() else running.exception()
        results = running.result() if error is None else []
        if error is None and len(results) != len(batch):
            error = RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        if error is None:
            self.batch_sizes.append(len(batch))
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            if error is None:
                future.set_result(results[index])
            else:
                future.set_exception(error)

    def close(self) -> None:
        self._executor.shutdown(wait=False)
