"""Engine replicas for ``-M devices=0,1``: one model copy per device, requests spread over them.

Why replicas and not one sharded model: a model that fits one card decodes fastest whole on it, so
several cards serve it best as independent copies (data parallel), each with its own batcher and
worker thread; CUDA kernels release the GIL, so the copies decode at the same time. A request goes to
the replica with the fewest requests waiting or running, so ``--max-connections 64`` over two devices
makes batches of 32 on each. Greedy completions do not depend on the replica: each row decodes as it
would alone (``af_tasks.engine.generate``). Models that do not fit one card: vLLM tensor parallelism.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from af_tasks.core.devices import cuda_index


def load_replicas(model: str, devices: Sequence[str], **load_args: Any) -> list[Any]:
    """One ``GenerationEngine`` per device (loaded one after another). With compilation on, dynamo's
    recompile limit is raised by the number of replicas: each replica's decode step compiles its own
    graphs (guards on the weights' device), which would otherwise fall back to eager sooner."""
    from af_tasks.engine.generate import GenerationEngine

    engines = [GenerationEngine.load(model, device=device, **load_args) for device in devices]
    if len(engines) > 1 and any(engine.compile for engine in engines):
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 8 * len(engines))
    return engines


def on_device(engine: Any, run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` called with the engine's CUDA device current (kernels, graphs and caches of a worker
    thread go to its replica's card); unchanged on CPU."""
    index = cuda_index(str(engine.device))

    def call(*args: Any) -> Any:
        if index is None:
            return run(*args)
        import torch

        with torch.cuda.device(index):
            return run(*args)

    return call


class ReplicaBatchers:
    """``await submit(key, item)`` on the least-loaded of several ``RequestBatcher`` s (one per
    replica, each with its own worker thread); ties go to the lowest index."""

    def __init__(self, batchers: Sequence[Any]):
        """``batchers``: one per replica, each with ``submit(key, item)``, ``batch_sizes`` and ``close``
        (``RequestBatcher`` or ``SlotBatcher``)."""
        self.batchers = list(batchers)
        self.load = [0] * len(self.batchers)
        self.requests = [0] * len(self.batchers)
        """Requests sent to each replica so far (for tests and logs)."""

    @property
    def batch_sizes(self) -> list[int]:
        return [size for batcher in self.batchers for size in batcher.batch_sizes]

    async def submit(self, key: Hashable, item: Any) -> Any:
        index = min(range(len(self.batchers)), key=self.load.__getitem__)
        self.load[index] += 1
        self.requests[index] += 1
        try:
            return await self.batchers[index].submit(key, item)
        finally:
            self.load[index] -= 1

    def close(self) -> None:
        for batcher in self.batchers:
            batcher.close()
