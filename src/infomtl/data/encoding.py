"""Tokenize once, then turn one step's rows into tensors.

Texts are tokenized in one batched call per split (never inside ``forward``) and kept as
id arrays (:class:`EncodedSplit`, :func:`encode`). :func:`collate` pads one step's rows
to the longest row in it (dynamic padding) and groups them by task (:class:`Batch`);
which rows make a step is planned by :class:`~infomtl.data.batching.Batcher`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from infomtl.data.types import TaskData


@dataclass
class EncodedSplit:
    """One task's split as token ids, or as the pooled features of a frozen backbone
    (``features``: ``(N, d)``, no token ids; see :mod:`infomtl.modeling.feature_cache`)."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray
    features: torch.Tensor | None = None

    @property
    def lengths(self) -> np.ndarray:
        """Token length of each row (all 1 for a features split: one vector per row)."""
        if self.features is not None:
            return np.ones(len(self), dtype=np.int64)
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self))

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> EncodedSplit:
        """The rows at ``indices``, in that order (an empty ``indices``: a split with no rows)."""
        idx = np.asarray(indices, dtype=np.int64)
        return EncodedSplit(
            input_ids=[self.input_ids[i] for i in idx] if self.features is None else [],
            token_type_ids=None if self.token_type_ids is None else [self.token_type_ids[i] for i in idx],
            labels=self.labels[idx],
            features=None if self.features is None else self.features[torch.from_numpy(idx)],
        )


def encode(data: TaskData, tokenizer: Any, max_length: int) -> EncodedSplit:
    """Tokenize a split in one batched call (truncation to ``max_length``, no padding)."""
    if data.pairs is None:
        enc = tokenizer(data.texts, truncation=True, max_length=max_length)
    elif data.pair_first:
        enc = tokenizer(data.pairs, data.texts, truncation="longest_first", max_length=max_length)
    else:
        enc = tokenizer(data.texts, data.pairs, truncation="longest_first", max_length=max_length)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    types = enc.get("token_type_ids")
    types = [np.asarray(x, dtype=np.int64) for x in types] if types is not None else None
    return EncodedSplit(ids, types, data.labels)


@dataclass
class Batch:
    """One step's rows of several tasks, padded, as tensors.

    ``rows[t]`` indexes the batch rows that belong to task t (tasks absent from the
    step have no entry); ``labels[t]`` holds those rows' labels in the same order;
    ``example_ids[t]`` their row numbers in the task's split. A batch of frozen-backbone
    features carries ``features`` ``(B, d)`` and no tokens (``input_ids`` is ``(B, 0)``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    rows: dict[int, torch.Tensor]
    labels: dict[int, torch.Tensor]
    example_ids: dict[int, np.ndarray] = field(default_factory=dict)
    #: real (non-padding) length of each row, kept on the host for chunk planning
    lengths: np.ndarray | None = None
    features: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device: torch.device | str) -> Batch:
        move = lambda x: x.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            input_ids=move(self.input_ids),
            attention_mask=move(self.attention_mask),
            token_type_ids=None if self.token_type_ids is None else move(self.token_type_ids),
            rows={t: move(r) for t, r in self.rows.items()},
            labels={t: move(y) for t, y in self.labels.items()},
            example_ids=self.example_ids,
            lengths=self.lengths,
            features=None if self.features is None else move(self.features),
        )


def collate(
    splits: list[EncodedSplit], step: list[np.ndarray], pad_id: int, width: int | None = None
) -> Batch:
    """Pad the rows ``step[t]`` of each task t into one batch (rows grouped by task), to
    the longest row, or to ``width`` tokens when given (at least the longest row)."""
    if splits and splits[0].features is not None:
        return _collate_features(splits, step)
    seqs: list[np.ndarray] = []
    types: list[np.ndarray] | None = [] if splits and splits[0].token_type_ids is not None else None
    rows: dict[int, torch.Tensor] = {}
    labels: dict[int, torch.Tensor] = {}
    example_ids: dict[int, np.ndarray] = {}
    for t, idx in enumerate(step):
        if len(idx) == 0:
            continue
        split = splits[t]
        start = len(seqs)
        seqs.extend(split.input_ids[i] for i in idx)
        if types is not None:
            assert split.token_type_ids is not None  # every split has them when the first does
            types.extend(split.token_type_ids[i] for i in idx)
        rows[t] = torch.arange(start, start + len(idx))
        labels[t] = torch.from_numpy(split.labels[idx])
        example_ids[t] = np.asarray(idx)
    width = max([len(s) for s in seqs] + [width or 0])
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    tt = np.zeros((len(seqs), width), dtype=np.int64) if types is not None else None
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
        if tt is not None and types is not None:
            tt[i, : len(s)] = types[i]
    return Batch(
        input_ids=torch.from_numpy(ids),
        attention_mask=torch.from_numpy(mask),
        token_type_ids=None if tt is None else torch.from_numpy(tt),
        rows=rows,
        labels=labels,
        example_ids=example_ids,
        lengths=np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs)),
    )


def _collate_features(splits: list[EncodedSplit], step: list[np.ndarray]) -> Batch:
    """:func:`collate` for features splits: the rows' feature vectors, stacked."""
    batch = collate_targets(splits, step)
    batch.features = torch.cat([  # every split is a features split when the first is
        cast(torch.Tensor, splits[t].features)[torch.from_numpy(np.asarray(idx, dtype=np.int64))]
        for t, idx in enumerate(step) if len(idx)
    ])
    batch.lengths = np.ones(len(batch), dtype=np.int64)
    return batch


def collate_targets(splits: list[EncodedSplit], step: list[np.ndarray]) -> Batch:
    """The rows and labels of :func:`collate` ``(splits, step)``, without tokens or features
    (``input_ids`` is ``(B, 0)``): what the heads and the loss read."""
    rows: dict[int, torch.Tensor] = {}
    labels: dict[int, torch.Tensor] = {}
    example_ids: dict[int, np.ndarray] = {}
    start = 0
    for t, idx in enumerate(step):
        if len(idx) == 0:
            continue
        rows[t] = torch.arange(start, start + len(idx))
        labels[t] = torch.from_numpy(splits[t].labels[idx])
        example_ids[t] = np.asarray(idx)
        start += len(idx)
    empty = torch.zeros((start, 0), dtype=torch.int64)
    return Batch(
        input_ids=empty, attention_mask=empty, token_type_ids=None, rows=rows, labels=labels,
        example_ids=example_ids,
    )
