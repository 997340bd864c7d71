"""A worker thread that feeds one engine's slot decoder from a queue: continuous batching for callers
that submit requests one by one (the ``organism/`` provider; compute core, no Inspect).

Why a thread: decoding blocks for the whole evaluation, while requests keep arriving from the caller's
event loop; the thread admits waiting requests into free slots at every poll of the decoder
(``af_tasks.engine.slots.serve``) and hands each completion back the moment its row ends. It exits when
the queue stays empty and nothing decodes, and the next ``submit`` starts it again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

IDLE_EXIT_S = 2.0
"""How long the idle worker waits for a request before it exits."""

Deliver = Callable[[Any], None]
"""Called once per request, from the worker thread, with ``(Completion, rows decoding)`` or an
exception."""


class SlotServer:
    """``submit(prompt, params, deliver)``: decode ``prompt`` with ``params`` in one of ``slots`` slots
    of ``engine`` (a ``GenerationEngine`` whose ``slots`` is on). ``window_s``: when the decoder is idle,
    how long the first request waits for others so their prompts prefill together."""

    def __init__(self, engine: Any, slots: int, window_s: float = 0.05, device_index: int | None = None):
        self.engine = engine
        self.slots = slots
        self.window_s = window_s
        self.device_index = device_index
        self.requests = 0
        """Requests submitted so far (for tests and logs)."""
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._running = False
        self._pending: dict[int, Deliver] = {}
        self._occupied = 0
        """Requests in the decoder's slots; each completion reports the count after its admission as its
        batch size."""
        self._requests: dict[int, tuple[list[int], Any, int]] = {}
        self._closed = False

    def submit(self, prompt: list[int], params: Any, deliver: Deliver, occurrence: int = 0) -> None:
        """``occurrence``: how many times the caller has asked this prompt before in its run (picks
        the request's random stream, ``request_seed``)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine's server is closed")
            self.requests += 1
            key = self.requests
            self._pending[key] = deliver
            self._queue.put((key, prompt, params, occurrence))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="slot-decode", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _take(self, n: int, block: bool) -> list | None:
        """Up to ``n`` queued requests; when ``block`` (nothing decoding) waits for one, then the window
        for more; None once idle past ``IDLE_EXIT_S`` (the worker is marked stopped under the lock, so
        a request submitted meanwhile starts a new one)."""
        items = []
        if block:
            try:
                items.append(self._queue.get(timeout=IDLE_EXIT_S))
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running = False
                        return None
                items.append(self._queue.get_nowait())
            if self.window_s > 0:
                time.sleep(self.window_s)
        while len(items) < n:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for key, prompt, params, _ in items:
            if params.stop:  # stop strings: through the engine's generate path, one request at a time
                self._finish(key, self._alone(prompt, params))
        slotted = [item for item in items if not item[2].stop]
        self._occupied += len(slotted)
        for key, prompt, params, _ in slotted:
            self._requests[key] = (prompt, params, self._occupied)
        return [
            (key, self.engine.slot_request(prompt, params, seen)) for key, prompt, params, seen in slotted
        ]

    def _alone(self, prompt: list[int], params: Any) -> Any:
        try:
            [completion] = self.engine.generate_ids([prompt], params)
            return completion, 1
        except Exception as error:  # noqa: BLE001 - handed to the request's caller
            return error

    def _finish(self, key: int, outcome: Any) -> None:
        deliver = self._pending.pop(key, None)
        if deliver is not None:
            deliver(outcome)

    def _run(self) -> None:
        from contextlib import ExitStack

        from af_tasks.engine.slots import serve

        try:
            with ExitStack() as stack:
                import torch

                stack.enter_context(torch.inference_mode())
                if self.device_index is not None:
                    stack.enter_context(torch.cuda.device(self.device_index))
                decoder = self.engine.slot_decoder(self.slots, 1)

                def deliver(key: int, result: Any) -> None:
                    prompt, params, occupied = self._requests.pop(key)
                    self._occupied -= 1
                    self._finish(key, (self.engine._completion(prompt, result.tokens, params), occupied))

                serve(decoder, self._take, deliver)
        except Exception as error:  # noqa: BLE001 - every waiting request gets it
            with self._lock:
                self._running = False
                pending, self._pending = self._pending, {}
                while not self._queue.empty():
                    self._queue.get_nowait()
            self._occupied = 0
            self._requests = {}
            for deliver_to in pending.values():
                deliver_to(error)
