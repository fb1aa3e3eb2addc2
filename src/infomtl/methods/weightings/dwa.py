"""DWA: dynamic weight average from the rate of change of each task's loss.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from infomtl.methods.base import LossTerms, WeightingHyper
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import EPS, LoggedWeighter, by_task
from infomtl.tasks import Task


def dwa_weights(prev: torch.Tensor, prev2: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """DWA: ``w = T · softmax(r / temperature)``, ``r_t = L̄_t(e−1) / (L̄_t(e−2) + ε)``."""
    r = prev.float() / (prev2.float() + EPS)
    return len(r) * torch.softmax(r / temperature, dim=0)


@dataclass
class DWAHyper(WeightingHyper):
    """``temperature`` of the softmax (2); ``window`` = 0: the paper's epoch rule; > 0:
    the step-window variant (loss means over consecutive windows of that many steps)."""

    temperature: float = 2.0
    window: int = 0

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:  # also rejects NaN
            raise ValueError("temperature must be > 0")
        if self.window < 0:
            raise ValueError("window must be >= 0 (0 = epoch rule)")


@register_weighting
class DynamicWeightAverage(LoggedWeighter):
    """DWA: ``w = T · softmax(r / 2)``, ``r_t = L̄_t(e−1) / (L̄_t(e−2) + ε)``.

    ``L̄_t`` are mean training losses: per epoch (from ``on_epoch_end``, ``window=0``,
    the paper's rule), or per window of ``window`` consecutive optimizer steps
    (``on_step_end``; windows run across epoch boundaries; for short fine-tuning).
    ``w = 1`` until two means exist (the first two epochs / windows). The last two
    means and a window in progress are kept in :meth:`extra_state`.
    """

    name = "dwa"
    reference = "Liu, Johns & Davison, CVPR 2019 (MTAN, dynamic weight average)"
    Hyper = DWAHyper
    hp: DWAHyper
    _history: torch.Tensor  # buffers (rows: L̄(e−2), L̄(e−1)) and the window in progress
    _window_sum: torch.Tensor
    needs_all_tasks = True

    def __init__(self, hp: DWAHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        t = len(tasks)
        # rows: L̄(e−2), L̄(e−1); `_filled` of them are real
        self.register_buffer("_history", torch.zeros(2, t), persistent=False)
        self.register_buffer("_window_sum", torch.zeros(t), persistent=False)
        self._filled = 0
        self._window_count = [0] * t
        self._window_steps = 0

    def _push(self, means: torch.Tensor) -> None:
        with torch.no_grad():
            self._history[0].copy_(self._history[1])
            self._history[1].copy_(means.detach().float())
        self._filled = min(self._filled + 1, 2)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self._filled < 2:
            return torch.ones_like(losses)
        history = self._history.to(losses.device)
        w = dwa_weights(history[1][present], history[0][present], self.hp.temperature)
        return w.to(losses.dtype)

    def current_weights(self) -> torch.Tensor:
        """The ``(T,)`` weights the next step uses (mean 1, before ``normalize``)."""
        if self._filled < 2:
            return torch.ones(self.num_tasks, device=self._history.device)
        return dwa_weights(self._history[1], self._history[0], self.hp.temperature)

    def on_step_end(self, terms: LossTerms) -> None:
        if self.hp.window <= 0:
            return
        with torch.no_grad():
            for t, value in terms.task_losses.items():
                self._window_sum[t] += value.detach().float().to(self._window_sum.device)
                self._window_count[t] += 1
        self._window_steps += 1
        if self._window_steps >= self.hp.window:
            means = torch.stack(
                [self._window_sum[t] / max(1, c) for t, c in enumerate(self._window_count)]
            )
            self._push(means)
            self._window_sum.zero_()
            self._window_count = [0] * self.num_tasks
            self._window_steps = 0

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        if self.hp.window <= 0:
            self._push(mean_losses.to(self._history.device))

    def extra_state(self) -> dict[str, Any]:
        return {
            "history": self._history[2 - self._filled :].tolist(),
            "window_sum": self._window_sum.tolist(),
            "window_count": list(self._window_count),
            "window_steps": self._window_steps,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        history = state.get("history", [])[-2:]
        with torch.no_grad():
            self._history.zero_()
            for row, values in zip(range(2 - len(history), 2), history, strict=True):
                self._history[row].copy_(torch.tensor(values, dtype=torch.float32))
            self._window_sum.copy_(torch.tensor(state.get("window_sum", [0.0] * self.num_tasks)))
        self._filled = len(history)
        self._window_count = [int(c) for c in state.get("window_count", [0] * self.num_tasks)]
        self._window_steps = int(state.get("window_steps", 0))

    def log_values(self) -> dict[str, Any]:
        w = self.current_weights() / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"weights": by_task(self.tasks, w)}}
