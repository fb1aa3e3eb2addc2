"""TW: task-size weighting (fixed weights in proportion to each task's training rows).

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

from typing import Any

import torch

from infomtl.methods.base import WeightingHyper
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import LoggedWeighter, by_task
from infomtl.tasks import Task


def tw_weights(train_sizes: list[int] | torch.Tensor) -> torch.Tensor:
    """TW: ``w_t = T · N_t / Σ_s N_s`` (mean 1)."""
    n = torch.as_tensor(train_sizes, dtype=torch.float32)
    if n.ndim != 1 or len(n) == 0 or bool((n <= 0).any()):
        raise ValueError(f"TW needs a positive training size per task, got {train_sizes!r}")
    return len(n) * n / n.sum()


@register_weighting
class TaskSizeWeighting(LoggedWeighter):
    """TW: ``w_t = T · N_t / Σ_s N_s`` with ``N_t`` the task's training examples.

    Fixed weights in proportion to task size; ``normalize="mean"`` gives the
    sum-to-1 proportions ``N_t / ΣN`` (TweetEval: 0.606 sentiment … 0.035 stance).
    Runs in any regime (a task absent from a step simply has no term).
    """

    name = "tw"
    reference = "task weighting by training-set size (e.g. Sanh et al. 2019 proportional mixing)"
    _weights: torch.Tensor  # buffer

    def __init__(self, hp: WeightingHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        if len(train_sizes) != len(tasks):
            raise ValueError(
                f"TW needs one training size per task, got {len(train_sizes)} for {len(tasks)}"
            )
        self.register_buffer("_weights", tw_weights(train_sizes), persistent=False)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self._weights.to(losses.device)[present].to(losses.dtype)

    def log_values(self) -> dict[str, Any]:
        w = self._weights / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"weights": by_task(self.tasks, w)}}
