"""Multi-process data parallelism (``torchrun`` / ``accelerate launch``): the collective
pieces the trainer uses. Every function is the identity, or a no-op, in one process.

The rule (see :mod:`infomtl.training` for the whole step): each process encodes its
shard of the global step; the shared representation of the global batch is
all-gathered (:func:`gather_rows`), so every process runs the heads, the objective and
the weighting on the **whole global batch** — the same numbers on every process; the
gradient reaching a process's own rows of the representation is multiplied by the
number of processes W (:func:`scale_grad`); after the backward every gradient is
averaged over the processes (:func:`all_reduce_gradients`). The encoder's gradient is
then ``(1/W) Σ_r W · Σ_{i ∈ shard r} ∂L/∂h_i ∂h_i/∂θ``, exactly the one-process
gradient of the global batch, and every other parameter (heads, bottlenecks, the
method's own task scalars) gets the one-process gradient computed identically on
every process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

#: elements per flat all-reduce of the gradient average
BUCKET_ELEMENTS = 1 << 25


def initialized() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """Whether this is process 0 (or the only process)."""
    return not initialized() or dist.get_rank() == 0


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass; its gradient multiplied by ``scale``."""
    return _ScaleGrad.apply(x, scale) if x.requires_grad else x


def gather_rows(local: torch.Tensor, counts: Sequence[int], rank: int) -> torch.Tensor:
    """The concatenation over processes of each one's ``(counts[r], *rest)`` tensor.

    Every process passes its own rows (same trailing shape and dtype everywhere). The
    result holds this process's rows as the live tensor ``local`` (gradients flow into
    them) and the other processes' rows as constants.
    """
    world = len(counts)
    if world == 1:
        return local
    padded = local.new_zeros((max(counts), *local.shape[1:]))
    padded[: len(local)] = local.detach()
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    pieces = [g[:n] for g, n in zip(gathered, counts, strict=True)]
    pieces[rank] = local
    return torch.cat(pieces)


def all_reduce_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over the processes, in flat buckets (one all-reduce per bucket).

    Parameters without a gradient are skipped: the trainer guarantees that the same
    parameters have one on every process (each process runs the decoder on the whole
    global batch, and a process without rows encodes a stand-in row).
    """
    if not initialized():
        return
    world = dist.get_world_size()
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    for grads in groups.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for g in grads:
            bucket.append(g)
            size += g.numel()
            if size >= BUCKET_ELEMENTS:
                _reduce_bucket(bucket, world)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(bucket, world)


def _reduce_bucket(grads: list[torch.Tensor], world: int) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_reduce_mean(tensor: torch.Tensor) -> None:
    """Average ``tensor`` over the processes in place (nothing in one process)."""
    if initialized():
        dist.all_reduce(tensor)
        tensor.div_(dist.get_world_size())


def broadcast_tensors(tensors: Sequence[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every process with process ``src``'s values."""
    if initialized():
        with torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Process ``src``'s ``obj`` (picklable), on every process."""
    if not initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in one process)."""
    if not initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@contextlib.contextmanager
def process_rng(seed: int, step: int, rank: int, device: torch.device) -> Iterator[None]:
    """Draw from a stream of process ``rank``'s own (seeded by seed, step and rank)
    inside the block, and leave the global random state as it was.

    The trainer encodes a process's shard inside it, so the encoder's dropout masks
    differ between processes, while the draws after it (head dropout, Gaussian samples,
    Gumbel noise) come from the global stream, identical on every process.
    """
    devices = [device] if device.type == "cuda" else []
    state = np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(state) >> 1)
        yield
