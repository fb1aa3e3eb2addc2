"""Stratified subsampling and head(): exact sizes, proportions, order, determinism."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infomtl.data import head, subsample
from infomtl.data.subsample import allocate
from infomtl.data.tweeteval import load_tweeteval
from infomtl.data.types import TaskData
from infomtl.errors import ConfigError
from infomtl.tasks import Task, TaskKind

CLS = Task("toy", TaskKind.CLASSIFICATION, labels=("a", "b", "c"))


def make_data(class_sizes: tuple[int, ...] = (70, 25, 5), seed: int = 0) -> TaskData:
    labels = np.repeat(np.arange(len(class_sizes)), class_sizes)
    np.random.default_rng(seed).shuffle(labels)
    n = len(labels)
    return TaskData(
        task=CLS, split="train", texts=[f"row{i}" for i in range(n)], labels=labels,
        groups=[f"g{i}" for i in range(n)], pairs=[f"p{i}" for i in range(n)],
    )


@pytest.mark.parametrize("ratio", [0.01, 0.05, 0.1, 0.25, 0.333, 0.5, 0.77, 0.999])
def test_ratio_gives_exactly_the_rounded_total(ratio: float) -> None:
    data = make_data()
    assert len(subsample(data, ratio=ratio, seed=3)) == max(1, round(ratio * len(data)))


def test_tiny_ratio_keeps_at_least_one_row() -> None:
    assert len(subsample(make_data(), ratio=1e-6)) == 1


def test_count_is_capped_at_the_split_size() -> None:
    data = make_data()
    assert len(subsample(data, count=17)) == 17
    assert len(subsample(data, count=10_000)) == len(data)


def test_each_class_gets_its_proportional_share() -> None:
    data = make_data((700, 250, 50))
    sub = subsample(data, ratio=0.1, seed=1)
    assert Counter(sub.labels.tolist()) == {0: 70, 1: 25, 2: 5}
    sub = subsample(data, count=33, seed=1)
    counts = Counter(sub.labels.tolist())
    for label, size in enumerate((700, 250, 50)):
        assert abs(counts[label] - 33 * size / 1000) < 1


def test_rows_keep_their_original_order_and_alignment() -> None:
    data = make_data()
    sub = subsample(data, ratio=0.3, seed=5)
    idx = [int(t[3:]) for t in sub.texts]
    assert idx == sorted(idx)
    assert sub.groups == [f"g{i}" for i in idx] and sub.pairs == [f"p{i}" for i in idx]
    assert sub.labels.tolist() == data.labels[idx].tolist()


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    data = make_data()
    a = subsample(data, ratio=0.2, seed=7)
    b = subsample(data, ratio=0.2, seed=7)
    c = subsample(data, ratio=0.2, seed=8)
    assert a.texts == b.texts
    assert a.texts != c.texts


def test_ratio_one_keeps_everything() -> None:
    data = make_data()
    assert subsample(data, ratio=1.0).texts == data.texts


def test_multilabel_and_regression_data_subsample() -> None:
    ml = Task("ml", TaskKind.MULTILABEL, labels=("x", "y"))
    reg = Task("reg", TaskKind.REGRESSION)
    labels = np.array([[1, 0], [0, 1], [0, 0], [1, 1]] * 10, dtype=np.float32)
    ml_data = TaskData(task=ml, split="train", texts=[str(i) for i in range(40)], labels=labels)
    reg_data = TaskData(task=reg, split="train", texts=[str(i) for i in range(40)],
                        labels=np.linspace(0, 1, 40))
    assert len(subsample(ml_data, ratio=0.5)) == 20
    assert subsample(reg_data, count=7).labels.shape == (7, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"ratio": 0}, {"ratio": 1.5}, {"ratio": -0.1}, {"ratio": math.nan}, {"ratio": True},
     {"count": 0}, {"count": -3}, {"count": 2.5}, {}, {"ratio": 0.5, "count": 3}],
)
def test_invalid_ratio_or_count_is_a_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        subsample(make_data(), **kwargs)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.data())
def test_allocate_sums_exactly_and_never_exceeds_a_group(sizes: list[int], data: st.DataObject) -> None:
    total = data.draw(st.integers(0, sum(sizes)))
    quotas = allocate(np.array(sizes), total)
    assert int(quotas.sum()) == total
    assert all(0 <= q <= s for q, s in zip(quotas, sizes, strict=True))
    n = sum(sizes)
    if n:
        assert all(abs(q - total * s / n) < 1 for q, s in zip(quotas, sizes, strict=True))


def test_head_keeps_the_first_rows() -> None:
    data = make_data()
    assert head(data, 5).texts == [f"row{i}" for i in range(5)]
    assert len(head(data, 0)) == 0
    assert len(head(data, 10_000)) == len(data)
    with pytest.raises(ConfigError):
        head(data, -1)


def test_real_sentiment_train_keeps_class_proportions(data_root: Path) -> None:
    train = load_tweeteval(data_root / "tweeteval", ["sentiment"])["sentiment"]["train"]
    sub = subsample(train, ratio=0.1, seed=0)
    assert len(sub) == round(0.1 * 45616)
    full = Counter(train.labels.tolist())
    part = Counter(sub.labels.tolist())
    for label, size in full.items():
        assert abs(part[label] - 0.1 * size) < 1
