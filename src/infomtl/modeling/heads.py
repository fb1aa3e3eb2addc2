"""Task heads: what sits on the shared representation ``h`` for each task.

* :class:`LinearHead`: ``y = W · Dropout(h) + b`` (the deterministic heads of EW and
  the weighting baselines).
* :class:`GaussianHead`: the probabilistic decoder of InfoMTL / VIP-MTL (Hu et al.,
  AAAI 2025 / ACL 2025): ``μ = W_μ · Dropout(h)``, ``log σ² = W_σ · h`` and, in
  training, one reparameterised sample ``z_t = μ + exp(log σ²/2) · ε``, ε ~ N(0, I).
  Prediction uses ``μ``. With ``hidden > 0`` both branches read a shared hidden
  layer ``u = GELU(W_u · Dropout(h))`` (the MLP of the paper's text); ``hidden = 0``
  is the authors' code (no hidden layer, dropout on the mean branch only).
* :class:`VarianceNormalizedGaussianHead`: VIP-MTL's head (Hu et al., ACL 2025): a
  Gaussian head whose output is divided by ``√Σ' = exp(s/2)``, Σ' the task's mixture
  variance (tracked from the batches, or learned): training sample
  ``z' = (μ + exp(log σ²/2) · ε) / exp(s/2)``, prediction ``μ / exp(s/2)``. Its output
  is a :class:`NormalizedHeadOutput`.
* :class:`TextCNNHead`: the "STL with CNN" baseline (Kim 2014) over the token states
  ``(N, L, d)``: per kernel width k a convolution with F filters, ReLU, max-pool over
  the valid windows, then ``y = W · Dropout([pool_3; pool_4; pool_5]) + b``.
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


@dataclass(kw_only=True)
class NormalizedHeadOutput(HeadOutput):
    """The output of a :class:`VarianceNormalizedGaussianHead`.

    ``mean``, ``logvar`` and ``sample`` describe the *normalised* output
    ``z' = z / exp(s/2)`` (what the task loss and the prediction use):
    ``mean = μ / exp(s/2)``, ``logvar = log σ² − s``. The head's Gaussian before the
    normalisation, ``q(z_t | h) = N(μ, σ²)``, is kept for its KL term.

    Attributes:
        raw_mean: ``(N, C)`` μ before the normalisation.
        raw_logvar: ``(N, C)`` log σ² before the normalisation.
        log_scale: the head's 0-d ``s = log Σ'`` the output was normalised with.
        penalty_log_scale: the 0-d ``log Σ'`` that VIP-MTL's ``γ·log Σ'`` term takes, with
            its gradient (the learned ``s``, or the log of the batch estimate), or ``None``
            where there is no such term (no normalisation, evaluation).
    """

    raw_mean: torch.Tensor
    raw_logvar: torch.Tensor
    log_scale: torch.Tensor
    penalty_log_scale: torch.Tensor | None = None


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
            self.trunk: nn.Sequential | None = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU())
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


#: parameter names of learned task scalars (own optimizer group, outside the clipped norm)
TASK_SCALAR_NAMES = ("log_scale",)
#: how a :class:`VarianceNormalizedGaussianHead` obtains Σ'_t
SCALE_MODES = ("estimate", "learned", "off")


class VarianceNormalizedGaussianHead(GaussianHead):
    """Gaussian head + variance normalisation (VIP-MTL, Hu et al., ACL 2025, Eq. 4–6):
    ``z' = z / √Σ'``, with ``Σ' = e^s`` the variance of the task's mixture distribution,
    approximated as in Eq. 4 by the mean of the rows' variances,
    ``Σ'_t ≈ (1/|D_t|) Σ_i mean_c σ²_ic``. Training ``z' = (μ + σ ⊙ ε) / √Σ'``,
    test ``μ / √Σ'`` (the same argmax as μ; for regression the trained output scale).

    ``mode`` says where ``s = log Σ'`` comes from:

    * ``"estimate"``: ``Σ'`` is tracked from the batches. In training the
      task's batch estimate ``b = mean σ²`` (fp32, no gradient) updates a running mean
      ``R ← (1 − m) R + m b`` (buffer ``log_scale`` = log R, init 0), and the output is
      normalised by the updated ``√R``; evaluation uses R. Σ' is then a statistic of
      the head, not a parameter: there is no ``γ·log Σ'`` term (``penalty_log_scale`` is
      ``None``), γ acts in the learned mode only.
    * ``"learned"`` (default, the paper's τ_t): ``s`` is a learnable 0-d parameter (init 0), trained with the task
      scalars' own learning rate outside the clipped norm (``--scalar-lr``).
    * ``"off"``: ``s`` is a zero buffer: no normalisation ("w/o VI").

    The output is a :class:`NormalizedHeadOutput`; ``log_scale`` is a parameter only
    in the learned mode (same state-dict key in every mode).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dropout: float = 0.0,
        hidden: int = 0,
        mode: str = "learned",
        momentum: float = 0.1,
    ) -> None:
        super().__init__(in_features, out_features, dropout, hidden)
        if mode not in SCALE_MODES:
            raise ValueError(f"mode must be one of {', '.join(SCALE_MODES)}, got {mode!r}")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.mode = mode
        self.momentum = float(momentum)
        self.learn_scale = mode == "learned"
        if self.learn_scale:
            self.log_scale = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("log_scale", torch.zeros(()))

    def forward(self, h: torch.Tensor) -> NormalizedHeadOutput:
        out = super().forward(h)
        assert out.logvar is not None
        if self.mode == "estimate" and self.training and out.mean.shape[0] > 0:
            with torch.no_grad():  # Eq. 4 on the task's batch rows, into the running mean
                batch = torch.exp(out.logvar.detach().float()).mean()
                running = (1 - self.momentum) * torch.exp(self.log_scale.float()) + self.momentum * batch
                self.log_scale.copy_(running.log().to(self.log_scale.dtype))
        s = self.log_scale if self.learn_scale else self.log_scale.detach()
        penalty = s if self.mode == "learned" else None
        inv_scale = torch.exp(-0.5 * s).to(out.mean.dtype)  # 1 / √Σ'
        return NormalizedHeadOutput(
            mean=out.mean * inv_scale,
            logvar=out.logvar - s.to(out.logvar.dtype),
            sample=None if out.sample is None else out.sample * inv_scale,
            raw_mean=out.mean,
            raw_logvar=out.logvar,
            log_scale=s,
            penalty_log_scale=penalty,
        )


class TextCNNHead(nn.Module):
    """TextCNN over token states: ``y = W · Dropout(concat_k max_p ReLU(conv_k(S))_p) + b``.

    ``S`` is ``(N, L, d)`` with an attention mask ``(N, L)``. Padding positions are
    zeroed before the convolutions, and the max runs only over *valid* windows (those
    holding no padding token: ``-inf`` elsewhere), so padding never wins the max. A row
    shorter than a kernel is zero-padded to the kernel width and its one window (all
    its tokens) is the valid one. Parameters: ``d·F·Σk + F·K + F·K·C + C`` for K kernel
    widths (``768·12·216 + 3·216 + 3·216·C + C`` ≈ 2.0M for kernels 3/4/5, d = 768).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        filters: int = 216,
        kernels: tuple[int, ...] = (3, 4, 5),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.kernels = tuple(int(k) for k in kernels)
        self.convs = nn.ModuleList(nn.Conv1d(in_features, filters, k) for k in self.kernels)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(filters * len(self.kernels), out_features)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> HeadOutput:
        mask = attention_mask.float()
        x = states * mask.unsqueeze(-1).to(states.dtype)
        short = max(self.kernels) - x.shape[1]
        if short > 0:
            x = nn.functional.pad(x, (0, 0, 0, short))
            mask = nn.functional.pad(mask, (0, short))
        x = x.transpose(1, 2)  # (N, d, L)
        lengths = mask.sum(1, keepdim=True)
        pooled = []
        for k, conv in zip(self.kernels, self.convs, strict=True):
            # a window is valid when it holds min(length, k) real tokens (no padding)
            valid = mask.unfold(1, k, 1).sum(-1) >= lengths.clamp(max=k)
            feats = conv(x).masked_fill(~valid.unsqueeze(1), float("-inf"))
            pooled.append(torch.relu(feats.amax(dim=-1)))
        return HeadOutput(mean=self.linear(self.dropout(torch.cat(pooled, dim=1))))
