"""The collapse check (infomtl.training.collapse) on hand-made predictions, and one tiny
training run whose learning rate is too small to learn anything."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infomtl.config import TrainConfig
from infomtl.tasks import Task
from infomtl.training.collapse import Collapse, check_collapse, collapse_advice, collapse_messages

EMOTION = Task("emotion", "classification", labels=("anger", "joy", "optimism", "sadness"))
TOPICS = Task("topics", "multilabel", labels=("sport", "music", "news"))
VAD = Task("vad", "regression", targets=("V", "A", "D"))
FINE_TUNING = ("with few rows or epochs try fast mode (--freeze-backbone --lr 3e-3), "
               "or more epochs / a higher --lr")


def labels(counts: dict[int, int]) -> np.ndarray:
    return np.concatenate([np.full(n, label) for label, n in counts.items()])


def test_one_class_for_99_percent_of_rows_is_a_collapse_to_the_majority_class() -> None:
    gold = labels({0: 40, 1: 30, 2: 20, 3: 10})
    pred = labels({0: 99, 1: 1})
    assert collapse_messages([EMOTION], [gold], [pred], TrainConfig()) == [
        "emotion predicts `anger` for 99 % of validation rows: the model has collapsed to the majority class; "
        + FINE_TUNING
    ]


def test_the_share_is_rounded_down_and_95_percent_is_the_threshold() -> None:
    gold = labels({0: 10, 1: 10, 2: 10, 3: 10})
    at = check_collapse([EMOTION], [gold[:20].repeat(5)], [labels({2: 95, 1: 5})])
    assert [(c.answer, c.share) for c in at] == [("optimism", 0.95)]
    assert at[0].finding() == "emotion predicts `optimism` for 95 % of validation rows"
    below = check_collapse([EMOTION], [gold.repeat(5)[:200]], [labels({2: 189, 1: 11})])  # 94.5 %
    assert below == []
    almost_all = check_collapse([EMOTION], [gold.repeat(5)[:200]], [labels({2: 199, 1: 1})])
    assert "for 99 % of" in almost_all[0].finding()  # 99.5 % is not shown as 100 %


def test_a_class_that_is_not_the_gold_majority_is_a_collapse_to_one_class() -> None:
    found = check_collapse([EMOTION], [labels({0: 60, 3: 40})], [labels({3: 100})], "test")
    assert found == [Collapse("emotion", EMOTION.kind, "test", "sadness", share=1.0, majority=False)]
    assert found[0].message("fix it") == (
        "emotion predicts `sadness` for 100 % of test rows: the model has collapsed to one class; fix it")


def test_a_split_that_is_itself_one_class_is_not_a_collapse() -> None:
    gold = labels({1: 97, 0: 3})
    assert check_collapse([EMOTION], [gold], [np.ones(100, dtype=np.int64)]) == []


def test_varied_predictions_and_empty_splits_are_not_collapses() -> None:
    gold = labels({0: 25, 1: 25, 2: 25, 3: 25})
    assert check_collapse([EMOTION], [gold], [gold[::-1].copy()]) == []
    assert check_collapse([EMOTION], [gold[:0]], [gold[:0]]) == []


def test_one_label_set_for_nearly_every_row_is_a_multilabel_collapse() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((100, 3)) < 0.4).astype(np.float32)
    none = np.zeros((100, 3), dtype=np.int64)
    found = check_collapse([TOPICS], [gold], [none])
    assert [(c.answer, c.share) for c in found] == [("none", 1.0)]
    assert found[0].finding() == "topics predicts the label set `none` for 100 % of validation rows"
    sport_news = np.tile([1, 0, 1], (100, 1))
    assert check_collapse([TOPICS], [gold], [sport_news])[0].answer == "sport,news"
    assert check_collapse([TOPICS], [gold], [gold.astype(np.int64)]) == []


def test_a_nearly_constant_regression_target_is_reported_with_both_deviations() -> None:
    rng = np.random.default_rng(1)
    gold = rng.normal(size=(200, 3))
    gold[:, 2] = 0.5  # a constant gold target is skipped
    pred = gold + rng.normal(scale=0.1, size=gold.shape)
    pred[:, 1] = 0.2 + 0.01 * rng.normal(size=200)  # A: std ≈ 0.01, targets' ≈ 1
    found = check_collapse([VAD], [gold], [pred])
    assert [c.answer for c in found] == ["A"]
    a = found[0]
    assert a.std == pytest.approx(pred[:, 1].std()) and a.gold_std == pytest.approx(gold[:, 1].std())
    assert a.message("fix it") == (
        f"vad predicts a nearly constant A on validation rows (std {a.std:.3g}, targets' std {a.gold_std:.3g}): "
        "the model predicts about one value for every text; fix it")


def test_the_regression_threshold_is_5_percent_of_the_targets_std() -> None:
    gold = np.array([[-1.0], [1.0]] * 50)  # std 1
    one = Task("score", "regression")
    assert check_collapse([one], [gold], [0.049 * gold]) != []
    assert check_collapse([one], [gold], [0.051 * gold]) == []


def test_the_advice_depends_on_the_mode() -> None:
    assert collapse_advice(TrainConfig()) == FINE_TUNING
    assert collapse_advice(TrainConfig(freeze_backbone=True)) == (
        "try more epochs (--epochs) or a higher --lr (3e-3 suits fast mode)")


def test_every_task_is_checked_in_order() -> None:
    gold = labels({0: 50, 1: 50})
    vad_gold = np.random.default_rng(2).normal(size=(100, 3))
    found = check_collapse([EMOTION, VAD], [gold, vad_gold], [np.zeros(100, np.int64), np.zeros((100, 3))])
    assert [(c.task, c.answer) for c in found] == [("emotion", "anger"), ("vad", "V"), ("vad", "A"), ("vad", "D")]


def test_a_run_with_a_tiny_learning_rate_reports_the_collapse(tmp_path, caplog, one_thread) -> None:
    from fakes import small_config
    from infomtl.training import train

    config = small_config(tmp_path / "run", epochs=1, lr=1e-9)
    with caplog.at_level("WARNING", logger="infomtl"):
        result = train(config)
    assert result.results["collapse"], "a model that has not moved predicts one class"
    first = result.results["collapse"][0]
    assert first.endswith(FINE_TUNING) and "% of validation rows: the model has collapsed to" in first
    epoch_line = json.loads((result.run_dir / "log.jsonl").read_text().splitlines()[0])
    assert epoch_line["collapse"] == result.results["collapse"]  # one epoch: the final model is that epoch's
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.removeprefix("warning: epoch 1: ") for w in warnings] == result.results["collapse"]
    saved = json.loads((result.run_dir / "results.json").read_text())
    assert saved["collapse"] == result.results["collapse"]
