"""PCGrad: projecting conflicting gradients (Yu et al., NeurIPS 2020).

With ``g_t = ∇_{θ_shared} ℓ_t``: for each task i, ``g̃_i = g_i``; then for every other
task j in random order,

    if g̃_i · g_j < 0:   g̃_i ← g̃_i − (g̃_i · g_j) / (‖g_j‖² + ε) · g_j

and the shared parameters receive ``Σ_i g̃_i``. Each head receives its own task's
gradient, and the objective's auxiliary term (``LossTerms.aux``, e.g. InfoMTL's
``α·L_NCE``) adds its plain gradient to every parameter it touches.

Implementation (exact, on the device, no host synchronisation; the per-task gradients
and the one backward are :mod:`infomtl.methods.aggregation`'s, for every option):

1. The task gradients ``g`` ``(T, N)`` of the shared parameters (``grad_space=params``,
   N = P parameters) or of the representation (``grad_space=rep``, the rows of
   ``∂ℓ_t/∂h`` summed over the batch, N = d), taken with ``grads=split`` (the default:
   over a step encoded task by task, each task's backward over its own rows), ``loop``
   or ``batched`` into one preallocated fp32 buffer; a task absent from the step has a
   zero row and takes no part.
2. The projections run in the span of the gradients: with the Gram matrix
   ``G = g gᵀ`` (one ``T × N`` matmul), ``g̃_i = Σ_k A_ik g_k`` and
   ``g̃_i · g_j = (A G)_ij``, so the sequential rule is evaluated on ``T × T``
   coefficients (:func:`pcgrad_coefficients`), branch-free (``min(g̃_i·g_j, 0)``), and
   ``Σ_i g̃_i = (1ᵀA) g``: PCGrad is the combination ``c = 1ᵀA`` of the task gradients
   (:meth:`PCGrad.coefficients`).
3. One engine backward gives the shared parameters ``Σ_i g̃_i + ∇aux`` (in the rep
   space ``Jᵀ Σ_k c_k r_k + ∇aux``, ``r_k`` the per-row representation gradients), every
   head its own task's gradient (under ``split`` the backward of a surrogate carrying
   those gradients, with no second pass through the encoder). Under fp16 the run's ``GradScaler`` (training/amp.py)
   scales the whole update; the per-task gradients of step 1 are taken of the unscaled
   losses, so a very small gradient may underflow in the fp16 backward: prefer bf16
   with PCGrad. Under several processes the ``params`` buffer is averaged over the
   processes **before** the projection (it is then the global per-task gradients of
   one process exactly; projecting each process's own gradients and averaging the
   results would not be, the projection is not linear), and every process projects the
   same ``g`` with the same task order (same seed and generator state).

The random order comes from the method's own generator (``seed``; −1 = the run's
seed), whose state is kept in :meth:`extra_state`. Statistics for the log: the mean
cosine similarity of pairs of task gradients and the fraction of ordered pairs
(i, j) whose projection fired, accumulated on the device and read at epoch end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from infomtl.methods.aggregation import AggregatorHyper, GradientAggregator
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import EPS, SeededRandom
from infomtl.tasks import Task


def pcgrad_coefficients(
    gram: torch.Tensor, order: torch.Tensor, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """PCGrad in coefficient space.

    Args:
        gram: ``(T, T)`` Gram matrix ``G_ij = g_i · g_j`` of the task gradients.
        order: ``(T, T−1)`` long tensor, row i = the other tasks in the order task i
            is projected against them.
        eps: ε in the denominator ``‖g_j‖² + ε``.

    Returns:
        ``A`` ``(T, T)`` with ``g̃_i = Σ_k A_ik g_k``, and a ``(T, T)`` bool matrix,
        ``True`` at (i, j) where ``g̃_i · g_j < 0`` when j came up (the projection fired).
    """
    t = gram.shape[0]
    coef = torch.eye(t, dtype=gram.dtype, device=gram.device)
    fired = torch.zeros(t, t, dtype=torch.bool, device=gram.device)
    rows = torch.arange(t, device=gram.device)
    diag = gram.diagonal()
    for k in range(order.shape[1]):
        j = order[:, k]
        dots = (coef * gram[:, j].T).sum(dim=1)  # g̃_i · g_{j_i}
        neg = dots < 0
        step = torch.where(neg, dots, torch.zeros_like(dots)) / (diag[j] + eps)
        coef[rows, j] = coef[rows, j] - step
        fired[rows, j] = neg
    return coef, fired


def project_conflicting(grads: torch.Tensor, order: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The projected gradients ``g̃`` ``(T, P)`` of ``grads`` ``(T, P)`` (see the module doc)."""
    coef, _ = pcgrad_coefficients(grads @ grads.T, order, eps)
    return coef @ grads


def draw_orders(num_tasks: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(T, T−1)``: row i a uniformly random order of the tasks other than i."""
    keys = torch.rand(num_tasks, num_tasks, generator=generator, device=device)
    keys.fill_diagonal_(2.0)  # i itself sorts last and is cut off
    return keys.argsort(dim=1)[:, : num_tasks - 1]


@dataclass
class PCGradHyper(AggregatorHyper):
    """``seed`` of PCGrad's task-order generator (−1 = the run's seed), plus the
    aggregators' ``grads`` and ``grad_space``."""

    seed: int = -1


@register_weighting
class PCGrad(GradientAggregator):
    """PCGrad: each task's gradient of the shared parameters is projected off the ones it conflicts with.

    ``θ_shared`` gets ``Σ_i g̃_i`` with ``g̃_i`` = ``g_i`` projected off every
    conflicting ``g_j`` (``g̃_i·g_j < 0``) in random order; heads get their own task's
    gradient; the auxiliary term its plain gradient (full rule in the module doc).

    Guarantee: with ε → 0, right after ``g̃_i`` is projected against ``g_j`` it has
    ``g̃_i · g_j ≥ 0``; for ``T = 2`` this holds for the final ``g̃_i``; for ``T > 2``
    it holds for the last task in i's order (later projections can re-introduce a
    conflict with an earlier one). With ε > 0 the residual is
    ``(g̃_i·g_j) ε / (‖g_j‖² + ε)``.

    ``grads=batched`` takes the T gradients in one vmapped backward (the same numbers;
    not faster on the CPU, so ``loop`` is the default). ``grad_space=rep`` (LibMTL's
    representation gradients) projects in the space of the shared representation h:
    with ``r_t = ∂(s ℓ_t)/∂h`` ``(B, d)`` and ``r̄_t = Σ_b r_t[b]``,

        c = 1ᵀ A(r̄ r̄ᵀ),     θ_shared ← Jᵀ (Σ_t c_t r_t) + ∇aux,     J = ∂h/∂θ_shared,

    one encoder backward per step instead of T + 1 (see :mod:`infomtl.methods.aggregation`).

    ``normalize="mean"`` (default) scales the task losses (and so every ``g_t``) by 1/T.
    """

    name = "pcgrad"
    reference = "Yu et al., NeurIPS 2020 (Gradient Surgery for Multi-Task Learning)"
    Hyper = PCGradHyper
    hp: PCGradHyper
    needs_all_tasks = True

    def __init__(self, hp: PCGradHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.random = SeededRandom(hp.seed)
        # [Σ cos, #pairs, Σ fired, #ordered pairs] since the last epoch end, and the
        # totals of the last finished epoch (what log_values reports)
        self._stats: torch.Tensor | None = None
        self._epoch_stats: torch.Tensor | None = None

    def coefficients(self, grads: torch.Tensor) -> torch.Tensor:
        """``c = 1ᵀA``: ``Σ_i g̃_i = Σ_k c_k g_k`` (records the cosines and the projections fired)."""
        gram = grads @ grads.T
        order = draw_orders(self.num_tasks, self.random.get(grads.device), grads.device)
        coef, fired = pcgrad_coefficients(gram, order)
        self._record(gram, fired)
        return coef.sum(dim=0)

    def _record(self, gram: torch.Tensor, fired: torch.Tensor) -> None:
        with torch.no_grad():
            diag = gram.diagonal()
            active = diag > 0
            pairs = active[:, None] & active[None, :]
            pairs.fill_diagonal_(False)
            norms = diag.clamp_min(EPS).sqrt()
            cos = gram / (norms[:, None] * norms[None, :])
            upper = torch.triu(pairs, diagonal=1)
            stats = torch.stack(
                [
                    (cos * upper).sum(),
                    upper.sum().float(),
                    (fired & pairs).sum().float(),
                    pairs.sum().float(),
                ]
            )
            self._stats = stats if self._stats is None else self._stats.to(stats.device) + stats

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        self._epoch_stats, self._stats = self._stats, None

    def log_values(self) -> dict[str, Any]:
        stats = self._epoch_stats if self._epoch_stats is not None else self._stats
        if stats is None:
            return {}
        cos_sum, n_pairs, fired, n_ordered = stats.tolist()
        return {
            self.name: {
                "mean_cosine": cos_sum / n_pairs if n_pairs else None,
                "projected_fraction": fired / n_ordered if n_ordered else None,
                "grad_space": self.hp.grad_space,
                "grads": self.grads_mode,
            }
        }

    def extra_state(self) -> dict[str, Any]:
        """The generator, and the epoch's running statistics (a run stopped mid-epoch resumes them)."""
        stats = {} if self._stats is None else {"stats": self._stats.tolist()}
        return {"generator": self.random.state(), **stats}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.random.load(state.get("generator", {}))
        if "stats" in state:
            self._stats = torch.tensor(state["stats"], dtype=torch.float32)


__all__ = ["PCGrad", "PCGradHyper", "draw_orders", "pcgrad_coefficients", "project_conflicting"]
