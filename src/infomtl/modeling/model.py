"""The multi-task model: one shared encoder, one light head per task.

``MultiTaskModel`` encodes a mixed batch once, pools it into the shared
representation ``h`` and runs each task's head on that task's rows only. With
``views=2`` it encodes the doubled batch ``[x; x]`` in one forward (train mode), so
the two halves differ only by the encoder's dropout: ``h`` (first half) feeds the
heads, ``h⁺`` (second half) is InfoMTL's second view.

Length-sorted chunks: with ``chunk_tokens > 0`` the rows of a step are sorted by
length and encoded in chunks of at most ``chunk_tokens`` padded tokens, each chunk
padded only to its own longest row; a chunk also ends where rows get shorter than
half its longest row, so that padding stays under half of any chunk. The result is the same as one forward (rows do
not interact in the encoder), but one long outlier no longer pads every row of the
step: compute and activation memory follow the real lengths.

Packed rows (``packing=True``, the default; :mod:`infomtl.modeling.packing`): for a
BERT- or RoBERTa-style encoder the step's rows are instead packed several to a sequence,
with a block-diagonal attention mask and position ids that
restart per row, in calls of at most ``chunk_tokens`` tokens: the computed tokens are
within a few percent of the real ones, and each row's ``h`` is the padded forward's up
to float rounding. Micro-batches, learning-to-share modules and token-state decoders
keep the length-sorted chunks.

Token-state decoders (``decoder.token_states``, e.g. the TextCNN heads of STL-CNN)
receive the token states and the attention mask instead of ``h``; their batch is
encoded in one forward (no length chunks; row micro-batches, below, still apply).
A frozen encoder (``freeze_encoder=True``) has
no trainable parameters, stays in eval mode and runs without gradients.

Micro-batches (``micro_batches = N > 1``, the trainer's ``--grad-accumulation N``): in
training, the encoder runs on at most ``⌈B/N⌉`` rows at a time (B: the rows it encodes,
both views counted) under activation checkpointing, so only each micro-batch's inputs
are kept; the backward pass recomputes one micro-batch's forward at a time (same
dropout masks: the random state is restored) and sums its gradient into ``.grad``.
Heads, objective and weighting still see the representation of the whole step, so
the loss and its gradient are those of one step on the whole batch for every method.
The cost is one more encoder forward per step (with PCGrad, one per backward pass).

Frozen-backbone fast mode: a :class:`SharedMLP` above the frozen encoder is then the
trainable shared encoder, ``h = MLP(pool(encoder(x)))``. A batch may carry the pooled
features ``f = pool(encoder(x))`` precomputed (:mod:`infomtl.modeling.feature_cache`); the model
then skips the encoder, and the result is the same as encoding the text.

Learning to share (:mod:`infomtl.modeling.sharing`): with a ``sharing`` module the
encoder side yields per-row *sources* ``(B, S, d)`` (the pooled states of every layer, or
of every task's copy of the top layers) instead of ``h``, and the decoder side gathers
each task's own representation ``h_t`` of its rows (:func:`~infomtl.modeling.sharing.gather`);
``h`` is then one row per (task, row) pair, and the heads' rows index into it. In fast
mode the cached features are the pooled states of every layer and the shared MLP runs
on the gathered ``h_t``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from infomtl.data.encoding import Batch
from infomtl.modeling.backbones import pool
from infomtl.modeling.heads import HeadOutput
from infomtl.modeling.packing import call_sequences, pack, plan_packing, pool_packed, position_base
from infomtl.modeling.sharing import CrossStitch, LayerSharing, Sharing, gather


@dataclass
class ModelOutput:
    """``h``: ``(B, d)`` shared representation; ``h_views``: the second dropout view or
    ``None``; ``heads[t]``: head output on task t's rows; ``extras``: whatever the
    decoder exposes (bottleneck means and variances...); ``task_graphs``: the batch was
    encoded task by task, each head reading its task's piece of ``h`` (not ``h`` itself)."""

    h: torch.Tensor
    h_views: torch.Tensor | None
    heads: dict[int, HeadOutput]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    task_graphs: bool = False


@dataclass
class Representation:
    """What the encoder side hands the decoder for a batch of n rows: ``pooled``
    ``(views·n, d)`` (the views stacked) and, for a token-state decoder, the first view's
    token ``states`` ``(n, L, d)`` with their attention ``mask`` ``(n, L)``. With a sharing
    module, ``pooled`` holds the sources ``(views·n, S, d)`` instead (module docstring)."""

    pooled: torch.Tensor
    states: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    #: encoded task by task (:attr:`MultiTaskModel.task_graphs`): task t's rows of ``pooled``,
    #: from a forward of their own; ``pooled`` is their concatenation
    pieces: dict[int, torch.Tensor] | None = None


class SharedMLP(nn.Module):
    """The trainable shared encoder above frozen pooled features ``f`` (fast mode).

    ``h = W₂ · drop(GELU(W₁ · drop(f) + b₁)) + b₂`` with ``W₁: d × w``, ``W₂: w × w``:
    two layers of width ``w`` with dropout ``p`` before each, so two calls in train mode
    give two dropout views of ``h`` as the encoder's own dropout does (InfoMTL's InfoNCE).
    """

    def __init__(self, in_features: int, width: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_features, width), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(width, width),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class TaskHeads(nn.Module):
    """One head per task; ``forward(z, rows)`` runs head t on ``z[rows[t]]``."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(
        self, z: torch.Tensor, rows: dict[int, torch.Tensor]
    ) -> tuple[dict[int, HeadOutput], dict[str, torch.Tensor]]:
        return {t: self.heads[t](z.index_select(0, r)) for t, r in rows.items()}, {}


class TokenTaskHeads(TaskHeads):
    """One token-state head per task; ``forward(states, mask, rows)`` runs head t on
    ``states[rows[t]]`` with ``mask[rows[t]]``."""

    token_states = True

    def forward(  # type: ignore[override]
        self, states: torch.Tensor, attention_mask: torch.Tensor, rows: dict[int, torch.Tensor]
    ) -> tuple[dict[int, HeadOutput], dict[str, torch.Tensor]]:
        return {
            t: self.heads[t](states.index_select(0, r), attention_mask.index_select(0, r))
            for t, r in rows.items()
        }, {}


class MultiTaskModel(nn.Module):
    """Shared encoder + pooling + a decoder (the task heads, possibly behind a bottleneck).

    The decoder is built by the method's objective and maps ``(h, rows)`` to the
    per-task head outputs and a dict of extras (a decoder with ``token_states = True``
    maps ``(states, attention_mask, rows)``). With ``freeze_encoder`` the encoder is
    fixed: no gradients, always in eval mode (only the decoder trains). A
    ``shared_mlp`` maps the pooled encoder output to ``h`` (frozen-backbone fast mode).
    ``micro_batches`` > 1 encodes a training step in checkpointed micro-batches (see the
    module docstring); the trainer sets it. ``sharing`` gives each task its own
    representation (learning to share, module docstring); ``regularizer`` is JMT's
    successive regularisation (:class:`~infomtl.modeling.sharing.SuccessiveRegularizer`).
    """

    micro_batches: int = 1
    #: encode a training step task by task (the trainer sets it for ``grads=split``)
    task_graphs: bool = False
    #: packed calls in few shapes: widths a multiple of it (0: any; :mod:`infomtl.modeling.packing`)
    shape_step: int = 0

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        pooling: str = "cls",
        chunk_tokens: int = 0,
        freeze_encoder: bool = False,
        shared_mlp: nn.Module | None = None,
        sharing: Sharing | None = None,
        regularizer: nn.Module | None = None,
        packing: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.shared_mlp = shared_mlp
        self.decoder = decoder
        self.sharing = sharing
        self.regularizer = regularizer
        self.pooling = pooling
        self.chunk_tokens = chunk_tokens
        self.freeze_encoder = freeze_encoder
        #: the first position id of a packed row, or None: no packing (off, or an encoder it does not support)
        self.pack_base = position_base(encoder) if packing and sharing is None else None
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @property
    def token_states(self) -> bool:
        """Whether the decoder reads token states rather than the pooled ``h``."""
        return bool(getattr(self.decoder, "token_states", False))

    def train(self, mode: bool = True) -> MultiTaskModel:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def encode_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token states ``(B, L, d)`` of a padded batch.

        A frozen encoder's parameters need no gradient, so autograd records nothing here
        unless an input requires one (the FGM perturbation of the robustness analysis)."""
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        return self.encoder(**kwargs).last_hidden_state

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled representation ``h`` ``(B, d)`` of a padded batch; with a sharing module,
        its sources ``(B, S, d)``: every layer pooled, or every task copy's output pooled."""
        if isinstance(self.sharing, LayerSharing):
            kwargs: dict[str, torch.Tensor] = {"attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            if inputs_embeds is not None:
                kwargs["inputs_embeds"] = inputs_embeds
            else:
                kwargs["input_ids"] = input_ids
            layers = self.encoder(**kwargs, output_hidden_states=True).hidden_states
            return torch.stack([pool(x, attention_mask, self.pooling) for x in layers], dim=1)
        states = self.encode_states(input_ids, attention_mask, token_type_ids, inputs_embeds)
        if isinstance(self.sharing, CrossStitch):  # the T copies' outputs, stacked along the batch
            copies = self.sharing.num_tasks
            pooled = pool(states, attention_mask.repeat(copies, 1), self.pooling)
            return pooled.view(copies, attention_mask.shape[0], -1).transpose(0, 1)
        return pool(states, attention_mask, self.pooling)

    def encode_chunked(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        lengths: np.ndarray,
    ) -> torch.Tensor:
        """:meth:`encode` in length-sorted chunks of at most ``chunk_tokens`` padded tokens
        (and, with micro-batches, at most ``⌈n / micro_batches⌉`` rows, checkpointed)."""
        n, width = input_ids.shape
        rows = math.ceil(n / self.micro_batches) if self._checkpointing() else n
        if self.pack_base is not None and rows >= n:
            return self.encode_packed(input_ids, token_type_ids, lengths)
        if rows >= n and (self.chunk_tokens <= 0 or n * width <= self.chunk_tokens):
            return self.encode(input_ids, attention_mask, token_type_ids)
        order = np.argsort(-lengths, kind="stable")
        pieces, start = [], 0
        sorted_lengths = lengths[order]
        while start < n:
            longest = max(1, int(sorted_lengths[start]))
            take = max(1, self.chunk_tokens // longest) if self.chunk_tokens > 0 else n
            take = min(take, rows)
            short = np.flatnonzero(sorted_lengths[start : start + take] * 2 < longest)
            if len(short):
                take = int(short[0])
            idx = torch.from_numpy(order[start : start + take]).to(input_ids.device, non_blocking=True)
            types = None if token_type_ids is None else token_type_ids[idx, :longest]
            pieces.append(self._micro(self.encode, input_ids[idx, :longest], attention_mask[idx, :longest], types))
            start += take
        inverse = torch.from_numpy(np.argsort(order, kind="stable")).to(input_ids.device, non_blocking=True)
        return torch.cat(pieces).index_select(0, inverse)

    def encode_packed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None, lengths: np.ndarray
                      ) -> torch.Tensor:
        """Pooled ``h`` of the rows packed several to a sequence (module docstring), in calls of
        at most ``chunk_tokens`` tokens; rows in the order of ``input_ids``."""
        assert self.pack_base is not None
        width, bins = plan_packing(lengths, self.shape_step)
        per_call = max(1, self.chunk_tokens // width) if self.chunk_tokens > 0 else len(bins)
        config: Any = getattr(self.encoder, "config")  # noqa: B009 (a transformers config, untyped here)
        additive = torch.float32 if config._attn_implementation == "eager" else None
        pad_id = int(config.pad_token_id or 0)
        pieces, order = [], []
        for first in range(0, len(bins), per_call):
            call = bins[first : first + per_call]
            call = call + [[] for _ in range(call_sequences(len(call), self.shape_step) - len(call))]
            packed = pack(input_ids, token_type_ids, lengths, call, width, self.pack_base, pad_id, additive)
            kwargs = {"input_ids": packed.input_ids, "attention_mask": packed.attention_mask,
                      "position_ids": packed.position_ids}
            if packed.token_type_ids is not None:
                kwargs["token_type_ids"] = packed.token_type_ids
            states = self.encoder(**kwargs).last_hidden_state
            rows = np.asarray([i for b in call for i in b], dtype=np.int64)
            pieces.append(pool_packed(states, packed, rows, self.pooling))
            order.append(rows)
        inverse = torch.from_numpy(np.argsort(np.concatenate(order), kind="stable")).to(input_ids.device)
        return torch.cat(pieces).index_select(0, inverse)

    def _checkpointing(self) -> bool:
        """Whether this forward runs in checkpointed micro-batches (training with gradients
        through a trainable encoder)."""
        return (
            self.micro_batches > 1 and self.training and torch.is_grad_enabled()
            and any(p.requires_grad for p in self.encoder.parameters())
        )

    def _micro(self, fn, *args: torch.Tensor | None) -> torch.Tensor:
        """``fn(*args)``, checkpointed when running in micro-batches."""
        if self._checkpointing():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def encode_states_micro(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`encode_states`, in checkpointed row groups when running in micro-batches."""
        n = input_ids.shape[0]
        rows = math.ceil(n / self.micro_batches) if self._checkpointing() else n
        if rows >= n:
            return self.encode_states(input_ids, attention_mask, token_type_ids)
        return torch.cat([
            self._micro(
                self.encode_states, input_ids[s : s + rows], attention_mask[s : s + rows],
                None if token_type_ids is None else token_type_ids[s : s + rows],
            )
            for s in range(0, n, rows)
        ])

    def forward(self, batch: Batch, views: int = 1) -> ModelOutput:
        return self.decode(self.represent(batch, views), batch, views)

    def represent(self, batch: Batch, views: int = 1) -> Representation:
        """The encoder side of :meth:`forward`: the batch's shared representation."""
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, got {views}")
        n = len(batch)
        if self.task_graphs and views == 1 and self.training and torch.is_grad_enabled() and len(batch.rows) > 1:
            return self._represent_by_task(batch)
        if batch.features is not None:
            if self.shared_mlp is None:
                raise ValueError("a batch of precomputed features needs a model with a shared_mlp")
            pooled = torch.cat([batch.features] * views)
            return Representation(pooled if self.sharing is not None else self.shared_mlp(pooled))
        ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
        lengths = _row_lengths(batch)
        if views == 2:
            ids, mask = torch.cat([ids, ids]), torch.cat([mask, mask])
            types = None if types is None else torch.cat([types, types])
            lengths = np.concatenate([lengths, lengths])
        if self.token_states:
            states = self.encode_states_micro(ids, mask, types)
            return Representation(pool(states, mask, self.pooling), states[:n], mask[:n])
        pooled = self.encode_chunked(ids, mask, types, lengths)
        if self.shared_mlp is not None and self.sharing is None:
            pooled = self.shared_mlp(pooled)
        return Representation(pooled)

    def _represent_by_task(self, batch: Batch) -> Representation:
        """:meth:`represent` with each task's rows encoded in a forward of their own, so that
        the autograd graph of one task's loss holds its rows only (``grads=split`` of
        :mod:`infomtl.methods.aggregation`). The rows of a task are contiguous in a batch
        (:func:`~infomtl.data.encoding.collate` lays them out by task)."""
        lengths = _row_lengths(batch)
        pieces, start = {}, 0
        for t in sorted(batch.rows):
            end = start + int(batch.rows[t].numel())
            if batch.features is not None:
                piece = batch.features[start:end]
            else:
                types = None if batch.token_type_ids is None else batch.token_type_ids[start:end]
                piece = self.encode_chunked(batch.input_ids[start:end], batch.attention_mask[start:end], types,
                                            lengths[start:end])
            pieces[t] = piece if self.shared_mlp is None else self.shared_mlp(piece)
            start = end
        return Representation(torch.cat(list(pieces.values())), pieces=pieces)

    def decode(self, rep: Representation, batch: Batch, views: int = 1) -> ModelOutput:
        """The decoder side of :meth:`forward`: split ``rep.pooled`` into ``h`` and its second
        view and run the heads on the rows ``batch.rows`` (labels are not read here). With a
        sharing module, ``h`` is first gathered from the sources (module docstring)."""
        pooled, rows = rep.pooled, batch.rows
        if rep.pieces is not None:  # each head on its own task's piece (TaskHeads)
            heads: dict[int, HeadOutput] = {}
            for t, piece in rep.pieces.items():
                heads.update(self.decoder(piece, {t: torch.arange(piece.shape[0], device=piece.device)})[0])
            return ModelOutput(h=pooled, h_views=None, heads=heads, task_graphs=True)
        if self.sharing is not None:
            pooled, rows = gather(self.sharing, pooled, rows, views)
            if self.shared_mlp is not None:
                pooled = self.shared_mlp(pooled)
        n = pooled.shape[0] // views
        h, h_views = (pooled[:n], pooled[n:]) if views == 2 else (pooled, None)
        if rep.states is not None:
            heads, extras = self.decoder(rep.states, rep.mask, rows)
        else:
            heads, extras = self.decoder(h, rows)
        return ModelOutput(h=h, h_views=h_views, heads=heads, extras=extras)


def _row_lengths(batch: Batch) -> np.ndarray:
    """Each row's real length: the batch's own, else counted from its attention mask."""
    return batch.lengths if batch.lengths is not None else batch.attention_mask.sum(1).cpu().numpy()
