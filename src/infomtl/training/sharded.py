"""Training on several processes (``torchrun --nproc-per-node W -m infomtl train ...`` or
``accelerate launch --multi_gpu --num_processes W -m infomtl train ...``; NCCL on GPUs,
gloo on a machine without one). Every process plans the same global steps of ``--batch-size`` rows and the
step's rows are dealt out in turn (:func:`~infomtl.data.batching.shard`: ⌊B/W⌋ or
⌈B/W⌉ rows each). The rule that makes a step exactly the one-process step on the
global batch, for every objective and weighting:

1. each process encodes only its shard (its own dropout stream,
   :func:`~infomtl.distributed.process_rng`);
2. the pooled representations (token states for token-state heads) of all shards are
   all-gathered into the global batch, in batch order; a process's own rows stay live,
   with their gradient multiplied by W (:func:`~infomtl.distributed.scale_grad`);
3. every process runs the heads, the objective and the weighting on the **whole global
   batch**: per-task means over the task's global rows, InfoNCE negatives, class-balanced
   KLs, DTP's KPIs, DWA's and GLS's losses, UW/IMTL-L's ``s_t`` terms are all the
   one-process values, identical on every process (draws after the encoder — head
   dropout, Gaussian samples, Gumbel noise — come from the global random stream, which
   stays identical across processes);
4. after the backward every gradient — model and method parameters — is averaged over
   the processes (:func:`~infomtl.distributed.all_reduce_gradients`). The encoder gets
   ``(1/W) Σ_r W Σ_{i ∈ shard r} ∂L/∂h_i ∂h_i/∂θ``, the one-process gradient; heads,
   bottlenecks and the method's own parameters get the one-process gradient that every
   process computed identically. PCGrad averages its per-task gradients the same way
   before projecting (``BackwardContext.reduce_mean``): projection is not linear.

So one step on W processes equals one step on one process with the same global batch,
up to float rounding and the encoder's dropout masks (drawn per process). Clipping and
the optimizer then run identically everywhere. A step with fewer rows than processes
leaves a process without rows: it encodes a stand-in row whose gradient is multiplied
by 0 (so every process has gradients for the same parameters). Validation and test
batches are dealt out the same way and the predictions gathered (same batches as one
process, so the same scores); only the main process writes files, and the run folder
name is the main process's. Multi-node runs need the run folder on a shared file system
(the final weights and ``--resume`` are read from it by every process).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch

from infomtl import distributed
from infomtl.data.batching import shard, shard_order
from infomtl.data.encoding import Batch, EncodedSplit, collate, collate_targets
from infomtl.modeling.model import ModelOutput, MultiTaskModel, Representation


def forward_sharded(
    model: MultiTaskModel,
    splits: list[EncodedSplit],
    plan: list[np.ndarray],
    pad_id: int,
    acc: Any,
    seed: int,
    step: int,
    views: int,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> tuple[ModelOutput, Batch]:
    """Encode this process's shard of the global step ``plan``, gather the global
    batch's representation, decode the whole global batch (see the module docstring);
    ``acc`` is the run's ``accelerate.Accelerator``, ``autocast`` its precision's context."""
    rank, world = acc.process_index, acc.num_processes
    shards = [shard(plan, r, world) for r in range(world)]
    counts = [sum(len(idx) for idx in part) for part in shards]
    local, stand_in = shards[rank], counts[rank] == 0
    if stand_in:  # fewer rows than processes: encode one row, its gradient multiplied by 0
        first = next(t for t, idx in enumerate(plan) if len(idx))
        local = [idx[:1] if t == first else idx[:0] for t, idx in enumerate(plan)]
    width = None
    if model.token_states:  # pad like the global batch: same states at padded positions
        width = max(len(splits[t].input_ids[i]) for t, idx in enumerate(plan) for i in idx)
    batch = collate(splits, local, pad_id, width).to(acc.device)
    with distributed.process_rng(seed, step, rank, acc.device), autocast():
        rep = model.represent(batch, views)
    order = torch.from_numpy(shard_order(plan, world)).to(acc.device, non_blocking=True)
    n = len(batch)
    anchor = rep.pooled.float().sum() * 0.0 if stand_in else None
    if anchor is not None and rep.states is not None:
        anchor = anchor + rep.states.float().sum() * 0.0

    def gathered(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
        x = x[:0] if stand_in else x
        if grad:
            x = distributed.scale_grad(x.float(), float(world))
        full = distributed.gather_rows(x, counts, rank).index_select(0, order)
        return full + anchor if grad and anchor is not None else full

    pooled = torch.cat([gathered(rep.pooled[v * n : (v + 1) * n]) for v in range(views)])
    states = mask = None
    if rep.states is not None:
        assert rep.mask is not None  # token states come with their attention mask
        states, mask = gathered(rep.states), gathered(rep.mask, grad=False)
    targets = collate_targets(splits, plan).to(acc.device)
    with autocast():
        out = model.decode(Representation(pooled, states, mask), targets, views)
    return out, targets
