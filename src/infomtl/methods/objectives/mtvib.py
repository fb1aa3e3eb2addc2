"""MT-VIB (Qian et al., "Multi-Task Variational Information Bottleneck", 2020): one
shared Gaussian bottleneck between the encoder and all task heads.

    μ = W_μ h,   σ = softplus(W_σ h − 5),   z = μ + σ ⊙ ε  (training),  z = μ  (test)
    ŷ_t = V_t z + c_t                       (a linear head K → C_t per task)
    L = Σ_t UW(ℓ_t) + β · mean_rows Σ_{j=1..K} KL(N(μ_j, σ_j²) ‖ N(0, 1))

The KL is the per-row KL of the K-dimensional bottleneck to N(0, I) **summed over
the K dimensions and averaged over all rows of the step** (it is shared by every
task, so it is one auxiliary term, not part of any ℓ_t). The UW part is the
weighting: MT-VIB's ``default_weighting`` is ``uw`` (``--weighting`` overrides it,
e.g. ``mt-vib --weighting ew``). The −5 shift starts σ at softplus(−5) ≈ 0.0067, so
early training is not drowned in noise.

Each head returns ``mean`` = V_t μ + c_t (prediction, also in training) and, in
training, ``sample`` = V_t z + c_t (what the task loss uses). Extras: ``mu``, ``sigma``
``(B, K)``. ``head_dropout`` applies to z before each head; ``head_hidden`` is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infomtl.data.encoding import Batch
from infomtl.methods.base import Hyper, LossTerms, Objective
from infomtl.methods.registry import register_objective
from infomtl.methods.weightings.common import task_kpi
from infomtl.modeling.bounds import gaussian_kl
from infomtl.modeling.heads import HeadOutput
from infomtl.modeling.losses import task_loss
from infomtl.modeling.model import ModelOutput

#: the shift inside σ = softplus(W_σ h − 5) (Qian et al.)
SIGMA_SHIFT = 5.0
#: floor on σ before its logarithm (σ underflows to 0 only for pre-activations < −100)
SIGMA_FLOOR = 1e-8


def vib_kl(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-row ``KL(N(μ, diag σ²) ‖ N(0, I))`` summed over the last dimension: ``(B,)``."""
    logvar = 2.0 * torch.log(sigma.float().clamp_min(SIGMA_FLOOR))
    return gaussian_kl(mu, logvar).sum(dim=-1)


@dataclass
class MTVIBHyper(Hyper):
    """``bottleneck_dim`` K = 256 and ``vib_beta`` β = 1e-3 are ours (sweep 1e-4..1e-2)."""

    bottleneck_dim: int = 256
    vib_beta: float = 1e-3

    def validate(self) -> None:
        if not self.bottleneck_dim > 0:
            raise ValueError("bottleneck_dim must be > 0")
        if not self.vib_beta >= 0:  # also rejects NaN
            raise ValueError("vib_beta must be >= 0")


class VIBDecoder(nn.Module):
    """The shared bottleneck ``z`` and one linear head per task on it."""

    def __init__(self, hidden_size: int, dim: int, outputs: list[int], dropout: float) -> None:
        super().__init__()
        self.mu = nn.Linear(hidden_size, dim)
        self.sigma = nn.Linear(hidden_size, dim)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(dim, c) for c in outputs)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Decoder parameters every task's loss reaches (for gradient aggregators such as
        PCGrad, beside the encoder's); per-task parameters are not among them."""
        return list(self.mu.parameters()) + list(self.sigma.parameters())

    def forward(
        self, h: torch.Tensor, rows: dict[int, torch.Tensor]
    ) -> tuple[dict[int, HeadOutput], dict[str, torch.Tensor]]:
        mu = self.mu(h)
        sigma = F.softplus(self.sigma(h) - SIGMA_SHIFT)
        z = mu + sigma * torch.randn_like(mu) if self.training else None
        outputs = {}
        for t, r in rows.items():
            head = self.heads[t]
            mean = head(self.dropout(mu.index_select(0, r)))
            sample = head(self.dropout(z.index_select(0, r))) if z is not None else None
            outputs[t] = HeadOutput(mean=mean, sample=sample)
        return outputs, {"mu": mu, "sigma": sigma}


@register_objective
class MTVIB(Objective):
    """Shared Gaussian bottleneck z ~ N(W_μ h, σ²), linear heads on z, + β·KL(q(z|h) ‖ N(0, I)).

    σ = softplus(W_σ h − 5); weighted by UW unless another weighting is chosen (see the
    module docstring for the full rule).
    """

    name = "mt-vib"
    aliases = ("mtvib",)
    reference = "Qian et al. 2020, Multi-Task Variational Information Bottleneck (arXiv:2007.00339)"
    Hyper = MTVIBHyper
    hp: MTVIBHyper
    shared_decoder = True
    default_weighting = "uw"

    def build_decoder(self) -> VIBDecoder:
        return VIBDecoder(
            self.hidden_size, self.hp.bottleneck_dim, [t.num_outputs for t in self.tasks],
            self.head_dropout,
        )

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        losses, kpis = {}, {}
        parts: dict[tuple[str, int | None], torch.Tensor] = {}
        for t, o in out.heads.items():
            task, y = self.tasks[t], batch.labels[t]
            losses[t] = task_loss(task, o.train_output, y)
            kpis[t] = task_kpi(task, o.train_output, y)
            parts[("ce", t)] = losses[t].detach()
        kl = vib_kl(out.extras["mu"], out.extras["sigma"]).mean()
        parts[("kl", None)] = kl.detach()
        return LossTerms(losses, self.hp.vib_beta * kl, parts, kpis)
