"""Model FLOPs of a transformer encoder: what the throughput benchmark counts as work.

Counting rule, per encoder call on a padded ``(B, L)`` batch whose rows have real
(non-padding) lengths ``ℓ_1 … ℓ_B``:

    training step:  F_train = Σ_i ℓ_i · (6·N + 12·n_layers·L·d)
    forward only:   F_fwd   = Σ_i ℓ_i · (2·N +  4·n_layers·L·d)

* ``N`` = the encoder's **non-embedding** parameters: every parameter of the encoder
  except those of its ``embeddings`` block (token, position and segment embeddings and
  their LayerNorm; a model without such a block loses its ``nn.Embedding`` weights
  instead). A multiply-add is 2 FLOPs, so a token's forward through the weights costs
  ``2N`` and its backward ``4N`` (gradients of the activations and of the weights):
  ``6N`` per trained token (Kaplan et al. 2020). Biases and LayerNorms are counted at
  the same rate, as is usual; embedding look-ups are not counted.
* Attention: per layer and token, the scores ``q·Kᵀ`` cost ``2·L·d`` and the weighted
  sum of the values ``2·L·d`` forward; training is 3× that, ``12·L·d`` per layer
  (Chowdhery et al. 2022, PaLM, appendix B), with ``L`` the **padded** length of the
  call actually computed: a real token attends over all ``L`` keys of its batch.
* Only **real tokens** count: the work the encoder spends on padding rows' matmuls is
  not model FLOPs (it is what length bucketing saves).
* Not counted: task heads and pooling (``d × C_t`` per row, not per token), losses,
  the optimizer, tokenisation.

Who calls the encoder how often is the caller's business: InfoMTL's second dropout
view is a second set of encoder rows (its doubled batch, or the naive reference's
second call) and counts as real work; PCGrad's extra per-task backward passes are
*not* in ``F_train`` (one forward + one backward per trained token is the useful
work), so its MFU shows that overhead.

:func:`mixed_step_calls` predicts the encoder calls of one training step of
``infomtl``'s ``MultiTaskModel`` (one padded batch, the doubled batch for two views,
length-sorted chunks above ``chunk_tokens``) from the rows' lengths alone, so that
FLOPs are counted on the host without touching the timed loop; the benchmark checks the
prediction against the real calls (:class:`EncoderCalls`) on its warm-up steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from infomtl.modeling.packing import plan_packing


class Call(NamedTuple):
    """One encoder forward: the real length of each row and the padded width ``L``; a packed
    call (several rows per sequence) also has its number of ``sequences`` of width ``L``."""

    lengths: np.ndarray
    width: int
    sequences: int | None = None


@dataclass(frozen=True)
class EncoderShape:
    """What the FLOP count needs of an encoder: ``N`` (non-embedding), layers, width ``d``."""

    n_params: int
    n_layers: int
    d_model: int

    @classmethod
    def of(cls, encoder: nn.Module) -> EncoderShape:
        return cls(non_embedding_params(encoder), _config_int(encoder, "num_hidden_layers", "n_layers"),
                   _config_int(encoder, "hidden_size", "dim", "d_model"))

    def train_flops_per_token(self, width: int) -> int:
        """``6N + 12·n_layers·L·d``: FLOPs of training one real token in a call of width L."""
        return 6 * self.n_params + 12 * self.n_layers * width * self.d_model

    def forward_flops_per_token(self, width: int) -> int:
        """``2N + 4·n_layers·L·d``: FLOPs of one real token's forward in a call of width L."""
        return 2 * self.n_params + 4 * self.n_layers * width * self.d_model


def non_embedding_params(encoder: nn.Module) -> int:
    """``N``: parameters of ``encoder`` outside its ``embeddings`` block (see the module doc)."""
    block = getattr(encoder, "embeddings", None)
    if isinstance(block, nn.Module):
        excluded = {id(p) for p in block.parameters()}
    else:
        excluded = {id(m.weight) for m in encoder.modules() if isinstance(m, nn.Embedding)}
    return sum(p.numel() for p in encoder.parameters() if id(p) not in excluded)


def _config_int(encoder: nn.Module, *names: str) -> int:
    config = getattr(encoder, "config", None)
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    raise ValueError(f"encoder config has none of {', '.join(names)}")


def train_flops(shape: EncoderShape, calls: Iterable[Call]) -> float:
    """``F_train`` summed over ``calls``: ``Σ_calls Σ_i ℓ_i (6N + 12·n_layers·L·d)``."""
    return float(sum(int(c.lengths.sum()) * shape.train_flops_per_token(c.width) for c in calls))


def forward_flops(shape: EncoderShape, calls: Iterable[Call]) -> float:
    """``F_fwd`` summed over ``calls``: ``Σ_calls Σ_i ℓ_i (2N + 4·n_layers·L·d)``."""
    return float(sum(int(c.lengths.sum()) * shape.forward_flops_per_token(c.width) for c in calls))


def padded_tokens(calls: Iterable[Call]) -> int:
    """``Σ_calls B·L``: the tokens the encoder computes, padding included (``P·L`` for a
    packed call of ``P`` sequences)."""
    return sum((len(c.lengths) if c.sequences is None else c.sequences) * c.width for c in calls)


def mixed_step_calls(lengths: np.ndarray, views: int = 1, chunk_tokens: int = 0,
                     micro_batches: int = 1, packing: bool = False) -> list[Call]:
    """The encoder forwards ``MultiTaskModel.forward`` makes in training for one step whose
    rows have real ``lengths`` (``MultiTaskModel.encode_chunked``).

    The step is padded to its longest row (``collate``); ``views=2`` stacks it twice
    (n rows in all). With ``micro_batches = M > 1`` (``--grad-accumulation``) a call holds
    at most ``⌈n/M⌉`` rows. If that splits the step, or ``n × width > chunk_tokens > 0``,
    the rows are sorted by length (longest first) and cut into calls of at most
    ``chunk_tokens // longest`` rows (and ``⌈n/M⌉``), a call also ending before the first
    row shorter than half its longest row; each call is padded to its longest row.
    The recomputation of checkpointed micro-batches in the backward pass is not a call here.
    With ``packing`` (and one micro-batch) the rows are packed into sequences of one width
    (:func:`infomtl.modeling.packing.plan_packing`), at most ``chunk_tokens // width``
    sequences a call.
    """
    lengths = np.tile(np.asarray(lengths, dtype=np.int64), views)
    n, width = len(lengths), int(lengths.max())
    rows = math.ceil(n / micro_batches) if micro_batches > 1 else n
    if packing and rows >= n:
        width, bins = plan_packing(lengths)
        per_call = max(1, chunk_tokens // width) if chunk_tokens > 0 else len(bins)
        return [Call(lengths[[i for b in bins[k : k + per_call] for i in b]], width, len(bins[k : k + per_call]))
                for k in range(0, len(bins), per_call)]
    if rows >= n and (chunk_tokens <= 0 or n * width <= chunk_tokens):
        return [Call(lengths, width)]
    ordered = np.sort(lengths)[::-1]
    calls, start = [], 0
    while start < n:
        longest = max(1, int(ordered[start]))
        take = min(max(1, chunk_tokens // longest) if chunk_tokens > 0 else n, rows)
        short = np.flatnonzero(ordered[start : start + take] * 2 < longest)
        if len(short):
            take = int(short[0])
        calls.append(Call(ordered[start : start + take], longest))
        start += take
    return calls


def same_calls(a: Iterable[Call], b: Iterable[Call]) -> bool:
    """Whether two lists of calls hold the same (width, row lengths) multisets."""

    def key(calls: Iterable[Call]) -> list[tuple[int, int, tuple[int, ...]]]:
        return sorted((int(c.width), -1 if c.sequences is None else int(c.sequences),
                       tuple(sorted(int(x) for x in c.lengths))) for c in calls)

    return key(a) == key(b)


class EncoderCalls:
    """Records the encoder forwards of a block (a forward pre-hook; no host sync).

    ``with EncoderCalls(encoder) as rec: ...`` then ``rec.calls()``: one :class:`Call`
    per forward, read from its ``attention_mask`` after the block. Forwards run inside a
    backward pass (the recomputation of activation-checkpointed micro-batches) are left
    out: they are overhead, not model FLOPs.
    """

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self._masks: list = []
        self._handle = None

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if _in_backward():
            return
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        if mask is not None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            self._masks.append((mask.detach(), None if ids is None else ids.detach()))

    def __enter__(self) -> EncoderCalls:
        self._handle = self.encoder.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()

    def calls(self) -> list[Call]:
        pad = int(getattr(getattr(self.encoder, "config", None), "pad_token_id", None) or 0)
        return [Call(m.sum(dim=1).cpu().numpy(), int(m.shape[1])) if m.ndim == 2 else _packed_call(m, ids, pad)
                for m, ids in self._masks]


def _packed_call(mask: torch.Tensor, ids: torch.Tensor, pad_id: int) -> Call:
    """The rows of a packed call, read off its block-diagonal ``(P, 1, W, W)`` mask: a row
    starts where a token may not attend to the one before it; the unfilled tail of a
    sequence is the block that starts with the padding id."""
    allowed = mask[:, 0] if mask.dtype == torch.bool else mask[:, 0] == 0
    width = int(allowed.shape[-1])
    lengths = []
    for p in range(allowed.shape[0]):
        starts = [0] + [q for q in range(1, width) if not bool(allowed[p, q, q - 1])]
        for a, b in zip(starts, [*starts[1:], width], strict=True):
            if int(ids[p, a]) != pad_id:
                lengths.append(b - a)
    return Call(np.asarray(lengths, dtype=np.int64), width, int(allowed.shape[0]))


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (checkpoint recomputation runs there)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1
