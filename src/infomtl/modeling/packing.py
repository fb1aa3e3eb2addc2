"""Padding-free encoder calls: several rows packed into one sequence.

A step's rows (both views for InfoMTL) are packed first-fit-decreasing into sequences of
width ``W`` (:func:`plan_packing`): row ``i`` of length ``ℓ_i`` occupies positions
``[o_i, o_i + ℓ_i)`` of sequence ``p_i``. Each token attends only to the tokens of its own
row (a block-diagonal mask, ``M[p, q, k] = seg[p, q] == seg[p, k]``), and its position id
restarts at the row's start (``pos = base + q − o_i``; ``base`` = 0 for BERT, the padding
id + 1 for RoBERTa), so every row's token states are those of the padded forward up to
float rounding: the encoder's layers act per token except attention, and attention sees
exactly the row's own keys. The tail of a sequence that no row fills is a segment of its
own (it attends to itself, never to a row), so no query row is fully masked.

Computed tokens are ``P·W`` for ``P`` sequences against ``Σ ℓ_i`` real ones. ``W`` is
the width that minimises ``P·W`` among the longest row ``m`` and the widths that could
hold the rows exactly in ``k`` sequences, ``⌈Σℓ/k⌉ + j`` (``j`` = 0…3, ``m ≤ W ≤ 3m``).
The library's steps are length-bucketed (their rows are of similar lengths, so a width of
``m`` holds one row each); on the throughput benchmark's TweetEval steps of 32 rows
(``benchmarks/throughput.py``) about 4 % of the computed tokens are padding (3.5 % with
InfoMTL's two views), against 16 % for sequences of width ``m`` and 25 % for one padded
forward, for 3–10 ms of host time a step. The attention itself runs over
``W`` keys per token, a small part of a token's cost at these lengths (``12·n_layers·W·d``
FLOPs against ``6·N``).

Shape steps (``step > 0``, set for bf16 inference by the predictor): ``W`` is a multiple of
``step`` and a call of four or more sequences is filled up with empty ones to a multiple of
four (:func:`call_sequences`), so the encoder's matrix products see few distinct shapes.
On a CPU, oneDNN builds and keeps a bf16 kernel per shape (about 0.35 MiB each for MiniLM's
layers), and a server meeting every shape would grow without bound.

Encoders: BERT- and RoBERTa-style models of Hugging Face with the ``sdpa`` or ``eager``
attention (a 4-D mask is passed through unchanged: ``sdpa`` takes it as booleans,
``eager`` as an additive float mask); any other encoder keeps the padded, length-sorted
forward (:func:`position_base` returns ``None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: model types whose position ids start at 0 (absolute learned positions)
ZERO_BASED = frozenset({"bert", "electra"})
#: model types whose position ids start after the padding id (``create_position_ids_from_input_ids``)
AFTER_PADDING = frozenset({"roberta", "xlm-roberta", "camembert"})
ATTENTIONS = frozenset({"sdpa", "eager"})
#: the widest sequence considered, in multiples of the longest row
MAX_ROWS_WIDE = 3


def position_base(encoder: torch.nn.Module) -> int | None:
    """The first position id of a row for this encoder, or ``None`` where packing is not supported."""
    config = getattr(encoder, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ATTENTIONS:
        return None
    if config.model_type in ZERO_BASED:
        return 0
    if config.model_type in AFTER_PADDING:
        return int(config.pad_token_id) + 1
    return None


def pack_rows(lengths: np.ndarray, width: int) -> list[list[int]]:
    """Row indices per sequence: first-fit decreasing of ``lengths`` into sequences of ``width`` tokens.

    Rows are taken longest first (ties by index, so the packing is deterministic); each
    goes into the first sequence with room for it, else opens a new one."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order.tolist():
        need = int(lengths[i])
        if need > width:
            raise ValueError(f"row {i} has {need} tokens, more than the sequence width {width}")
        for b, free in enumerate(room):
            if free >= need:
                bins[b].append(i)
                room[b] -= need
                break
        else:
            bins.append([i])
            room.append(width - need)
    return bins


def candidate_widths(lengths: np.ndarray) -> set[int]:
    """The widths :func:`plan_packing` considers (module docstring): the longest row ``m``, and
    for each count ``k`` of sequences from ``⌈Σℓ/3m⌉`` to ``⌈Σℓ/m⌉`` the widths ``⌈Σℓ/k⌉ + 0..3``
    within ``[m, 3m]``."""
    longest, total = max(1, int(np.max(lengths))), int(np.sum(lengths))
    widths = {longest}
    most = math.ceil(total / longest)  # the most sequences a width >= longest needs at best
    for k in range(math.ceil(total / (MAX_ROWS_WIDE * longest)), most + 1):
        exact = math.ceil(total / k)
        widths.update(w for w in range(exact, exact + 4) if longest <= w <= MAX_ROWS_WIDE * longest)
    return widths


def round_up(value: int, step: int) -> int:
    """The smallest multiple of ``step`` that is at least ``value``."""
    return -(-value // step) * step


def call_sequences(count: int, step: int) -> int:
    """The sequences of a call of ``count`` under shape step ``step`` (module docstring)."""
    return count if step <= 0 or count < 4 else round_up(count, 4)


def plan_packing(lengths: np.ndarray, step: int = 0) -> tuple[int, list[list[int]]]:
    """The sequence width ``W`` and the rows of each sequence (module docstring): the
    candidate width with the fewest computed tokens ``P·W``, the smallest on a tie (with
    ``step``: the candidates rounded up to multiples of it). Widths are tried in the order of
    their bound ``⌈Σℓ/W⌉·W`` (no packing needs fewer sequences), and the search stops at the
    first whose bound cannot beat the best so far: the same result, with a fraction of the
    first-fit passes."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    widths = candidate_widths(lengths)
    if step > 0:
        widths = {round_up(w, step) for w in widths}
    best: tuple[int, int, list[list[int]]] | None = None
    for bound, width in sorted((math.ceil(total / w) * w, w) for w in widths):
        if best is not None and (bound, width) >= best[:2]:
            break  # every width left computes more tokens than the best, or as many at a larger width
        bins = pack_rows(lengths, width)
        if best is None or (len(bins) * width, width) < best[:2]:
            best = (len(bins) * width, width, bins)
    assert best is not None
    return best[1], best[2]


@dataclass
class Packed:
    """One packed encoder call: inputs of ``P`` sequences of ``W`` tokens, and where each row went.

    ``seq[i]``, ``start[i]``: the sequence and first position of row ``i`` (row order of the
    padded batch); ``flat[i]`` = ``seq[i]·W + start[i]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # (P, 1, W, W): bool for sdpa, additive float for eager
    position_ids: torch.Tensor
    token_type_ids: torch.Tensor | None
    seq: torch.Tensor
    start: torch.Tensor
    lengths: torch.Tensor


def pack(
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    lengths: np.ndarray,
    bins: list[list[int]],
    width: int,
    base: int,
    pad_id: int,
    additive: torch.dtype | None = None,
) -> Packed:
    """The packed call for the rows of ``bins`` (indices into the padded ``input_ids``).

    ``additive``: build the mask as an additive float mask of that dtype (0 where a token
    may attend, the dtype's minimum elsewhere) instead of booleans."""
    device = input_ids.device
    n_seq = len(bins)
    seq = np.zeros(len(lengths), dtype=np.int64)
    start = np.zeros(len(lengths), dtype=np.int64)
    segment = np.full((n_seq, width), -1, dtype=np.int64)
    positions = np.zeros((n_seq, width), dtype=np.int64)
    src_row = np.full((n_seq, width), -1, dtype=np.int64)
    src_col = np.zeros((n_seq, width), dtype=np.int64)
    for p, rows in enumerate(bins):
        offset = 0
        for i in rows:
            ell = int(lengths[i])
            seq[i], start[i] = p, offset
            segment[p, offset : offset + ell] = i
            positions[p, offset : offset + ell] = base + np.arange(ell)
            src_row[p, offset : offset + ell] = i
            src_col[p, offset : offset + ell] = np.arange(ell)
            offset += ell
    real = torch.from_numpy(src_row >= 0).to(device)
    rows_t = torch.from_numpy(np.maximum(src_row, 0)).to(device)
    cols_t = torch.from_numpy(src_col).to(device)
    ids = torch.where(real, input_ids[rows_t, cols_t], torch.full_like(rows_t, pad_id))
    types = None
    if token_type_ids is not None:
        types = torch.where(real, token_type_ids[rows_t, cols_t], torch.zeros_like(rows_t))
    seg = torch.from_numpy(segment).to(device)
    mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1)  # the unfilled tail is segment -1: itself only
    if additive is not None:
        mask = torch.zeros(mask.shape, dtype=additive, device=device).masked_fill(~mask, torch.finfo(additive).min)
    return Packed(
        input_ids=ids, attention_mask=mask, position_ids=torch.from_numpy(positions).to(device),
        token_type_ids=types, seq=torch.from_numpy(seq).to(device), start=torch.from_numpy(start).to(device),
        lengths=torch.as_tensor(np.asarray(lengths, dtype=np.int64), device=device),
    )


def pool_packed(states: torch.Tensor, packed: Packed, rows: np.ndarray, pooling: str) -> torch.Tensor:
    """Pool the packed token states ``(P, W, d)`` per row: ``cls`` the row's first token,
    ``mean`` the mean over its ``ℓ_i`` tokens (as :func:`~infomtl.modeling.backbones.pool`)."""
    idx = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(states.device)
    seq, start = packed.seq[idx], packed.start[idx]
    if pooling == "cls":
        return states[seq, start]
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}")
    ell = packed.lengths[idx]
    span = torch.arange(int(ell.max()), device=states.device)
    inside = span.unsqueeze(0) < ell.unsqueeze(1)  # (n, max ℓ)
    cols = (start.unsqueeze(1) + span.unsqueeze(0)).clamp_max(states.shape[1] - 1)
    tokens = states[seq.unsqueeze(1), cols] * inside.unsqueeze(-1).to(states.dtype)
    return tokens.sum(1) / ell.clamp_min(1).unsqueeze(1).to(states.dtype)

__all__ = [
    "Packed", "call_sequences", "candidate_widths", "pack", "pack_rows", "plan_packing", "pool_packed", "position_base",
    "round_up",
]
