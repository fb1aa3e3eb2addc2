"""Gradient aggregators: per-task gradients, combined by the method's rule, one backward.

An aggregator's rule maps the ``(T, N)`` task gradients ``g`` to coefficients ``c``
(:meth:`GradientAggregator.coefficients`; PCGrad: ``c = 1ᵀA``, its projections written
in the span of the gradients), and the shared parameters receive

    Σ_t c_t g_t  +  ∇aux          (g_t of the scaled loss s·ℓ_t, s = 1/P or 1)

while each head receives its own task's gradient and the objective's auxiliary term
(``LossTerms.aux``) its plain gradient. Two options of every aggregator
(``--method-args grads=...,grad_space=...``):

``grads`` — how the per-task gradients are taken (:mod:`infomtl.methods.task_gradients`):
``loop`` (default) T ``autograd.grad`` calls; ``batched`` one call over the stacked
losses with one-hot ``grad_outputs`` and ``is_grads_batched=True`` (the backward under
``vmap``), the same gradients up to rounding. Both cost T backward passes; batched runs
them as fewer, larger kernels, but was slower than the loop on a CPU
(``benchmarks/pcgrad_step.py``, ``benchmarks/RESULTS.md``), so the loop is the default.
Where vmap cannot run a backward, the first step logs one warning and the run continues
with the loop (the log's ``grads`` entry says which ran). ``grads`` changes how, not what, is
computed: it is not part of a run's id.

``grad_space`` — what the task gradients are of:

* ``params`` (default): ``g_t = ∇_θ (s ℓ_t)`` over the shared parameters θ, flattened;
  every task costs a backward pass through the encoder.
* ``rep``: LibMTL's representation gradients (``rep_grad``, Lin & Zhang, JMLR 2023):
  ``r_t = ∂(s ℓ_t)/∂h`` ``(B, d)``, the gradient with respect to the shared
  representation ``h`` the heads read (``ModelOutput.h``); the rule runs on their sums
  over the batch rows ``r̄_t = Σ_b r_t[b]`` ``(T, d)`` (LibMTL's resized gradients,
  ``per_grads.reshape(T, B, -1).sum(1)``), and its coefficients combine the full
  ``r_t``:

      c = rule(r̄),     θ ← Jᵀ (Σ_t c_t r_t) + ∇aux,     J = ∂h/∂θ

  in **one** encoder backward (only the heads run T times), so a step costs about
  EW's. The rows are summed because in a mixed batch task t's loss reads only its own
  rows of ``h``: the flattened ``r_t`` of different tasks have disjoint supports, their
  Gram matrix is diagonal and a projection would never fire. Not the update of
  ``params``: conflicts are measured in the representation, not the parameters. It
  needs heads that read ``h``, and refuses token-state heads and decoders that share
  layers above ``h`` (MT-VIB's, HMTL's and VMTL's bottlenecks, which would receive the
  plain sum). (LibMTL's own PCGrad refuses ``rep_grad``; the rule here is the
  coefficient form above.)

Implementation: one engine backward ``ctx.backward(total + ⟨x, sg[δ]⟩)``, ``x`` the
differentiated tensors (θ, or ``h``) and ``δ = Σ_t (c_t − 1) g_t``: ``total`` gives every
head its task's gradient, the aux term its gradient and the shared parameters the plain
``Σ_t g_t`` (through ``h``), and the linear surrogate shifts that by exactly ``δ`` (by
``Jᵀδ`` in the rep space). Gradients accumulate into ``.grad`` like any backward; under
fp16 the run's ``GradScaler`` scales the whole update. Several processes
(:mod:`infomtl.distributed`): in the params space the buffer is averaged over the
processes before the rule (``ctx.reduce_mean``), since a process's encoder gradients hold
only its rows' share; in the rep space ``h`` is the gathered global batch and every
process computes the same ``r`` (no averaging), the surrogate's gradient flows back to
each process's own rows, and the trainer's average of ``.grad`` gives the one-process update.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch

from infomtl.methods.base import BackwardContext, LossTerms, Objective, Weighting, WeightingHyper, device_index
from infomtl.methods.task_gradients import GRAD_MODES, BatchedGradientsError, present_tasks, task_gradients
from infomtl.tasks import Task

logger = logging.getLogger(__name__)

#: what the task gradients are of (``--method-args grad_space=...``)
GRAD_SPACES = ("params", "rep")


@dataclass
class AggregatorHyper(WeightingHyper):
    """Shared by the gradient aggregators: ``grads`` (``loop`` | ``batched``: how the
    per-task gradients are taken) and ``grad_space`` (``params`` | ``rep``: of the shared
    parameters or of the representation h); see :mod:`infomtl.methods.aggregation`."""

    unhashed: ClassVar[tuple[str, ...]] = ("grads",)

    grads: str = "loop"
    grad_space: str = "params"

    def validate(self) -> None:
        super().validate()
        if self.grads not in GRAD_MODES:
            raise ValueError(f"grads must be one of {', '.join(GRAD_MODES)}, got {self.grads!r}")
        if self.grad_space not in GRAD_SPACES:
            raise ValueError(f"grad_space must be one of {', '.join(GRAD_SPACES)}, got {self.grad_space!r}")


class GradientAggregator(Weighting):
    """Combines per-task gradients of the shared parameters or representation (module doc).

    Subclasses implement :meth:`coefficients`. ``combine`` returns the mean (or sum) of
    the task losses plus the objective's extras, for the log and the plain backward.
    """

    Hyper: ClassVar[type[WeightingHyper]] = AggregatorHyper
    hp: AggregatorHyper
    needs_all_tasks = True

    def __init__(self, hp: AggregatorHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self._buffer: torch.Tensor | None = None
        #: the mode that runs: ``hp.grads`` until a batched backward fails
        self.grads_mode = hp.grads

    @classmethod
    def check_objective(cls, hp: WeightingHyper, objective: type[Objective]) -> None:
        if getattr(hp, "grad_space", "params") != "rep":
            return
        if objective.token_states:
            raise ValueError(
                f"grad_space=rep needs heads that read the pooled h; {objective.name}'s heads read the token "
                "states (use grad_space=params)"
            )
        if objective.shared_decoder:
            raise ValueError(
                f"grad_space=rep: {objective.name} shares decoder layers above h, which would get the plain sum "
                "of the task gradients (use grad_space=params)"
            )

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        present = sorted(terms.task_losses)
        scale = self.task_scale(len(present))
        total = self.add_extras(torch.stack([terms.task_losses[t] for t in present]).sum() * scale, terms)
        w = torch.zeros(self.num_tasks, device=total.device)
        w.index_fill_(0, device_index(present, total.device), scale)
        return total, w

    def coefficients(self, grads: torch.Tensor) -> torch.Tensor:
        """``(T,)`` coefficients ``c`` of the shared update ``Σ_t c_t g_t`` from the task
        gradients ``grads`` ``(T, N)`` (fp32; the rows of absent tasks are zero)."""
        raise NotImplementedError

    def _grad_buffer(self, size: int, device: torch.device) -> torch.Tensor:
        buf = self._buffer
        if buf is None or buf.shape != (self.num_tasks, size) or buf.device != device:
            buf = torch.zeros(self.num_tasks, size, dtype=torch.float32, device=device)
            self._buffer = buf
        return buf

    def _task_gradients(
        self, losses: list[torch.Tensor | None], inputs: list[torch.Tensor], out: torch.Tensor
    ) -> list[bool]:
        if self.grads_mode == "batched":
            try:
                return task_gradients(losses, inputs, out, "batched")
            except BatchedGradientsError as exc:
                logger.warning("%s: grads=batched cannot run on this model (%s); using grads=loop", self.name, exc)
                self.grads_mode = "loop"
        return task_gradients(losses, inputs, out, "loop")

    def backward(self, total: torch.Tensor, terms: LossTerms, ctx: BackwardContext) -> None:
        shared = [p for p in ctx.shared_parameters if p.requires_grad]
        if len(terms.task_losses) < 2 or not shared or not total.requires_grad:
            ctx.backward(total)
            return
        scale = self.task_scale(len(terms.task_losses))
        losses = [terms.task_losses[t] * scale if t in terms.task_losses else None for t in range(self.num_tasks)]
        if len(present_tasks(losses)) < 2:
            ctx.backward(total)
            return
        inputs: list[torch.Tensor]
        if self.hp.grad_space == "rep":
            h = terms.representation
            if h is None:
                raise ValueError("grad_space=rep needs LossTerms.representation (Method.loss sets it)")
            if not h.requires_grad:
                ctx.backward(total)
                return
            inputs = [h]
        else:
            inputs = list(shared)
        buf = self._grad_buffer(sum(x.numel() for x in inputs), inputs[0].device)
        used = self._task_gradients(losses, inputs, buf)
        if self.hp.grad_space == "rep":
            coef = self.coefficients(buf.view(self.num_tasks, inputs[0].shape[0], -1).sum(dim=1))
        else:
            ctx.reduce_mean(buf)
            coef = self.coefficients(buf)
        delta = (coef - 1) @ buf  # Σ_t c_t g_t − Σ_t g_t
        ctx.backward(total + _surrogate(total, inputs, used, delta))


def _surrogate(total: torch.Tensor, inputs: list[torch.Tensor], used: list[bool], delta: torch.Tensor) -> torch.Tensor:
    """``Σ_x ⟨x, sg[δ_x]⟩`` over the inputs a task reached: its gradient is ``δ`` (in x)."""
    out = total.new_zeros(())
    offset = 0
    for x, reached in zip(inputs, used, strict=True):
        n = x.numel()
        if reached:
            out = out + (x.float() * delta[offset : offset + n].view(x.shape)).sum()
        offset += n
    return out


__all__ = ["GRAD_SPACES", "AggregatorHyper", "GradientAggregator"]
