"""IMTL-L: impartial loss balancing with a learned scale per task.

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
from infomtl.tasks import Task


def imtl_l_loss(losses: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """IMTL-L: ``L = Σ_t (e^{s_t} ℓ_t − s_t)``."""
    return (torch.exp(s) * losses.float() - s).sum()


@dataclass
class IMTLLHyper(WeightingHyper):
    """``s_max``: upper bound of the learned loss scales ``s_t``."""

    s_max: float = 10.0

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.s_max):
            raise ValueError("s_max must be a finite number")


@register_weighting
class IMTLL(DirectLoss):
    """IMTL-L (loss part of IMTL): ``L = Σ_t (e^{s_t} ℓ_t − s_t)``, so ``e^{s_t} ℓ_t = 1`` at the optimum.

    ``s_t`` is learnable, init 0, no weight decay: the losses are balanced in scale.

    The bound ``s ≤ s_max`` (10) is a projection applied in place after each
    optimizer step (:meth:`on_step_end`), so the gradient is the rule's exactly.
    Effective weights ``e^{s_t}``.
    """

    name = "imtl-l"
    aliases = ("imtl_l", "imtll")
    reference = "Liu et al., ICLR 2021 (Towards Impartial Multi-task Learning), loss balance part"
    Hyper = IMTLLHyper
    hp: IMTLLHyper
    needs_all_tasks = True

    def __init__(self, hp: IMTLLHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.s = nn.Parameter(torch.zeros(len(tasks)))

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return imtl_l_loss(losses, self.s[present])

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.s.detach()[present])

    def on_step_end(self, terms: LossTerms) -> None:
        with torch.no_grad():
            self.s.clamp_(max=self.hp.s_max)

    def log_values(self) -> dict[str, Any]:
        s = self.s.detach()
        w = torch.exp(s) / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"s": by_task(self.tasks, s), "weights": by_task(self.tasks, w)}}
