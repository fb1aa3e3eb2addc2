"""Task heads: what sits on the shared representation ``h`` for each task.

* :class:`LinearHead`: ``y = W · Dropout(h) + b`` (the deterministic heads of EW and
  the weighting baselines).
* :class:`GaussianHead`: the probabilistic decoder of InfoMTL / VIP-MTL (Hu et al.,
  AAAI 2025 / ACL 2025): ``μ = W_μ · Dropout(h)``, ``log σ² = W_σ · h`` and, in
  training, one reparameterised sample ``z_t = μ + exp(log σ²/2) · ε``, ε ~ N(0, I).
  Prediction uses ``μ``. With ``hidden > 0`` both branches read a shared hidden
  layer ``u = GELU(W_u · Dropout(h))`` (the MLP of the paper's text); ``hidden = 0``
  is the authors' code (no hidden layer, dropout on the mean branch only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class HeadOutput:
    """A head's output on its task's rows.

    Attributes:
        mean: ``(N, C)`` logits or regression values; used for prediction.
        logvar: ``(N, C)`` log-variance of a Gaussian head, else ``None``.
        sample: ``(N, C)`` training sample of a Gaussian head, else ``None``.
    """

    mean: torch.Tensor
    logvar: torch.Tensor | None = None
    sample: torch.Tensor | None = None

    @property
    def train_output(self) -> torch.Tensor:
        """What the task loss is computed on: the sample if there is one, else the mean."""
        return self.sample if self.sample is not None else self.mean


class LinearHead(nn.Module):
    """``y = W · Dropout_p(h) + b``."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, h: torch.Tensor) -> HeadOutput:
        return HeadOutput(mean=self.linear(self.dropout(h)))


class GaussianHead(nn.Module):
    """Gaussian head ``q(z_t | h) = N(μ(h), diag σ²(h))`` in the label space."""

    def __init__(
        self, in_features: int, out_features: int, dropout: float = 0.0, hidden: int = 0
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = hidden
        if hidden > 0:
            self.trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU())
            width = hidden
        else:
            self.trunk = None
            width = in_features
        self.mean = nn.Linear(width, out_features)
        self.logvar = nn.Linear(width, out_features)

    def forward(self, h: torch.Tensor) -> HeadOutput:
        if self.trunk is not None:
            u = self.trunk(self.dropout(h))
            mu, logvar = self.mean(u), self.logvar(u)
        else:
            mu, logvar = self.mean(self.dropout(h)), self.logvar(h)
        sample = None
        if self.training:
            sample = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return HeadOutput(mean=mu, logvar=logvar, sample=sample)
