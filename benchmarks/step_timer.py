"""Wall time of each optimiser step of a transformers Trainer, synchronised with the GPU."""

from __future__ import annotations

import time


def step_timer():
    """A ``TrainerCallback`` whose ``times`` lists each step's seconds (the first includes warm-up)."""
    import torch
    from transformers import TrainerCallback

    def synchronize() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize()
            self.times.append(time.perf_counter() - self.started)

    return StepTimer()
