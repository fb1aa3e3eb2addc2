"""Gradient aggregators: per-task gradients, combined by the method's rule, one backward.

An aggregator's rule maps the ``(T, N)`` task gradients ``g`` to coefficients ``c``
(:meth:`GradientAggregator.coefficients`; PCGrad: ``c = 1ᵀA``, its projections written
in the span of the gradients), and the shared parameters receive

    Σ_t c_t g_t  +  ∇aux          (g_t of the scaled loss s·ℓ_t, s = 1/P or 1)

while each head receives its own task's gradient and the objective's auxiliary term
(``LossTerms.aux``) its plain gradient. Two options of every aggregator
(``--method-args grads=...,grad_space=...``):

``grads`` — how the per-task gradients are taken (:mod:`infomtl.methods.task_gradients`):

* ``split`` (default): the step is encoded task by task — each task's rows in a forward of
  their own, packed or chunked as usual (:meth:`~infomtl.modeling.model.MultiTaskModel.represent`),
  each head reading its task's piece of ``h`` directly — and then T ``autograd.grad`` calls,
  of which task t's runs back over task t's rows only. Since the encoder treats rows
  independently, ``∂ℓ_t/∂θ`` is the same as over the whole batch (ℓ_t reads no other row),
  but the T backward passes together cost about one over the whole batch instead of T.
  It needs a step whose task losses each read only their own rows: the plain heads
  (objective ``linear``), one process, no micro-batches, no learning-to-share module; for
  any other run the trainer says why once and ``loop`` runs. The dropout masks are drawn
  per task call instead of once for the batch (the same distribution).
* ``loop``: T ``autograd.grad`` calls over the step's one graph: each a backward through
  the whole batch (the other tasks' rows receive zeros).
* ``batched``: one call over the stacked losses with one-hot ``grad_outputs`` and
  ``is_grads_batched=True`` (the backward under ``vmap``), the same gradients as the loop up
  to rounding, in fewer and larger kernels but no fewer FLOPs; slower than the loop on a CPU
  (``benchmarks/pcgrad_step.py``, ``benchmarks/RESULTS.md``). Where vmap cannot run a
  backward, the first step logs one warning and the loop runs.

The log's ``grads`` entry says which ran. ``grads`` changes how, not what, is computed: it
is not part of a run's id.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from infomtl.methods.base import BackwardContext, LossTerms, Objective, Weighting, WeightingHyper, device_index
from infomtl.methods.task_gradients import (
    GRAD_MODES,
    BatchedGradientsError,
    present_tasks,
    task_gradients,
    write_gradients,
)
from infomtl.tasks import Task

logger = logging.getLogger(__name__)

#: what the task gradients are of (``--method-args grad_space=...``)
GRAD_SPACES = ("params", "rep")


@dataclass
class AggregatorHyper(WeightingHyper):
    """Shared by the gradient aggregators: ``grads`` (``split`` | ``loop`` | ``batched``: how
    the per-task gradients are taken) and ``grad_space`` (``params`` | ``rep``: of the shared
    parameters or of the representation h); see :mod:`infomtl.methods.aggregation`."""

    unhashed: ClassVar[tuple[str, ...]] = ("grads",)

    grads: str = "split"
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
        #: the mode that runs: ``hp.grads``, or ``loop`` where that cannot run
        self.grads_mode = hp.grads if hp.grad_space == "params" or hp.grads != "split" else "loop"

    @property
    def task_graphs(self) -> bool:  # type: ignore[override]
        """``grads=split`` asks for a step encoded task by task (module docstring)."""
        return self.grads_mode == "split"

    def no_task_graphs(self, reason: str) -> None:
        logger.info("%s: the step cannot be encoded task by task (%s); grads=loop", self.name, reason)
        self.grads_mode = "loop"

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
        if terms.task_graphs and self.hp.grad_space == "params":
            self._backward_by_task(losses, shared, terms, ctx)
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


    def _backward_by_task(self, losses: list[torch.Tensor | None], shared: Sequence[torch.Tensor], terms: LossTerms,
                          ctx: BackwardContext) -> None:
        """``grads=split``: each task's loss has a graph of its own rows and head
        (``terms.task_graphs``), so one ``autograd.grad`` per task gives its gradients of
        the shared parameters and of its head, over its rows only; the update then reaches
        ``.grad`` through one backward of a surrogate (no second pass through the encoder):
        ``⟨θ, sg[Σ_t c_t g_t]⟩ + Σ_t ⟨φ_t, sg[∂(s·ℓ_t)/∂φ_t]⟩`` plus the objective's extras."""
        buf = self._grad_buffer(sum(p.numel() for p in shared), shared[0].device)
        present = present_tasks(losses)
        for t in set(range(self.num_tasks)) - set(present):
            buf[t].zero_()  # absent: a zero row (every present row is written whole below)
        used = [False] * len(shared)
        surrogate = self.add_extras(buf.new_zeros(()), terms)
        for t in present:
            loss = losses[t]
            assert loss is not None
            head = [p for p in ctx.head_parameters[t] if p.requires_grad]
            grads = torch.autograd.grad(loss, [*shared, *head], retain_graph=True, allow_unused=True)
            reached = write_gradients(buf, [t], shared, grads[: len(shared)], False)
            used = [a or b for a, b in zip(used, reached, strict=True)]
            for p, g in zip(head, grads[len(shared):], strict=True):
                if g is not None:
                    surrogate = surrogate + (p * g.detach()).sum()
        coef = self.coefficients(buf)
        ctx.backward(surrogate + _surrogate(surrogate, shared, used, coef @ buf))


def _surrogate(total: torch.Tensor, inputs: Sequence[torch.Tensor], used: list[bool], delta: torch.Tensor
               ) -> torch.Tensor:
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
