"""VMTL's pure rules (:mod:`infomtl.methods.objectives.vmtl`, Shen et al., NeurIPS 2021):
the Gaussian mixture prior, the KL between diagonal Gaussians, the Gumbel-softmax mixing
weights, the rows' attention over other tasks' rows and the KL anneal."""

from __future__ import annotations

import torch

#: floor on variances inside the KLs (the authors add 1e-6)
VAR_FLOOR = 1e-6
#: a logit small enough that exp() underflows to 0 (masked tasks)
_MASKED = -1e9



def mixture_prior(
    weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``N(Σ_i a_i μ_i, Σ_i a_i² v_i)`` over the first dimension of ``means``/``variances``."""
    shape = (-1,) + (1,) * (means.ndim - 1)
    a = weights.reshape(shape).to(means.dtype)
    return (a * means).sum(0), (a.pow(2) * variances).sum(0)


def gaussian_kl_between(
    mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor
) -> torch.Tensor:
    """Element-wise ``KL(N(μ_q, v_q) ‖ N(μ_p, v_p))`` (fp32, variances floored at 1e-6)."""
    mu_q, mu_p = mu_q.float(), mu_p.float()
    var_q, var_p = var_q.float().clamp_min(VAR_FLOOR), var_p.float().clamp_min(VAR_FLOOR)
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0)


def mixing_weights(
    logits: torch.Tensor, allowed: torch.Tensor, tau: float, gumbel: bool
) -> torch.Tensor:
    """Gumbel-softmax mixing weights ``(T, T)``: row t is ``softmax((log softmax π_t + g)/τ)``
    restricted to (renormalised over) the tasks ``allowed[t]``; a row with none allowed is 0.

    ``gumbel=False`` drops the noise (evaluation).
    """
    logits = logits.float()
    masked = torch.where(allowed, logits, torch.full_like(logits, _MASKED))
    y = torch.log_softmax(masked, dim=-1)
    if gumbel:
        u = torch.rand_like(y).clamp(1e-10, 1.0 - 1e-7)
        y = y - torch.log(-torch.log(u))
    a = torch.softmax(y / tau, dim=-1)
    return a * allowed.to(a.dtype)


def row_attention(similarity: torch.Tensor, tau: float) -> torch.Tensor:
    """Attention of each row over candidate rows from their similarities ``(B, N)``:
    ``softmax(similarity / τ)``; ``τ = 0`` puts all weight on the most similar row."""
    if tau > 0:
        return torch.softmax(similarity / tau, dim=-1)
    nearest = similarity.argmax(dim=-1, keepdim=True)
    return torch.zeros_like(similarity).scatter_(-1, nearest, 1.0)


def anneal_factor(step: int, anneal_steps: int) -> float:
    """``λ = min(1, step / anneal_steps)`` (1 when ``anneal_steps`` is 0)."""
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, step / anneal_steps)
