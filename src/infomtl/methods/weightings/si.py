"""SI: scale-invariant loss, the sum of the task losses' logarithms.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

import torch

from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import DirectLoss

#: SI's floor on a task loss before its logarithm
SI_FLOOR = 1e-4


def si_loss(losses: torch.Tensor) -> torch.Tensor:
    """SI: ``L = Σ_t log max(ℓ_t, 1e-4)``."""
    return losses.float().clamp_min(SI_FLOOR).log().sum()


@register_weighting
class ScaleInvariant(DirectLoss):
    """SI: ``L = Σ_t log max(ℓ_t, 1e-4)``.

    Gradient ``Σ_t ∇ℓ_t / ℓ_t``: the effective weights are ``1/ℓ_t`` (0 where the loss
    is below the floor, whose gradient the clamp stops).
    """

    name = "si"
    reference = (
        "scale-invariant loss (log of each task loss), e.g. Lin et al. 2022 / Navon et al. 2022"
    )
    needs_all_tasks = True

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return si_loss(losses)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.where(losses > SI_FLOOR, 1 / losses.clamp_min(SI_FLOOR), 0.0)
