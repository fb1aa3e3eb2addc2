"""GLS: the geometric mean of the task losses.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

import torch

from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import EPS, DirectLoss


def gls_loss(losses: torch.Tensor) -> torch.Tensor:
    """GLS: ``L = exp(mean_t log(ℓ_t + ε))`` in fp32 (the geometric mean, no underflow)."""
    return torch.exp(torch.log(losses.float() + EPS).mean())


@register_weighting
class GeometricLossStrategy(DirectLoss):
    """GLS: ``L = (Π_t ℓ_t)^{1/T} = exp(mean_t log(ℓ_t + ε))``, computed in fp32.

    Effective weights ``∂L/∂ℓ_t = L / (T (ℓ_t + ε))`` (sum to 1 at equal losses): the
    geometric mean already is a mean over tasks, so ``normalize`` leaves it unchanged.
    """

    name = "gls"
    reference = "Chennupati et al., CVPR Workshops 2019 (MultiNet++, geometric loss strategy)"
    needs_all_tasks = True

    def task_scale(self, present: int) -> float:
        return 1.0

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return gls_loss(losses)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return gls_loss(losses) / (len(losses) * (losses + EPS))
