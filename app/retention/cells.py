"""The retention experiment's retraining-and-measure cells, one after another or one per device.

Why processes: each cell trains a LoRA (trl) and measures it with Inspect evals, and Inspect runs one
``eval`` per process at a time, so concurrent cells need processes. Each device entry gets one worker
process (``spawn``: no CUDA state is forked) that sees only its GPU (``CUDA_VISIBLE_DEVICES``, set
before torch is imported; ``cpu`` hides every GPU), and cells are handed to whichever worker is free.
A cell depends only on its own seeded inputs and writes only its own folders, so the files and
results equal a sequential run's (``af experiment retention --devices 0,1``).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from af_tasks.core.devices import cuda_index
from af_tasks.core.errors import SettingError

Cell = tuple
"""``retrain_and_measure``'s arguments before ``progress``: label, organism, rung, seed, budget,
caught, files."""


def _pin(device: str, threads: int) -> None:
    """Worker initializer: this process sees only ``device``'s GPU (as ``cuda``), or none for cpu; a GPU
    worker uses ``threads`` CPU threads (several workers may share one GPU: a small model's cells are
    bound by the CPU, and each torch process would otherwise start one thread per core)."""
    index = cuda_index(device)
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if index is None else str(index)
    if (
        index is not None
    ):  # on cpu the thread count would change float sums: cells must equal a sequential run's
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)


def _run_cell(experiment_class: type, settings: Any, grader: str | None, device: str, cell: Cell) -> dict:
    """In a worker: the experiment rebuilt from its settings (its class is pickled by name), its evals
    on the worker's device."""
    here = "cpu" if cuda_index(device) is None else "cuda"
    settings = replace(settings, model_args=settings.model_args | {"device": here})
    return experiment_class(settings, grader).retrain_and_measure(*cell, progress=print)


def run_cells(
    experiment: Any, cells: Sequence[Cell], devices: Sequence[str] | None, progress: Callable[[str], Any]
) -> Iterator[tuple[int, dict]]:
    """(index, run) of each cell as it finishes: in order, in this process, without ``devices``;
    else one worker process per device (one device too: its cells are pinned to it as well)."""
    if not devices:
        for index, cell in enumerate(cells):
            yield index, experiment.retrain_and_measure(*cell, progress)
        return
    if experiment.grader is not None and not isinstance(experiment.grader, str):
        raise SettingError("--devices: the grader must be given by name (a model object cannot be sent)")
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for item in enumerate(cells):
        todo.put(item)
    done: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    cpu_threads = max(1, (os.cpu_count() or 1) // len(devices))

    def serve(device: str) -> None:
        with ProcessPoolExecutor(
            1, mp_context=context, initializer=_pin, initargs=(device, cpu_threads)
        ) as worker:
            while not stop.is_set():
                try:
                    index, cell = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(
                        (
                            index,
                            worker.submit(
                                _run_cell, type(experiment), experiment.s, experiment.grader, device, cell
                            ).result(),
                        )
                    )
                except BaseException as error:  # handed to the caller, which stops the other workers
                    done.put((index, error))
                    return

    threads = [threading.Thread(target=serve, args=(device,), daemon=True) for device in devices]
    for thread in threads:
        thread.start()
    progress(f"retraining cells: {len(cells)} over {len(devices)} devices ({', '.join(devices)})")
    try:
        for _ in range(len(cells)):
            index, result = done.get()
            if isinstance(result, BaseException):
                raise result
            yield index, result
    finally:
        stop.set()
        for thread in threads:
            thread.join()
