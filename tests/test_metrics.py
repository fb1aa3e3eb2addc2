"""Metrics: hand-computed values on tiny arrays, the official TweetEval rules, Avg, Δp, t-tests."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import classification_report

from infomtl.metrics import (
    accuracy,
    average,
    delta_p,
    macro_f1,
    macro_recall,
    pearson,
    score_task,
    spearman,
    task_score,
)
from infomtl.significance import significance
from infomtl.tasks import TWEETEVAL_TASKS, Metric, Task, TaskKind

EMOTION = TWEETEVAL_TASKS["emotion"]
HATE = TWEETEVAL_TASKS["hate"]
IRONY = TWEETEVAL_TASKS["irony"]
SENTIMENT = TWEETEVAL_TASKS["sentiment"]
STANCE = TWEETEVAL_TASKS["stance"]


# --------------------------------------------------------------------------- #
# Classification
# --------------------------------------------------------------------------- #


def test_binary_macro_f1_by_hand() -> None:
    # gold 0 0 1 1 / pred 0 1 1 1, confusion [[1, 1], [0, 2]]:
    #   class 0: TP=1 FP=0 FN=1 -> P=1,   R=1/2 -> F1 = 2/3
    #   class 1: TP=2 FP=1 FN=0 -> P=2/3, R=1   -> F1 = 4/5
    #   macro = (2/3 + 4/5) / 2 = 11/15 = 73.333...%
    scores = score_task(HATE, np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert scores == {"macro_f1": pytest.approx(100 * 11 / 15)}


def test_macro_f1_averages_over_classes_present_in_gold_or_pred_like_official_script() -> None:
    # Emotion has 4 classes, but only 0 and 1 occur: the official script
    # (classification_report without labels) averages over {0, 1} only, so the
    # score is the 2-class 73.33, not (2/3 + 4/5 + 0 + 0) / 4 = 36.67.
    scores = score_task(EMOTION, np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert scores["macro_f1"] == pytest.approx(100 * 11 / 15)
    # A class that occurs only in the predictions does count (F1 = 0):
    # gold 0 0 1 1 / pred 0 3 1 1: class 0 F1 = 2/3, class 1 F1 = 1, class 3 F1 = 0.
    scores = score_task(EMOTION, np.array([0, 0, 1, 1]), np.array([0, 3, 1, 1]))
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)


def test_irony_scores_f1_of_the_irony_class_only() -> None:
    # gold 0 1 1 0 1 / pred 1 1 0 0 1
    #   irony (1): TP=2 (#1, #4) FP=1 (#0) FN=1 (#2) -> P = R = 2/3 -> F1 = 2/3
    #   non_irony (0): TP=1 FP=1 FN=1 -> F1 = 1/2 (not counted; macro would be 58.33)
    scores = score_task(IRONY, np.array([0, 1, 1, 0, 1]), np.array([1, 1, 0, 0, 1]))
    assert scores == {"f1_irony": pytest.approx(100 * 2 / 3)}


def test_stance_is_mean_f1_of_against_and_favor() -> None:
    # labels: none=0, against=1, favor=2
    # gold 0 1 1 2 2 0 / pred 0 1 2 2 2 1
    #   against: TP=1 (#1) FP=1 (#5) FN=1 (#2)  -> F1 = 1/2
    #   favor:   TP=2 (#3, #4) FP=1 (#2) FN=0   -> P=2/3, R=1 -> F1 = 4/5
    #   none:    TP=1 FP=0 FN=1 -> F1 = 2/3 (not counted)
    #   score = (1/2 + 4/5) / 2 = 0.65
    gold = np.array([0, 1, 1, 2, 2, 0])
    pred = np.array([0, 1, 2, 2, 2, 1])
    assert score_task(STANCE, gold, pred) == {"f1_against_favor": pytest.approx(65.0)}


def test_sentiment_is_macro_recall_which_differs_from_accuracy() -> None:
    # gold 0 1 1 1 2 2 / pred 0 1 1 0 2 0
    #   recall: class 0 = 1/1, class 1 = 2/3, class 2 = 1/2 -> mean 13/18 = 72.22%
    #   accuracy = 4/6 = 66.67%
    gold = np.array([0, 1, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 0, 2, 0])
    assert score_task(SENTIMENT, gold, pred) == {"macro_recall": pytest.approx(100 * 13 / 18)}
    assert accuracy(gold, pred) == pytest.approx(100 * 4 / 6)
    assert macro_recall(gold, pred) == pytest.approx(100 * 13 / 18)


def test_task_with_several_metrics_reports_all_keyed_by_name() -> None:
    task = Task(
        "toy",
        TaskKind.CLASSIFICATION,
        labels=("a", "b"),
        metrics=(
            Metric("macro_f1", "macro_f1"),
            Metric("acc", "accuracy", official=False),
            Metric("f1_b", "macro_f1", labels=("b",)),
        ),
    )
    scores = score_task(task, np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert scores == {
        "macro_f1": pytest.approx(100 * 11 / 15),
        "acc": pytest.approx(75.0),
        "f1_b": pytest.approx(80.0),
    }


def test_perfect_and_all_wrong_predictions() -> None:
    gold = np.array([0, 1, 2, 3, 0])
    assert score_task(EMOTION, gold, gold)["macro_f1"] == pytest.approx(100.0)
    assert score_task(EMOTION, gold, (gold + 1) % 4)["macro_f1"] == pytest.approx(0.0)


def _official_tweeteval(task_name: str, gold: np.ndarray, pred: np.ndarray) -> float:
    """TweetEval's evaluaton_script.py, single_task_results, on string labels."""
    results = classification_report(
        [str(g) for g in gold], [str(p) for p in pred], output_dict=True, zero_division=0
    )
    if task_name in ("emotion", "hate", "offensive"):
        return results["macro avg"]["f1-score"]
    if task_name == "irony":
        return results["1"]["f1-score"]
    if task_name == "sentiment":
        return results["macro avg"]["recall"]
    return (results["1"]["f1-score"] + results["2"]["f1-score"]) / 2  # stance


@pytest.mark.parametrize("name", list(TWEETEVAL_TASKS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_official_tweeteval_script(name: str, seed: int) -> None:
    task = TWEETEVAL_TASKS[name]
    rng = np.random.default_rng(seed)
    num = len(task.labels)
    gold = rng.integers(0, num, size=40)
    pred = np.where(rng.random(40) < 0.6, gold, rng.integers(0, num, size=40))
    if seed == 2 and num > 2:  # a class absent from both gold and pred
        gold[gold == 0] = 1
        pred[pred == 0] = 1
    (value,) = score_task(task, gold, pred).values()
    assert value == pytest.approx(100 * _official_tweeteval(name, gold, pred))


def test_classification_input_errors() -> None:
    with pytest.raises(ValueError, match="3 gold labels but 2 predictions"):
        score_task(HATE, np.array([0, 1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_task(HATE, np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="no examples"):
        score_task(HATE, np.array([], dtype=int), np.array([], dtype=int))


def test_unknown_metric_function_raises() -> None:
    task = Task("toy", TaskKind.CLASSIFICATION, labels=("a", "b"), metrics=(Metric("x", "nope"),))
    with pytest.raises(ValueError, match="unknown function 'nope'"):
        score_task(task, np.array([0, 1]), np.array([0, 1]))


def test_metric_naming_an_unknown_label_raises() -> None:
    task = Task(
        "toy",
        TaskKind.CLASSIFICATION,
        labels=("a", "b"),
        metrics=(Metric("x", "macro_f1", ("c",)),),
    )
    with pytest.raises(ValueError, match="label not in"):
        score_task(task, np.array([0, 1]), np.array([0, 1]))


# --------------------------------------------------------------------------- #
# Multi-label
# --------------------------------------------------------------------------- #


def test_multilabel_macro_f1_over_every_label() -> None:
    # columns: c0 gold 1 0 1 / pred 1 0 1 -> F1 = 1
    #          c1 gold 0 1 1 / pred 0 1 1 -> F1 = 1
    #          c2 gold 1 0 0 / pred 0 1 0 -> TP=0 -> F1 = 0
    #          c3 never positive         -> F1 = 0 (zero_division=0), still averaged
    # macro = (1 + 1 + 0 + 0) / 4 = 50%; subset accuracy: only row 2 matches -> 1/3
    task = Task(
        "goemo",
        TaskKind.MULTILABEL,
        labels=("a", "b", "c", "d"),
        metrics=(Metric("macro_f1", "macro_f1"), Metric("acc", "accuracy", official=False)),
    )
    gold = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]])
    pred = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0]])
    scores = score_task(task, gold, pred)
    assert scores["macro_f1"] == pytest.approx(50.0)
    assert scores["acc"] == pytest.approx(100 / 3)
    assert macro_f1(gold, pred, labels=[0, 1]) == pytest.approx(100.0)


def test_multilabel_shape_must_match_labels() -> None:
    task = Task("goemo", TaskKind.MULTILABEL, labels=("a", "b", "c"))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        score_task(task, np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="0/1"):
        score_task(task, np.full((2, 3), 2), np.zeros((2, 3), dtype=int))


# --------------------------------------------------------------------------- #
# Regression
# --------------------------------------------------------------------------- #


def test_pearson_and_spearman_by_hand() -> None:
    # gold 1 2 3 4 (mean 2.5, deviations -1.5 -0.5 0.5 1.5, Σd² = 5)
    # pred 1 3 2 10 (mean 4, deviations -3 -1 -2 6, Σd² = 50)
    # Σ dg·dp = 4.5 + 0.5 - 1 + 9 = 13 -> r = 13 / sqrt(5 · 50) = 0.82219...
    # ranks of pred 1 3 2 4 vs 1 2 3 4: Σd_rank² = 2 -> ρ = 1 - 6·2 / (4·15) = 0.8
    task = Task("ei_reg", TaskKind.REGRESSION)  # default: pearson (official) + spearman
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 3.0, 2.0, 10.0])
    scores = score_task(task, gold, pred)
    assert scores["pearson"] == pytest.approx(100 * 13 / math.sqrt(250))
    assert scores["spearman"] == pytest.approx(80.0)
    assert score_task(task, gold[:, None], pred[:, None]) == scores
    assert task_score(task, scores) == pytest.approx(scores["pearson"])  # spearman unofficial


def test_regression_per_target_and_mean_over_outputs() -> None:
    # V: gold 1 2 3 4 / pred 1 3 2 4 -> Σ dg·dp = 2.25 - .25 - .25 + 2.25 = 4, r = 4/5
    # A: pred reversed -> r = -1
    # D: constant prediction -> 0 (guard)
    task = Task(
        "emobank",
        TaskKind.REGRESSION,
        targets=("V", "A", "D"),
        metrics=(
            Metric("pearson_V", "pearson", target="V"),
            Metric("pearson_A", "pearson", target="A"),
            Metric("pearson_D", "pearson", target="D"),
            Metric("pearson", "pearson", official=False),
        ),
    )
    col = np.array([1.0, 2.0, 3.0, 4.0])
    gold = np.stack([col, col, col], axis=1)
    pred = np.stack([np.array([1.0, 3.0, 2.0, 4.0]), col[::-1], np.full(4, 5.0)], axis=1)
    scores = score_task(task, gold, pred)
    assert scores["pearson_V"] == pytest.approx(80.0)
    assert scores["pearson_A"] == pytest.approx(-100.0)
    assert scores["pearson_D"] == 0.0
    assert scores["pearson"] == pytest.approx((80.0 - 100.0 + 0.0) / 3)


def test_constant_prediction_gives_zero_correlation_without_warning() -> None:
    gold = np.array([0.1, 0.5, 0.9, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pearson(gold, np.full(4, 0.5)) == 0.0
        assert spearman(gold, np.full(4, 0.5)) == 0.0
        assert pearson(np.full(4, 0.5), gold) == 0.0
        assert pearson(np.array([1.0]), np.array([2.0])) == 0.0


def test_regression_input_errors() -> None:
    task = Task("emobank", TaskKind.REGRESSION, targets=("V", "A", "D"))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        score_task(task, np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        score_task(task, np.full((2, 3), np.nan), np.zeros((2, 3)))
    bad = Task(
        "r", TaskKind.REGRESSION, targets=("V",), metrics=(Metric("p", "pearson", target="X"),)
    )
    with pytest.raises(ValueError, match="unknown target 'X'"):
        score_task(bad, np.arange(3.0), np.arange(3.0))
    wrong_kind = Task("r", TaskKind.REGRESSION, metrics=(Metric("f", "macro_f1"),))
    with pytest.raises(ValueError, match="not a regression metric"):
        score_task(wrong_kind, np.arange(3.0), np.arange(3.0))


# --------------------------------------------------------------------------- #
# Avg and Δp
# --------------------------------------------------------------------------- #

CLS = Task("cls", TaskKind.CLASSIFICATION, labels=("a", "b"))  # macro_f1
MIXED = Task(
    "mixed",
    TaskKind.REGRESSION,
    targets=("x",),
    metrics=(
        Metric("r", "pearson"),
        Metric("err", "pearson", higher_is_better=False),  # a lower-is-better metric
        Metric("rho", "spearman", official=False),
    ),
)


def test_task_score_and_average() -> None:
    scores = {"cls": {"macro_f1": 80.0}, "mixed": {"r": 50.0, "err": 70.0, "rho": 0.0}}
    # mixed: (50 + 70) / 2 = 60 (rho is unofficial); Avg = (80 + 60) / 2 = 70
    assert task_score(MIXED, scores["mixed"]) == pytest.approx(60.0)
    assert average([CLS, MIXED], scores) == pytest.approx(70.0)
    assert average({"cls": CLS, "mixed": MIXED}, scores) == pytest.approx(70.0)
    with pytest.raises(ValueError, match="mixed"):
        average([CLS, MIXED], {"cls": {"macro_f1": 80.0}})
    with pytest.raises(ValueError, match="err"):
        task_score(MIXED, {"r": 1.0})


def test_delta_p_with_a_lower_is_better_metric() -> None:
    baseline = {"cls": {"macro_f1": 50.0}, "mixed": {"r": 40.0, "err": 20.0}}
    model = {"cls": {"macro_f1": 55.0}, "mixed": {"r": 30.0, "err": 10.0}}
    # cls:   (55 - 50) / 50 = +0.10
    # mixed: r   (30 - 40) / 40 = -0.25
    #        err -(10 - 20) / 20 = +0.50 (lower is better: a drop is a gain)
    #        mean = 0.125
    # Δp = 100 / 2 · (0.10 + 0.125) = 11.25
    assert delta_p([CLS, MIXED], model, baseline) == pytest.approx(11.25)
    assert delta_p([CLS, MIXED], baseline, baseline) == pytest.approx(0.0)


def test_delta_p_zero_baseline_guard_names_task_and_metric() -> None:
    baseline = {"cls": {"macro_f1": 50.0}, "mixed": {"r": 40.0, "err": 0.0}}
    model = {"cls": {"macro_f1": 55.0}, "mixed": {"r": 30.0, "err": 10.0}}
    with pytest.raises(ValueError, match=r"'mixed'.*'err'"):
        delta_p([CLS, MIXED], model, baseline)


def test_delta_p_missing_task_on_either_side_raises() -> None:
    full = {"cls": {"macro_f1": 50.0}, "mixed": {"r": 40.0, "err": 20.0}}
    partial = {"cls": {"macro_f1": 50.0}}
    with pytest.raises(ValueError, match="baseline.*mixed"):
        delta_p([CLS, MIXED], full, partial)
    with pytest.raises(ValueError, match="scores.*mixed"):
        delta_p([CLS, MIXED], partial, full)


def test_avg_and_delta_p_on_tweeteval_shaped_rows() -> None:
    # Six TweetEval tasks with made-up (not paper) scores, one official metric each.
    # Avg(base) = (60 + 50 + 70 + 80 + 75 + 65) / 6 = 400 / 6 = 66.667
    # model = base · (1 + g) with g = +.06, +.10, 0, -.05, +.04, +.09:
    # Δp = 100 · (.06 + .10 + 0 - .05 + .04 + .09) / 6 = 100 · .24 / 6 = 4.0
    names = ("emotion", "hate", "irony", "offensive", "sentiment", "stance")
    base_values = (60.0, 50.0, 70.0, 80.0, 75.0, 65.0)
    gains = (0.06, 0.10, 0.0, -0.05, 0.04, 0.09)
    key = {n: TWEETEVAL_TASKS[n].official_metrics[0].name for n in names}
    base = {n: {key[n]: v} for n, v in zip(names, base_values, strict=True)}
    model = {n: {key[n]: v * (1 + g)} for n, v, g in zip(names, base_values, gains, strict=True)}
    assert round(average(TWEETEVAL_TASKS, base), 2) == 66.67
    assert delta_p(TWEETEVAL_TASKS, model, base) == pytest.approx(4.0)


# --------------------------------------------------------------------------- #
# Significance
# --------------------------------------------------------------------------- #


def test_paired_t_test_by_hand() -> None:
    # differences 1 2 3: mean 2, sd 1, t = 2 / (1/√3) = 2√3, df = 2.
    # For df = 2 the two-sided p is 1 - |t| / sqrt(t² + 2) = 1 - √12/√14 = 0.07418
    p = significance([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert p == pytest.approx(1 - math.sqrt(12 / 14))


def test_identical_samples_give_p_one() -> None:
    assert significance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert significance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], paired=False) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert significance([5.0, 5.0, 5.0], [5.0, 5.0, 5.0]) == 1.0
        assert significance([5.0, 5.0, 5.0], [5.0, 5.0, 5.0], paired=False) == 1.0


def test_too_few_values_give_nan() -> None:
    assert math.isnan(significance([1.0], [2.0, 3.0]))
    assert math.isnan(significance([1.0, 2.0], []))


def test_pairing_detects_consistent_small_gains_that_welch_misses() -> None:
    baseline = [60.0, 70.0, 80.0]
    model = [60.5, 70.6, 80.4]
    assert significance(model, baseline, paired=True) < 0.05
    assert significance(model, baseline, paired=False) > 0.5
    # Unequal lengths fall back to Welch even when paired is asked for.
    assert significance(model + [70.0], baseline) == pytest.approx(
        significance(model + [70.0], baseline, paired=False)
    )


def test_significance_is_symmetric_and_a_probability() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(70, 1, 5), rng.normal(71, 1, 5)
    for paired in (True, False):
        p = significance(a, b, paired)
        assert 0.0 <= p <= 1.0
        assert significance(b, a, paired) == pytest.approx(p)


# --------------------------------------------------------------------------- #
# Import hygiene
# --------------------------------------------------------------------------- #


def test_metrics_module_does_not_import_torch() -> None:
    code = "import sys, infomtl.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_avg_of_vipmtl_affecteval_ew_row_is_57_64() -> None:
    """VIP-MTL (ACL 2025), AffectEval table, EW row: GoEmotions 47.13 / EmotionEval 77.97 /
    EmoBank Pearson V, A, D 75.62, 49.44, 36.47 / EI-reg Pearson, Spearman 51.01, 52.23.
    Avg = mean over tasks of each task's mean over its metrics = 57.64."""
    tasks = [
        Task("goemotions", TaskKind.CLASSIFICATION, labels=tuple("abc")),
        Task("emotioneval", TaskKind.CLASSIFICATION, labels=tuple("abcd")),
        Task("emobank", TaskKind.REGRESSION, targets=("V", "A", "D"),
             metrics=tuple(Metric(f"pearson_{d}", "pearson", target=d) for d in "VAD")),
        Task("ei_reg", TaskKind.REGRESSION,
             metrics=(Metric("pearson", "pearson"), Metric("spearman", "spearman"))),
    ]
    row = {
        "goemotions": {"macro_f1": 47.13},
        "emotioneval": {"macro_f1": 77.97},
        "emobank": {"pearson_V": 75.62, "pearson_A": 49.44, "pearson_D": 36.47},
        "ei_reg": {"pearson": 51.01, "spearman": 52.23},
    }
    assert round(average(tasks, row), 2) == 57.64


def test_avg_and_delta_p_of_infomtl_table_2_roberta_rows() -> None:
    """InfoMTL (AAAI 2025), Table 2, RoBERTa, per-task test means of EW and InfoMTL (emotion
    macro-F1, hate macro-F1, irony F1(irony), offensive macro-F1, sentiment macro-recall,
    stance mean F1 of against and favor): Avg(EW) = 66.17, Δp(InfoMTL over EW) = +3.97."""
    names = ("emotion", "hate", "irony", "offensive", "sentiment", "stance")
    ew_values = (74.37, 44.08, 65.32, 79.04, 70.64, 63.59)
    infomtl_values = (76.90, 48.44, 68.94, 79.78, 71.92, 65.02)
    key = {n: TWEETEVAL_TASKS[n].official_metrics[0].name for n in names}
    ew = {n: {key[n]: v} for n, v in zip(names, ew_values, strict=True)}
    infomtl = {n: {key[n]: v} for n, v in zip(names, infomtl_values, strict=True)}
    assert round(average(TWEETEVAL_TASKS, ew), 2) == 66.17
    assert round(average(TWEETEVAL_TASKS, infomtl), 2) == 68.50
    assert round(delta_p(TWEETEVAL_TASKS, infomtl, ew), 2) == 3.97
    assert round(delta_p(TWEETEVAL_TASKS, ew, ew), 2) == 0.0
