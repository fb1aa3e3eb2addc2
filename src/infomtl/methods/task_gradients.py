"""Per-task gradients of a step, flattened into one ``T × N`` buffer.

``losses[t]`` is task t's (scaled) loss or ``None`` (absent from the step); ``inputs``
are the tensors differentiated (the shared parameters, or the representation ``h``).
Row t of the buffer receives ``∂ losses[t] / ∂ inputs``, the inputs' gradients
concatenated in order (an input the loss does not reach contributes zeros; an absent
task's row is zero). Two ways, the same numbers up to float rounding:

* :func:`loop_gradients`: one ``torch.autograd.grad(ℓ_t, inputs, retain_graph=True)``
  per present task, T backward passes through the graph.
* :func:`batched_gradients`: one call over the stacked losses ``ℓ = (ℓ_1 … ℓ_P)`` with
  ``grad_outputs = I_P`` and ``is_grads_batched=True``: autograd runs the backward graph
  once under ``vmap`` over the P one-hot rows ``e_t`` of the identity, and the vector-
  Jacobian product with ``e_t`` is ``∂ℓ_t/∂inputs``. It re-uses the step's one forward,
  so dropout masks (drawn in the forward and only read by the backward) are the same
  for every task, as in the loop. The FLOPs are those of the loop (P backward
  passes), in fewer and larger kernels.

Where ``vmap`` cannot run a backward (a custom ``autograd.Function`` without a vmap
rule, a data-dependent branch in a backward), :func:`batched_gradients` raises
:class:`BatchedGradientsError`; the caller falls back to the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: how the per-task gradients are taken (``--method-args grads=...``); ``split`` is the loop
#: over a step encoded task by task (:mod:`infomtl.methods.aggregation`)
GRAD_MODES = ("loop", "batched", "split")


class BatchedGradientsError(RuntimeError):
    """The batched (vmapped) backward cannot run on this graph; the message says why."""


def present_tasks(losses: Sequence[torch.Tensor | None]) -> list[int]:
    """The tasks whose loss exists and has a gradient."""
    return [t for t, loss in enumerate(losses) if loss is not None and loss.requires_grad]


def write_gradients(out: torch.Tensor, rows: list[int], inputs: Sequence[torch.Tensor], grads,
                    batched: bool) -> list[bool]:
    """Copy per-input gradients into ``out[rows]`` (zeros where an input got none, so the rows
    are written whole); return which inputs got one."""
    used, offset = [False] * len(inputs), 0
    for k, (x, g) in enumerate(zip(inputs, grads, strict=True)):
        n = x.numel()
        block = out[:, offset : offset + n]
        if g is not None:
            values = g.reshape(len(rows) if batched else 1, n)
            if batched and len(rows) == out.shape[0]:
                block.copy_(values)
            else:
                block[rows] = values.to(block.dtype)
            used[k] = True
        else:
            block[rows] = 0
        offset += n
    return used


def loop_gradients(
    losses: Sequence[torch.Tensor | None], inputs: Sequence[torch.Tensor], out: torch.Tensor
) -> list[bool]:
    """Fill ``out`` ``(T, N)`` with one backward per present task; return, per input,
    whether any task's loss reached it."""
    out.zero_()
    used = [False] * len(inputs)
    for t in present_tasks(losses):
        loss = losses[t]
        assert loss is not None
        grads = torch.autograd.grad(loss, list(inputs), retain_graph=True, allow_unused=True)
        used = [a or b for a, b in zip(used, write_gradients(out, [t], inputs, grads, False), strict=True)]
    return used


def batched_gradients(
    losses: Sequence[torch.Tensor | None], inputs: Sequence[torch.Tensor], out: torch.Tensor
) -> list[bool]:
    """Fill ``out`` ``(T, N)`` with one vmapped backward over the stacked present losses
    (module docstring); raises :class:`BatchedGradientsError` where vmap cannot run it."""
    rows = present_tasks(losses)
    out.zero_()
    if not rows:
        return [False] * len(inputs)
    stacked = torch.stack([losses[t].reshape(()).float() for t in rows])  # type: ignore[union-attr]
    eye = torch.eye(len(rows), dtype=stacked.dtype, device=stacked.device)
    try:
        grads = torch.autograd.grad(
            stacked, list(inputs), grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True
        )
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchedGradientsError(first) from exc
    return write_gradients(out, rows, inputs, grads, True)


def task_gradients(
    losses: Sequence[torch.Tensor | None], inputs: Sequence[torch.Tensor], out: torch.Tensor, mode: str
) -> list[bool]:
    """:func:`loop_gradients` (``loop``, ``split``) or :func:`batched_gradients` (``batched``)."""
    if mode == "batched":
        return batched_gradients(losses, inputs, out)
    if mode in ("loop", "split"):
        return loop_gradients(losses, inputs, out)
    raise ValueError(f"grads must be one of {', '.join(GRAD_MODES)}, got {mode!r}")


__all__ = [
    "GRAD_MODES",
    "BatchedGradientsError",
    "batched_gradients",
    "loop_gradients",
    "present_tasks",
    "task_gradients",
    "write_gradients",
]
