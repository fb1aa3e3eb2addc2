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

Token-state decoders (``decoder.token_states``, e.g. the TextCNN heads of STL-CNN)
receive the token states and the attention mask instead of ``h``; their batch is
encoded in one forward (no chunks). A frozen encoder (``freeze_encoder=True``) has
no trainable parameters, stays in eval mode and runs without gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from infomtl.backbones import pool
from infomtl.data.batching import Batch
from infomtl.heads import HeadOutput


@dataclass
class ModelOutput:
    """``h``: ``(B, d)`` shared representation; ``h_views``: the second dropout view or
    ``None``; ``heads[t]``: head output on task t's rows; ``extras``: whatever the
    decoder exposes (bottleneck means and variances...)."""

    h: torch.Tensor
    h_views: torch.Tensor | None
    heads: dict[int, HeadOutput]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


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
    fixed: no gradients, always in eval mode (only the decoder trains).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        pooling: str = "cls",
        chunk_tokens: int = 0,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.pooling = pooling
        self.chunk_tokens = chunk_tokens
        self.freeze_encoder = freeze_encoder
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
        """Token states ``(B, L, d)`` of a padded batch (no gradients if frozen)."""
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            return self.encoder(**kwargs).last_hidden_state

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled representation ``h`` of a padded batch."""
        states = self.encode_states(input_ids, attention_mask, token_type_ids, inputs_embeds)
        return pool(states, attention_mask, self.pooling)

    def encode_chunked(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        lengths: np.ndarray,
    ) -> torch.Tensor:
        """:meth:`encode` in length-sorted chunks of at most ``chunk_tokens`` padded tokens."""
        n, width = input_ids.shape
        if self.chunk_tokens <= 0 or n * width <= self.chunk_tokens:
            return self.encode(input_ids, attention_mask, token_type_ids)
        order = np.argsort(-lengths, kind="stable")
        pieces, start = [], 0
        sorted_lengths = lengths[order]
        while start < n:
            longest = max(1, int(sorted_lengths[start]))
            take = max(1, self.chunk_tokens // longest)
            short = np.flatnonzero(sorted_lengths[start : start + take] * 2 < longest)
            if len(short):
                take = int(short[0])
            idx = torch.from_numpy(order[start : start + take]).to(input_ids.device)
            types = None if token_type_ids is None else token_type_ids[idx, :longest]
            pieces.append(self.encode(input_ids[idx, :longest], attention_mask[idx, :longest], types))
            start += take
        inverse = torch.from_numpy(np.argsort(order, kind="stable")).to(input_ids.device)
        return torch.cat(pieces).index_select(0, inverse)

    def forward(self, batch: Batch, views: int = 1) -> ModelOutput:
        ids, mask, types = batch.input_ids, batch.attention_mask, batch.token_type_ids
        lengths = batch.lengths
        if lengths is None:
            lengths = batch.attention_mask.sum(1).cpu().numpy()
        if views == 2:
            ids, mask = torch.cat([ids, ids]), torch.cat([mask, mask])
            types = None if types is None else torch.cat([types, types])
            lengths = np.concatenate([lengths, lengths])
        elif views != 1:
            raise ValueError(f"views must be 1 or 2, got {views}")
        n = len(batch)
        if self.token_states:
            states = self.encode_states(ids, mask, types)
            pooled = pool(states, mask, self.pooling)
        else:
            pooled = self.encode_chunked(ids, mask, types, lengths)
        h, h_views = (pooled[:n], pooled[n:]) if views == 2 else (pooled, None)
        if self.token_states:
            heads, extras = self.decoder(states[:n], mask[:n], batch.rows)
        else:
            heads, extras = self.decoder(h, batch.rows)
        return ModelOutput(h=h, h_views=h_views, heads=heads, extras=extras)
