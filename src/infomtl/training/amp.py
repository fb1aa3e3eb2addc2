"""A run's mixed precision: autocast and, for fp16, loss scaling.

``accelerate`` keeps one mixed precision per process (its ``AcceleratorState`` is a
singleton that refuses a second value), while one process may train several runs of
different precisions (a sweep's rows in fp32 and bf16, single-task runs). So the trainer
builds its ``Accelerator`` without mixed precision and the run's precision lives here:

* ``autocast()``: ``torch.autocast`` to bf16 / fp16 on the run's device (a no-op for ``no``);
* fp16 only: a ``torch.amp.GradScaler`` — :meth:`backward` scales the loss,
  :meth:`unscale` unscales the gradients before clipping, :meth:`step` skips steps whose
  gradients are not finite and updates the scale. Its state travels with ``last/``.

Under several processes the gradients are averaged before the step, so every process
takes the same skip decision and keeps the same scale.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast and the fp16 ``GradScaler`` of one run (module docstring)."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.dtype: torch.dtype | None = DTYPES.get(precision)
        self.device_type = device.type
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler(device.type) if precision == "fp16" else None)

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Make ``.grad`` the true gradients (before clipping); once per step."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
