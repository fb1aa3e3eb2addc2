"""Information-theoretic quantities shared by the methods and the analyses.

* :func:`info_nce`: InfoNCE between two views, ``L = CE(q kᵀ / τ, arange(B))`` with
  ``q, k`` the L2-normalised views (van den Oord et al. 2018). ``log B − L`` is a
  lower bound on I(X; Z) (InfoMTL's SIMax term).
* :func:`gaussian_kl`: ``KL(N(μ, diag e^{logvar}) ‖ N(0, I))`` per dimension,
  ``−½(1 + logvar − μ² − e^{logvar})``.
* :func:`reduce_kl`: from per-row KLs to one number: ``mean``, ``sum``, or
  ``class_balanced`` (InfoMTL's TIMin: mean within each class present in the batch,
  summed over those classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KL_REDUCTIONS = ("class_balanced", "mean", "sum")


def info_nce(h: torch.Tensor, h_pos: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """InfoNCE loss with in-batch negatives, one direction, no detach; in fp32 even under
    autocast (the similarity matmul would otherwise run in bf16/fp16)."""
    with torch.autocast(h.device.type, enabled=False):
        q = F.normalize(h.float(), dim=-1)
        k = F.normalize(h_pos.float(), dim=-1)
        logits = q @ k.T / tau
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension ``KL(N(μ, σ²) ‖ N(0, 1))`` (same shape as ``mu``)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def reduce_kl(
    kl_rows: torch.Tensor,
    mode: str = "class_balanced",
    labels: torch.Tensor | None = None,
    num_classes: int = 0,
) -> torch.Tensor:
    """Reduce per-row KLs ``(N,)`` to a scalar.

    ``class_balanced`` (classification only): ``Σ_{c present} mean_{i: y_i = c} kl_i``,
    vectorised with ``scatter_add`` (no ``bincount``, whose output size costs a host
    synchronisation on a GPU); without labels it falls back to the
    mean (regression, as the authors do).
    """
    if mode == "mean" or (mode == "class_balanced" and labels is None):
        return kl_rows.mean()
    if mode == "sum":
        return kl_rows.sum()
    if mode != "class_balanced":
        raise ValueError(f"unknown kl_reduction {mode!r}; expected one of {KL_REDUCTIONS}")
    if num_classes < 1:
        raise ValueError("reduce_kl: class_balanced needs num_classes >= 1")
    assert labels is not None  # class_balanced without labels returned the mean above
    sums = torch.zeros(num_classes, dtype=kl_rows.dtype, device=kl_rows.device)
    sums = sums.scatter_add(0, labels, kl_rows)
    counts = torch.zeros_like(sums).scatter_add(0, labels, torch.ones_like(kl_rows))
    return (sums / counts.clamp_min(1.0)).sum()
