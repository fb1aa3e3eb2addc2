"""EW: equal weighting, ``L = Σ_t ℓ_t`` (+ the objective's auxiliary term).

Weights follow the mean-1 convention (``Σ_t w_t = T``) unless ``normalize="mean"``.
"""

from __future__ import annotations

import torch

from infomtl.methods.base import LossWeighter
from infomtl.methods.registry import register_weighting


@register_weighting
class EqualWeighting(LossWeighter):
    """EW: ``w_t = 1``, so ``L = Σ_t ℓ_t`` (the papers' reference point for Δp)."""

    name = "ew"
    aliases = ("equal",)
    reference = "equal weighting (Caruana 1997)"

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(losses)
