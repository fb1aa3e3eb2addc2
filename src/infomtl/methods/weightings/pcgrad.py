"""PCGrad: projecting conflicting gradients (Yu et al., NeurIPS 2020).

With ``g_t = ∇_{θ_shared} ℓ_t``: for each task i, ``g̃_i = g_i``; then for every other
task j in random order,

    if g̃_i · g_j < 0:   g̃_i ← g̃_i − (g̃_i · g_j) / (‖g_j‖² + ε) · g_j

and the shared parameters receive ``Σ_i g̃_i``. Each head receives its own task's
gradient, and the objective's auxiliary term (``LossTerms.aux``, e.g. InfoMTL's
``α·L_NCE``) adds its plain gradient to every parameter it touches.

Implementation (exact, on the device, no host synchronisation):

1. ``T`` calls ``torch.autograd.grad(ℓ_t, shared, retain_graph=True, allow_unused=True)``
   written, flattened, into one preallocated ``T × P`` fp32 buffer (``None`` → 0; a
   task absent from the step has a zero row and takes no part).
2. The projections run in the span of the gradients: with the Gram matrix
   ``G = g gᵀ`` (one ``T × P`` matmul), ``g̃_i = Σ_k A_ik g_k`` and
   ``g̃_i · g_j = (A G)_ij``, so the sequential rule is evaluated on ``T × T``
   coefficients (:func:`pcgrad_coefficients`), branch-free (``min(g̃_i·g_j, 0)``), and
   ``Σ_i g̃_i = (1ᵀA) g`` costs one more ``T × P`` product.
3. One engine backward ``ctx.backward(total + Σ_p ⟨p, sg[δ_p]⟩)`` with
   ``δ = Σ_i g̃_i − Σ_i g_i``: the task terms give every head its own task's gradient
   and the shared parameters ``Σ_i g_i``, the aux term its plain gradient, and the
   linear surrogate shifts the shared gradients by exactly ``δ`` (its value is not
   reported). Gradients therefore *accumulate* into ``.grad`` like any backward,
   and whatever the engine does to the loss applies to the whole update: under fp16
   the run's ``GradScaler`` (training/amp.py) scales the loss (and so ``Σ g̃ + ∇aux``) and
   unscales before clipping and the step; with bf16 or fp32 there is no scaler.
   The per-task gradients of step 1 are taken of the unscaled losses, so under fp16
   a very small gradient may underflow in the fp16 backward: prefer bf16 with PCGrad.
   Under several processes (:mod:`infomtl.distributed`) every process computes the
   same losses of the whole global batch, and its encoder gradients hold its own rows'
   share (times the number of processes W). The ``T × P`` buffer is averaged over the
   processes (``ctx.reduce_mean``) **before** the projection, which makes it the global
   per-task gradients ``g_t`` of one process exactly; every process then projects the
   same ``g`` with the same task order (same seed and generator state), so ``δ`` is the
   same everywhere, and the trainer's average of ``.grad`` after the backward gives
   ``Σ_i g_i + ∇aux + δ = Σ_i g̃_i + ∇aux``: the one-process update. (Projecting each
   process's own gradients and averaging the results would not: the projection is
   not linear.)

The random order comes from the method's own generator (``seed``; −1 = the run's
seed), whose state is kept in :meth:`extra_state`. Statistics for the log: the mean
cosine similarity of pairs of task gradients and the fraction of ordered pairs
(i, j) whose projection fired, accumulated on the device and read at epoch end.
"""

from __future__ import annotations

from typing import Any

import torch

from infomtl.methods.base import BackwardContext, GradientAggregator, LossTerms
from infomtl.methods.registry import register_weighting
from infomtl.methods.weightings.common import EPS, SeededRandom, SeedHyper
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

    ``normalize="mean"`` (default) scales the task losses (and so every ``g_t``) by 1/T.
    """

    name = "pcgrad"
    reference = "Yu et al., NeurIPS 2020 (Gradient Surgery for Multi-Task Learning)"
    Hyper = SeedHyper
    hp: SeedHyper
    needs_all_tasks = True

    def __init__(self, hp: SeedHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.random = SeededRandom(hp.seed)
        self._buffer: torch.Tensor | None = None
        # [Σ cos, #pairs, Σ fired, #ordered pairs] since the last epoch end, and the
        # totals of the last finished epoch (what log_values reports)
        self._stats: torch.Tensor | None = None
        self._epoch_stats: torch.Tensor | None = None


    def _grad_buffer(self, shared: list[torch.nn.Parameter]) -> torch.Tensor:
        size = sum(p.numel() for p in shared)
        device = shared[0].device
        buf = self._buffer
        if buf is None or buf.shape != (self.num_tasks, size) or buf.device != device:
            buf = torch.zeros(self.num_tasks, size, dtype=torch.float32, device=device)
            self._buffer = buf
        return buf

    def backward(self, total: torch.Tensor, terms: LossTerms, ctx: BackwardContext) -> None:
        shared = [p for p in ctx.shared_parameters if p.requires_grad]
        if len(terms.task_losses) < 2 or not shared or not total.requires_grad:
            ctx.backward(total)
            return
        buf = self._grad_buffer(shared)
        used = [False] * len(shared)
        for t in range(self.num_tasks):
            row = buf[t]
            loss = terms.task_losses.get(t)
            if loss is None or not loss.requires_grad:
                row.zero_()
                continue
            grads = torch.autograd.grad(
                loss * self.task_scale(len(terms.task_losses)), shared, retain_graph=True, allow_unused=True
            )
            offset = 0
            for k, (p, g) in enumerate(zip(shared, grads, strict=True)):
                n = p.numel()
                if g is None:
                    row[offset : offset + n].zero_()
                else:
                    row[offset : offset + n].copy_(g.reshape(-1))
                    used[k] = True
                offset += n
        ctx.reduce_mean(buf)
        gram = buf @ buf.T
        order = draw_orders(self.num_tasks, self.random.get(buf.device), buf.device)
        coef, fired = pcgrad_coefficients(gram, order)
        delta = (coef.sum(dim=0) - 1) @ buf  # Σ_i g̃_i − Σ_i g_i
        self._record(gram, fired)
        surrogate = total.new_zeros(())
        offset = 0
        for k, p in enumerate(shared):
            n = p.numel()
            if used[k]:
                surrogate = surrogate + (p * delta[offset : offset + n].view_as(p)).sum()
            offset += n
        ctx.backward(total + surrogate)

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


__all__ = ["PCGrad", "draw_orders", "pcgrad_coefficients", "project_conflicting"]
