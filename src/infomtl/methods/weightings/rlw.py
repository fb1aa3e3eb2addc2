"""RLW: random loss weighting, fresh softmax-normalised weights each step.

Conventions shared by the loss-balancing weightings: :mod:`infomtl.methods.weightings.common`.
"""

from __future__ import annotations

from typing import Any

import torch

from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import LoggedWeighter, SeededRandom, SeedHyper
from infomtl.tasks import Task


def rlw_weights(noise: torch.Tensor) -> torch.Tensor:
    """RLW: ``w = T · softmax(ε)`` (so that ``Σ_t w_t ℓ_t = T · Σ_t λ_t ℓ_t``)."""
    return len(noise) * torch.softmax(noise.float(), dim=0)


@register_weighting
class RandomLossWeighting(LoggedWeighter):
    """RLW (normal): ``L = T · Σ_t λ_t ℓ_t`` with ``λ = softmax(ε)``, ``ε ~ N(0, I_T)`` drawn every step.

    ``ε`` comes from the method's own generator; the weights ``T·λ`` have mean 1.

    The generator (seed ``seed``) lives on the loss device; its state is kept in
    :meth:`extra_state`, so a resumed run draws the same sequence. Outside training
    mode (``.eval()``) no noise is drawn and ``w = 1`` (the expected weights).
    """

    name = "rlw"
    reference = "Lin et al., TMLR 2022 (Reasonable Effectiveness of Random Weighting)"
    Hyper = SeedHyper
    hp: SeedHyper
    needs_all_tasks = True

    def __init__(self, hp: SeedHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.random = SeededRandom(hp.seed)

    def draw(self, device: torch.device) -> torch.Tensor:
        """ε ~ N(0, I_T), one value per task (the same draw whatever tasks are present)."""
        return torch.randn(self.num_tasks, generator=self.random.get(device), device=device)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return torch.ones_like(losses)
        return rlw_weights(self.draw(losses.device)[present]).to(losses.dtype)

    def extra_state(self) -> dict[str, Any]:
        return {"generator": self.random.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.random.load(state.get("generator", {}))
