"""Heads and the multi-task model: shapes, Gaussian sampling, views, per-task rows, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infomtl.data.encoding import Batch, collate, encode
from infomtl.data.types import TaskData
from infomtl.modeling.backbones import load_backbone, pool
from infomtl.modeling.heads import GaussianHead, HeadOutput, LinearHead
from infomtl.modeling.model import ModelOutput, MultiTaskModel, TaskHeads
from infomtl.tasks import Task, TaskKind

TASKS = [
    Task("alpha", TaskKind.CLASSIFICATION, labels=("a", "b", "c")),
    Task("beta", TaskKind.CLASSIFICATION, labels=("x", "y")),
    Task("gamma", TaskKind.REGRESSION, targets=("v", "w")),
]
TEXTS = [
    "the game was great",
    "i hate the new phone update",
    "what a wonderful day at the beach",
    "no",
    "the hotel was terrible and the flight was late again",
]


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny", pooling="mean", max_length=32)


def _splits(tokenizer) -> list:
    data = [
        TaskData(TASKS[0], "train", TEXTS, np.array([0, 1, 2, 0, 1])),
        TaskData(TASKS[1], "train", TEXTS[::-1], np.array([1, 0, 1, 0, 1])),
        TaskData(TASKS[2], "train", TEXTS, np.arange(10, dtype=np.float32).reshape(5, 2)),
    ]
    return [encode(d, tokenizer, 32) for d in data]


def _model(tiny, head_cls=LinearHead, **kw) -> MultiTaskModel:
    torch.manual_seed(0)
    heads = [head_cls(tiny.hidden_size, t.num_outputs, **kw) for t in TASKS]
    return MultiTaskModel(tiny.encoder, TaskHeads(heads), pooling="mean")


def _batch(tiny, step: list[list[int]]) -> Batch:
    return collate(_splits(tiny.tokenizer), [np.asarray(s, dtype=np.int64) for s in step], 0)


# --------------------------------------------------------------------------- #
# Heads
# --------------------------------------------------------------------------- #


def test_linear_head_shape_and_no_logvar_or_sample() -> None:
    head = LinearHead(8, 3, dropout=0.1)
    out = head(torch.randn(5, 8))
    assert out.mean.shape == (5, 3)
    assert out.logvar is None and out.sample is None
    assert out.train_output is out.mean


def test_linear_head_in_eval_mode_is_the_affine_map() -> None:
    head = LinearHead(8, 3, dropout=0.5).eval()
    h = torch.randn(4, 8)
    torch.testing.assert_close(head(h).mean, h @ head.linear.weight.T + head.linear.bias)


def test_gaussian_head_shapes_in_train_mode() -> None:
    head = GaussianHead(8, 4, dropout=0.2).train()
    out = head(torch.randn(6, 8))
    assert out.mean.shape == out.logvar.shape == out.sample.shape == (6, 4)
    assert out.train_output is out.sample


def test_gaussian_head_samples_only_in_train_mode_and_predicts_with_the_mean() -> None:
    head = GaussianHead(8, 4, dropout=0.2)
    h = torch.randn(6, 8)
    head.eval()
    out = head(h)
    assert out.sample is None
    assert out.train_output is out.mean
    # eval: no dropout, so the mean is the plain affine map of h
    torch.testing.assert_close(out.mean, head.mean(h))
    torch.testing.assert_close(out.logvar, head.logvar(h))
    again = head(h)
    assert torch.equal(out.mean, again.mean)


def test_gaussian_sample_is_mean_plus_std_times_seeded_noise() -> None:
    head = GaussianHead(8, 3, dropout=0.0)
    h = torch.randn(5, 8)
    head.train()
    torch.manual_seed(123)
    out = head(h)
    with torch.no_grad():
        mu, logvar = head.mean(h), head.logvar(h)
    torch.manual_seed(123)
    eps = torch.randn(5, 3)
    torch.testing.assert_close(out.mean, mu)
    torch.testing.assert_close(out.logvar, logvar)
    torch.testing.assert_close(out.sample, mu + torch.exp(logvar / 2) * eps)


def test_gaussian_head_dropout_applies_to_the_mean_branch_only() -> None:
    head = GaussianHead(16, 3, dropout=0.5).train()
    h = torch.randn(32, 16)
    torch.manual_seed(0)
    first = head(h)
    torch.manual_seed(1)
    second = head(h)
    assert not torch.allclose(first.mean, second.mean)
    torch.testing.assert_close(first.logvar, second.logvar)


def test_gaussian_head_with_a_hidden_layer_reads_both_branches_from_it() -> None:
    head = GaussianHead(8, 3, dropout=0.1, hidden=5)
    assert head.trunk is not None
    assert head.mean.in_features == head.logvar.in_features == 5
    head.eval()
    h = torch.randn(4, 8)
    out = head(h)
    u = head.trunk(h)
    torch.testing.assert_close(out.mean, head.mean(u))
    torch.testing.assert_close(out.logvar, head.logvar(u))
    head.train()
    assert head(h).sample.shape == (4, 3)


def test_gaussian_head_without_hidden_layer_has_no_trunk() -> None:
    head = GaussianHead(8, 3, hidden=0)
    assert head.trunk is None
    assert head.mean.in_features == head.logvar.in_features == 8


# --------------------------------------------------------------------------- #
# MultiTaskModel
# --------------------------------------------------------------------------- #


def test_forward_with_one_view_has_no_second_view(tiny) -> None:
    model = _model(tiny).eval()
    batch = _batch(tiny, [[0, 1], [2], [3, 4]])
    out = model(batch, views=1)
    assert isinstance(out, ModelOutput)
    assert out.h.shape == (5, tiny.hidden_size)
    assert out.h_views is None


def test_two_views_have_the_same_shape_and_differ_by_dropout_in_train_mode(tiny) -> None:
    model = _model(tiny).train()
    batch = _batch(tiny, [[0, 1], [2], [3, 4]])
    torch.manual_seed(0)
    out = model(batch, views=2)
    assert out.h.shape == out.h_views.shape == (5, tiny.hidden_size)
    assert not torch.allclose(out.h, out.h_views)
    # the heads see the first view only: one row per batch row, not per doubled row
    assert {t: o.mean.shape[0] for t, o in out.heads.items()} == {0: 2, 1: 1, 2: 2}


def test_two_views_are_identical_in_eval_mode(tiny) -> None:
    model = _model(tiny).eval()
    batch = _batch(tiny, [[0, 1], [2], [3, 4]])
    with torch.no_grad():
        out = model(batch, views=2)
        single = model(batch, views=1)
    torch.testing.assert_close(out.h, out.h_views, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.h, single.h, rtol=1e-5, atol=1e-5)


def test_views_other_than_one_or_two_are_rejected(tiny) -> None:
    model = _model(tiny).eval()
    with pytest.raises(ValueError, match="views"):
        model(_batch(tiny, [[0], [], []]), views=3)


def test_heads_run_only_on_their_tasks_rows(tiny) -> None:
    model = _model(tiny).eval()
    batch = _batch(tiny, [[0, 3, 4], [], [1]])
    assert set(batch.rows) == {0, 2}
    with torch.no_grad():
        out = model(batch, views=1)
    assert set(out.heads) == {0, 2}
    assert out.heads[0].mean.shape == (3, 3)
    assert out.heads[2].mean.shape == (1, 2)
    heads = model.decoder.heads
    with torch.no_grad():
        for t, rows in batch.rows.items():
            expected = heads[t](out.h[rows]).mean
            torch.testing.assert_close(out.heads[t].mean, expected)


def test_gaussian_heads_in_the_model_sample_in_train_mode_only(tiny) -> None:
    model = _model(tiny, GaussianHead, dropout=0.1)
    batch = _batch(tiny, [[0, 1], [2], [3]])
    model.train()
    assert all(o.sample is not None for o in model(batch).heads.values())
    model.eval()
    with torch.no_grad():
        assert all(o.sample is None for o in model(batch).heads.values())


def test_mean_pooling_ignores_padding(tiny) -> None:
    model = _model(tiny).eval()
    splits = _splits(tiny.tokenizer)
    short = 3  # "no": the shortest text, padded when batched with the longest
    none = np.zeros(0, dtype=np.int64)
    alone = collate(splits, [np.array([short]), none, none], 0)
    padded = collate(splits, [np.array([short, 4]), none, none], 0)
    assert alone.input_ids.shape[1] < padded.input_ids.shape[1]
    assert padded.attention_mask[0].sum() == alone.attention_mask[0].sum()
    with torch.no_grad():
        h_alone = model.encode(alone.input_ids, alone.attention_mask, alone.token_type_ids)
        h_padded = model.encode(padded.input_ids, padded.attention_mask, padded.token_type_ids)
    torch.testing.assert_close(h_padded[0], h_alone[0], rtol=1e-5, atol=1e-5)


def test_pool_by_hand() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pool(states, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    torch.testing.assert_close(pool(states, mask, "cls"), torch.tensor([[1.0, 2.0]]))


def test_head_output_train_output_prefers_the_sample() -> None:
    mean, sample = torch.zeros(2, 2), torch.ones(2, 2)
    assert HeadOutput(mean, torch.zeros(2, 2), sample).train_output is sample
    assert HeadOutput(mean).train_output is mean
