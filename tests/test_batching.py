"""Batcher regimes, length bucketing, sharding, and encode + collate on the tiny tokenizer."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from infomtl.data.batching import ADAPTIVE_REGIMES, REGIMES, Batcher, shard, shard_order
from infomtl.data.encoding import EncodedSplit, collate, collate_targets, encode
from infomtl.data.types import TaskData
from infomtl.modeling.backbones import load_backbone
from infomtl.tasks import Task, TaskKind


def _lengths(sizes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 120, size=n) for n in sizes]


SIZES = (300, 90, 7)  # the last task has fewer rows than steps in `mixed`
BATCH = 32
#: the regimes that plan an epoch in advance (autosem chooses its steps while training)
PLANNED = [r for r in REGIMES if r not in ADAPTIVE_REGIMES]


def _planned(lengths: list[np.ndarray], regime: str, **kw) -> Batcher:
    """A batcher of a planned regime (the ratios regime with ratios 1, 2, 0.5)."""
    ratios = [1.0, 2.0, 0.5][: len(lengths)] if regime == "ratios" else None
    return Batcher(lengths, BATCH, regime, ratios=ratios, **kw)


def _flat(plan: list[list[np.ndarray]], t: int) -> list[int]:
    return [int(i) for step in plan for i in step[t]]


# --------------------------------------------------------------------------- #
# mixed
# --------------------------------------------------------------------------- #


def test_mixed_steps_per_epoch_is_ceil_of_total_over_batch() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "mixed")
    assert batcher.steps_per_epoch() == math.ceil(sum(SIZES) / BATCH)
    assert len(batcher.epoch(1)) == batcher.steps_per_epoch()


def test_mixed_covers_every_row_of_every_large_task_exactly_once() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "mixed")
    plan = batcher.epoch(1)
    steps = len(plan)
    for t, n in enumerate(SIZES):
        seen = Counter(_flat(plan, t))
        assert set(seen) == set(range(n)), f"task {t} misses rows"
        if n >= steps:
            assert all(c == 1 for c in seen.values()), f"task {t} repeats rows"


def test_mixed_cycles_a_small_task_so_every_step_holds_every_task() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "mixed")
    plan = batcher.epoch(3)
    steps = len(plan)
    assert SIZES[2] < steps
    for step in plan:
        assert len(step) == len(SIZES)
        assert all(len(idx) >= 1 for idx in step)
    # the small task: one row per step, each of its rows used ⌊S/n⌋ or ⌈S/n⌉ times
    counts = Counter(_flat(plan, 2))
    assert sum(counts.values()) == steps
    assert set(counts.values()) <= {steps // SIZES[2], -(-steps // SIZES[2])}


def test_mixed_rows_per_step_are_proportional_to_task_size() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "mixed")
    plan = batcher.epoch(1)
    steps = len(plan)
    for t, n in enumerate(SIZES):
        share = max(1.0, n / steps)
        for step in plan:
            assert abs(len(step[t]) - share) <= 1


def test_mixed_with_a_single_task_is_a_plain_pass() -> None:
    batcher = Batcher(_lengths((100,)), 32, "mixed")
    plan = batcher.epoch(1)
    assert len(plan) == 4
    assert sorted(_flat(plan, 0)) == list(range(100))


# --------------------------------------------------------------------------- #
# uniform, per-task, temperature
# --------------------------------------------------------------------------- #


def test_uniform_gives_batch_over_tasks_rows_of_each_task_per_step() -> None:
    batcher = Batcher(_lengths(SIZES), 30, "uniform")
    plan = batcher.epoch(1)
    assert len(plan) == math.ceil(sum(SIZES) / 30)
    for step in plan:
        assert [len(idx) for idx in step] == [10, 10, 10]
    for t, n in enumerate(SIZES):
        rows = _flat(plan, t)
        assert all(0 <= i < n for i in rows)


def test_uniform_keeps_at_least_one_row_per_task_when_tasks_outnumber_the_batch() -> None:
    batcher = Batcher(_lengths((20, 20, 20, 20)), 3, "uniform")
    for step in batcher.epoch(1):
        assert [len(idx) for idx in step] == [1, 1, 1, 1]


def test_per_task_has_one_task_per_step_and_covers_every_row_once() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "per-task")
    plan = batcher.epoch(1)
    assert len(plan) == batcher.steps_per_epoch() == sum(math.ceil(n / BATCH) for n in SIZES)
    for step in plan:
        assert sum(len(idx) > 0 for idx in step) == 1
        assert max(len(idx) for idx in step) <= BATCH
    for t, n in enumerate(SIZES):
        assert sorted(_flat(plan, t)) == list(range(n))


def test_per_task_interleaves_tasks() -> None:
    batcher = Batcher(_lengths((200, 200)), 10, "per-task")
    order = [next(t for t, idx in enumerate(step) if len(idx)) for step in batcher.epoch(1)]
    # shuffled together, not all of task 0 then all of task 1
    assert order != sorted(order)


def test_temperature_has_one_task_per_step_of_full_batches() -> None:
    batcher = Batcher(_lengths(SIZES), BATCH, "temperature", temperature=2.0)
    plan = batcher.epoch(1)
    assert len(plan) == batcher.steps_per_epoch()
    for step in plan:
        assert len(step) == len(SIZES)
        assert sum(len(idx) > 0 for idx in step) == 1
        assert max(len(idx) for idx in step) == BATCH
    for t, n in enumerate(SIZES):
        assert all(0 <= i < n for i in _flat(plan, t))


def test_temperature_draws_tasks_roughly_by_size_to_the_power_one_over_t() -> None:
    sizes = (4000, 1000)
    batcher = Batcher(_lengths(sizes), 8, "temperature", temperature=2.0)
    counts = Counter()
    for epoch in range(1, 4):
        for step in batcher.epoch(epoch):
            counts[next(t for t, idx in enumerate(step) if len(idx))] += 1
    share = counts[0] / sum(counts.values())
    assert share == pytest.approx(2 / 3, abs=0.05)  # √4000 : √1000 = 2 : 1


# --------------------------------------------------------------------------- #
# order, determinism, errors
# --------------------------------------------------------------------------- #


def _same(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> bool:
    return len(a) == len(b) and all(
        all(np.array_equal(x, y) for x, y in zip(sa, sb, strict=True)) for sa, sb in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("regime", PLANNED)
def test_same_seed_gives_the_same_plan_and_another_epoch_another_order(regime: str) -> None:
    lengths = _lengths(SIZES)
    a = _planned(lengths, regime, seed=7)
    b = _planned(lengths, regime, seed=7)
    assert _same(a.epoch(1), b.epoch(1))
    assert not _same(a.epoch(1), a.epoch(2))
    assert not _same(a.epoch(1), _planned(lengths, regime, seed=8).epoch(1))


def test_batcher_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="regime"):
        Batcher(_lengths(SIZES), BATCH, "random")
    with pytest.raises(ValueError, match="batch_size"):
        Batcher(_lengths(SIZES), 0)
    with pytest.raises(ValueError, match="at least one"):
        Batcher([np.array([5, 6]), np.array([], dtype=np.int64)], BATCH)


# --------------------------------------------------------------------------- #
# length bucketing
# --------------------------------------------------------------------------- #


def _padding_ratio(batcher: Batcher, lengths: list[np.ndarray]) -> float:
    """Padded tokens / real tokens over one epoch (width = longest row of the step)."""
    padded = real = 0
    for step in batcher.epoch(1):
        rows = np.concatenate([lengths[t][idx] for t, idx in enumerate(step)])
        padded += int(rows.max()) * len(rows)
        real += int(rows.sum())
    return padded / real


@pytest.mark.parametrize("regime", PLANNED)
def test_length_bucketing_reduces_padding(regime: str) -> None:
    lengths = _lengths((800, 400, 200), seed=5)
    bucketed = _planned(lengths, regime, seed=1, bucket_window=50)
    plain = _planned(lengths, regime, seed=1, bucket_window=1)
    with_buckets, without = _padding_ratio(bucketed, lengths), _padding_ratio(plain, lengths)
    assert with_buckets < without
    assert with_buckets < 0.8 * without


def test_bucketing_keeps_mixed_coverage() -> None:
    lengths = _lengths((500, 250), seed=2)
    plan = Batcher(lengths, BATCH, "mixed", bucket_window=50).epoch(1)
    assert sorted(_flat(plan, 0)) == list(range(500))
    assert sorted(_flat(plan, 1)) == list(range(250))


# --------------------------------------------------------------------------- #
# shard
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_splits_a_step_across_ranks_without_loss_or_overlap(world_size: int) -> None:
    step = Batcher(_lengths(SIZES), BATCH, "mixed").epoch(1)[0]
    parts = [shard(step, rank, world_size) for rank in range(world_size)]
    for t, idx in enumerate(step):
        pieces = [p[t] for p in parts]
        merged = np.concatenate(pieces)
        assert sorted(merged.tolist()) == sorted(idx.tolist())
        assert len(set(merged.tolist())) == len(merged)
        sizes = [len(p) for p in pieces]
        assert max(sizes) - min(sizes) <= 1


def test_shard_with_one_process_is_the_step_itself() -> None:
    step = [np.array([3, 1, 2]), np.array([0])]
    assert shard(step, 0, 1) is step


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_shard_deals_the_batch_rows_in_turn_so_totals_differ_by_at_most_one(world_size: int) -> None:
    # 3 tasks of one row each on 2 processes: per-task striding alone would give rank 0 all
    step = [np.array([4]), np.array([7]), np.array([1]), np.array([], dtype=np.int64)]
    totals = [sum(len(idx) for idx in shard(step, r, world_size)) for r in range(world_size)]
    assert sum(totals) == 3 and max(totals) - min(totals) <= 1
    # a process gets nothing only when the step holds fewer rows than processes
    assert (min(totals) == 0) == (3 < world_size)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_order_puts_the_concatenated_shards_back_in_batch_order(world_size: int) -> None:
    lengths = _lengths(SIZES)
    step = Batcher(lengths, BATCH, "mixed").epoch(2)[3]
    splits = [EncodedSplit([np.arange(n) + 1 for n in L], None, np.arange(len(L)) * 10 + t)
              for t, L in enumerate(lengths)]
    whole = collate(splits, step, pad_id=0)
    parts = [collate(splits, shard(step, r, world_size), pad_id=0) for r in range(world_size)]
    labels = np.concatenate([np.concatenate([p.labels[t].numpy() for t in sorted(p.labels)]) for p in parts])
    order = shard_order(step, world_size)
    assert sorted(order.tolist()) == list(range(len(whole)))
    assert (labels[order] == np.concatenate([whole.labels[t].numpy() for t in sorted(whole.labels)])).all()


def test_collate_targets_has_the_rows_and_labels_of_collate_and_no_tokens() -> None:
    splits = [EncodedSplit([np.arange(n) + 1 for n in (3, 5, 2)], None, np.array([0, 1, 2])),
              EncodedSplit([np.arange(4) + 1], None, np.array([[0.5, 1.0]]))]
    step = [np.array([2, 0]), np.array([0])]
    whole, targets = collate(splits, step, pad_id=0), collate_targets(splits, step)
    assert targets.input_ids.shape == (3, 0) and len(targets) == len(whole)
    for t in whole.rows:
        assert torch.equal(targets.rows[t], whole.rows[t])
        assert torch.equal(targets.labels[t], whole.labels[t])


def test_collate_pads_to_a_given_width() -> None:
    splits = [EncodedSplit([np.arange(n) + 1 for n in (3, 5)], None, np.array([0, 1]))]
    batch = collate(splits, [np.array([0])], pad_id=9, width=6)
    assert batch.input_ids.tolist() == [[1, 2, 3, 9, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0, 0]]


# --------------------------------------------------------------------------- #
# encode + collate
# --------------------------------------------------------------------------- #

TASK_A = Task("a", TaskKind.CLASSIFICATION, labels=("neg", "pos"))
TASK_B = Task("b", TaskKind.REGRESSION, targets=("v", "w"))
TEXTS = [
    "the game was great",
    "no",
    "i love the new phone but the battery is awful and the screen is bad and the app is slow",
    "so",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("tiny", max_length=16).tokenizer


def _encoded(tokenizer):
    a = TaskData(TASK_A, "train", TEXTS, np.array([1, 0, 1, 0]))
    b = TaskData(
        TASK_B, "train", TEXTS[:3], np.arange(6, dtype=np.float32).reshape(3, 2),
        pairs=["hotel", "flight", "the trip was fun"],
    )
    return [encode(a, tokenizer, 16), encode(b, tokenizer, 16)]


def test_encode_keeps_unpadded_ids_truncated_to_max_length(tokenizer) -> None:
    split = _encoded(tokenizer)[0]
    assert len(split) == 4
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    for ids, text in zip(split.input_ids, TEXTS, strict=True):
        assert ids[0] == cls_id and ids[-1] == sep_id
        assert len(ids) <= 16
        assert list(ids) == tokenizer(text, truncation=True, max_length=16)["input_ids"]
    assert split.lengths.tolist() == [len(x) for x in split.input_ids]
    assert split.lengths.max() == 16  # the long text is cut


def test_text_pairs_get_second_segment_token_types(tokenizer) -> None:
    pairs = _encoded(tokenizer)[1]
    assert pairs.token_type_ids is not None
    for ids, types in zip(pairs.input_ids, pairs.token_type_ids, strict=True):
        assert len(ids) == len(types)
        assert types[0] == 0 and types[-1] == 1
        # segment A (with [CLS] and its [SEP]) then segment B
        first_one = int(np.argmax(types == 1))
        assert ids[first_one - 1] == tokenizer.sep_token_id
        assert (types[first_one:] == 1).all()


def test_collate_pads_to_the_longest_row_with_a_matching_attention_mask(tokenizer) -> None:
    splits = _encoded(tokenizer)
    step = [np.array([2, 1]), np.array([0, 2])]
    batch = collate(splits, step, pad_id=tokenizer.pad_token_id)
    lengths = [len(splits[0].input_ids[i]) for i in (2, 1)] + [len(splits[1].input_ids[i]) for i in (0, 2)]
    assert batch.input_ids.shape == (4, max(lengths))
    assert batch.attention_mask.sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert (batch.input_ids[row, n:] == tokenizer.pad_token_id).all()
        assert (batch.attention_mask[row, :n] == 1).all()
    assert batch.token_type_ids is not None and batch.token_type_ids.shape == batch.input_ids.shape
    assert len(batch) == 4
    assert batch.num_tokens == sum(lengths)


def test_collate_rows_labels_and_example_ids_line_up_with_the_plan(tokenizer) -> None:
    splits = _encoded(tokenizer)
    step = [np.array([3, 0, 2]), np.array([1])]
    batch = collate(splits, step, pad_id=0)
    assert batch.rows[0].tolist() == [0, 1, 2]
    assert batch.rows[1].tolist() == [3]
    assert batch.labels[0].tolist() == [0, 1, 1]
    assert batch.labels[1].tolist() == [[2.0, 3.0]]
    assert batch.labels[1].dtype == torch.float32
    assert batch.example_ids[0].tolist() == [3, 0, 2]
    assert batch.example_ids[1].tolist() == [1]
    for t, idx in enumerate(step):
        for row, i in zip(batch.rows[t].tolist(), idx, strict=True):
            ids = splits[t].input_ids[i]
            assert batch.input_ids[row, : len(ids)].tolist() == ids.tolist()
            if splits[t].token_type_ids is not None:
                types = splits[t].token_type_ids[i]
                assert batch.token_type_ids[row, : len(types)].tolist() == types.tolist()


def test_collate_leaves_absent_tasks_out(tokenizer) -> None:
    splits = _encoded(tokenizer)
    batch = collate(splits, [np.zeros(0, dtype=np.int64), np.array([0, 1])], pad_id=0)
    assert set(batch.rows) == set(batch.labels) == {1}
    moved = batch.to("cpu")
    assert moved.rows[1].tolist() == [0, 1]
    assert moved.example_ids[1].tolist() == [0, 1]


def test_a_planned_step_collates_into_a_batch(tokenizer) -> None:
    splits = _encoded(tokenizer)
    batcher = Batcher([s.lengths for s in splits], 4, "mixed", seed=0)
    for step in batcher.epoch(1):
        batch = collate(splits, step, pad_id=0)
        for t, idx in enumerate(step):
            assert batch.example_ids[t].tolist() == list(idx)
            assert batch.labels[t].shape[0] == len(idx)
            lengths = splits[t].lengths[idx]
            assert batch.attention_mask[batch.rows[t]].sum(1).tolist() == lengths.tolist()
