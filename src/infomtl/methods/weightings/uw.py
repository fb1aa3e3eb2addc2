"""UW: uncertainty weighting with a learned log-variance per task.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from infomtl.methods.base import LossTerms, WeightingHyper
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import DirectLoss, by_task
from infomtl.tasks import Task, TaskKind


def uw_loss(losses: torch.Tensor, s: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
    """UW: ``Σ_t c_t e^{−s_t} ℓ_t + ½ s_t`` with ``c_t = ½`` for regression, else 1."""
    c = torch.where(regression, 0.5, 1.0).to(s.dtype)
    return (c * torch.exp(-s) * losses.float() + 0.5 * s).sum()


@dataclass
class UWHyper(WeightingHyper):
    """``s_min``: lower bound of the learned ``s_t = log σ_t²``."""

    s_min: float = -5.0

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.s_min):
            raise ValueError("s_min must be a finite number")


@register_weighting
class UncertaintyWeighting(DirectLoss):
    """UW: ``L = Σ_t c_t e^{−s_t} ℓ_t + ½ s_t`` with a learned log variance ``s_t = log σ_t²`` per task.

    ``c_t = 1`` (classification and multi-label: likelihoods of a categorical /
    Bernoulli), ``½`` (regression: a Gaussian likelihood); ``s_t`` init 0, no weight decay.

    The bound ``s ≥ s_min`` (−5) is a projection: :meth:`on_step_end` clamps ``s`` in
    place after each optimizer step, so the loss and its gradient are those of the
    rule exactly (a clamp inside the loss would zero the gradient and could trap s).
    Effective weights ``c_t e^{−s_t}``.
    """

    name = "uw"
    aliases = ("uncertainty",)
    reference = "Kendall, Gal & Cipolla, CVPR 2018 (homoscedastic uncertainty weighting)"
    Hyper = UWHyper
    hp: UWHyper
    _regression: torch.Tensor  # buffer: the task is a regression
    needs_all_tasks = True

    def __init__(self, hp: UWHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.s = nn.Parameter(torch.zeros(len(tasks)))
        regression = torch.tensor([t.kind is TaskKind.REGRESSION for t in tasks], dtype=torch.bool)
        self.register_buffer("_regression", regression, persistent=False)

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return uw_loss(losses, self.s[present], self._regression[present])

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        c = torch.where(self._regression[present], 0.5, 1.0)
        return c * torch.exp(-self.s.detach()[present])

    def on_step_end(self, terms: LossTerms) -> None:
        with torch.no_grad():
            self.s.clamp_(min=self.hp.s_min)

    def log_values(self) -> dict[str, Any]:
        c = torch.where(self._regression, 0.5, 1.0) / (
            self.num_tasks if self.hp.normalize == "mean" else 1
        )
        s = self.s.detach()
        return {
            self.name: {
                "s": by_task(self.tasks, s),
                "weights": by_task(self.tasks, c * torch.exp(-s)),
            }
        }
