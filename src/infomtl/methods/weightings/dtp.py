"""DTP: dynamic task prioritisation, focal weights from a running KPI per task.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from infomtl.methods.base import LossTerms, WeightingHyper
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import LoggedWeighter, by_task
from infomtl.tasks import Task


def dtp_update(kbar: torch.Tensor, kpi: torch.Tensor, ema: float = 0.1) -> torch.Tensor:
    """DTP's KPI average: ``κ̄ ← clip((1 − α) κ̄ + α κ, 0.01, 0.99)``."""
    return ((1 - ema) * kbar + ema * kpi.float()).clamp(0.01, 0.99)


def dtp_weights(kbar: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """DTP's focal weights ``w_t = −(1 − κ̄_t)^γ log κ̄_t`` (κ̄ clipped to [0.01, 0.99])."""
    k = kbar.float().clamp(0.01, 0.99)
    return -((1 - k) ** gamma) * torch.log(k)


@dataclass
class DTPHyper(WeightingHyper):
    """``kpi_ema``: EMA rate α of the KPI (0.1); ``focal_gamma``: γ (1, ours);
    ``kpi_init``: the KPI average before any step (0.5, ours)."""

    kpi_ema: float = 0.1
    focal_gamma: float = 1.0
    kpi_init: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not 0 < self.kpi_ema <= 1:
            raise ValueError("kpi_ema must be in (0, 1]")
        if not self.focal_gamma >= 0:  # also rejects NaN
            raise ValueError("focal_gamma must be >= 0")
        if not 0 < self.kpi_init < 1:
            raise ValueError("kpi_init must be in (0, 1)")


@register_weighting
class DynamicTaskPrioritization(LoggedWeighter):
    """DTP: ``w_t = sg[−(1 − κ̄_t)^γ log κ̄_t]`` (focal weights: harder tasks weigh more).

    ``κ̄_t ← clip((1 − α) κ̄_t + α κ_t, 0.01, 0.99)`` with ``κ_t`` the batch KPI of the
    task in ``LossTerms.kpis`` (accuracy; regression clip(1 − MSE/Var, 0, 1);
    multi-label mean per-label accuracy; see :func:`task_kpi`), α = 0.1, γ = 1, and
    ``κ̄ = 0.5`` before the first step. The average is updated in :meth:`combine`
    (training mode only) *before* the step's weights are computed, so the step uses
    its own KPI. ``κ̄`` is a persistent buffer (checkpointed with the method's tensors).
    The weights are the rule's, not rescaled to mean 1.
    """

    name = "dtp"
    reference = "Guo et al., ECCV 2018 (Dynamic Task Prioritization); rule as in the MTL survey"
    Hyper = DTPHyper
    hp: DTPHyper
    kpi: torch.Tensor  # buffer: κ̄ per task
    needs_all_tasks = True

    def __init__(self, hp: DTPHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.register_buffer("kpi", torch.full((len(tasks),), float(hp.kpi_init)))

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [self.tasks[t].name for t in sorted(terms.task_losses) if t not in terms.kpis]
        if missing:
            raise ValueError(
                f"DTP needs a per-task KPI (LossTerms.kpis) but the objective gave none for "
                f"{', '.join(missing)}; fill it with infomtl.methods.weightings.common.task_kpi"
            )
        if self.training:
            with torch.no_grad():
                for t in sorted(terms.task_losses):
                    kpi = terms.kpis[t].detach().to(self.kpi.device)
                    self.kpi[t] = dtp_update(self.kpi[t], kpi, self.hp.kpi_ema)
        return super().combine(terms)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return dtp_weights(self.kpi.to(losses.device)[present], self.hp.focal_gamma).to(
            losses.dtype
        )

    def log_values(self) -> dict[str, Any]:
        w = dtp_weights(self.kpi, self.hp.focal_gamma)
        w = w / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {
            self.name: {"kpi": by_task(self.tasks, self.kpi), "weights": by_task(self.tasks, w)}
        }
