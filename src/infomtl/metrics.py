"""Task metrics, Avg and Δp (significance over seeds: :mod:`infomtl.significance`).

Every score is in percent (×100), as in the papers' tables. Metric specs are
data (:class:`infomtl.tasks.Metric`): ``Metric.fn`` names one of the metric
functions of this module, ``Metric.labels`` restricts a classification average
to some classes, ``Metric.target`` picks one regression output and
``Metric.official`` says whether the metric counts in the task's score.

Classification metrics reproduce TweetEval's official evaluation script
(``cardiffnlp/tweeteval``, ``evaluaton_script.py``) exactly. That script calls
``sklearn.metrics.classification_report(gold, pred)`` without a ``labels``
argument and reads

* emotion, hate, offensive: ``report["macro avg"]["f1-score"]``;
* irony: ``report["1"]["f1-score"]`` (F1 of the ``irony`` class alone);
* sentiment: ``report["macro avg"]["recall"]``;
* stance: ``(report["1"]["f1-score"] + report["2"]["f1-score"]) / 2`` (mean F1
  of ``against`` and ``favor``, the five targets pooled into one list).

Without ``labels``, scikit-learn averages over the classes present in gold ∪
pred, so a class that occurs in neither is left out of the macro average rather
than counted as F1 = 0. :func:`macro_f1` and :func:`macro_recall` do the same for
class-id inputs. On the benchmark test sets every class occurs in the gold
labels, so this only matters for small slices. Where the script reads one
class's F1 and that class occurs in neither list, the script fails (and
reports -1); here that class's F1 is 0.

Only NumPy, SciPy and scikit-learn are imported (no torch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, recall_score

from infomtl.tasks import Metric, Task, TaskKind

__all__ = [
    "METRIC_FUNCTIONS",
    "accuracy",
    "average",
    "delta_p",
    "macro_f1",
    "macro_recall",
    "pearson",
    "score_task",
    "spearman",
    "task_score",
]

#: Relative-change denominators below this are treated as zero by :func:`delta_p`.
ZERO_BASELINE = 1e-12


# --------------------------------------------------------------------------- #
# Metric functions (the names ``Metric.fn`` refers to)
# --------------------------------------------------------------------------- #


def _class_labels(gold: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None) -> list[int]:
    """Labels a classification average runs over.

    Given ``labels``: those. Otherwise, for class ids (1-D), the classes present
    in gold ∪ pred (scikit-learn's default, as in TweetEval's official script);
    for a multi-label indicator matrix (2-D), every column.
    """
    if labels is not None:
        return [int(label) for label in labels]
    if gold.ndim == 2:
        return list(range(gold.shape[1]))
    return [int(label) for label in np.union1d(gold, pred)]


def macro_f1(gold: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Macro-averaged F1 in percent.

    F1_c = 2·P_c·R_c / (P_c + R_c) = 2·TP_c / (2·TP_c + FP_c + FN_c) and
    macro-F1 = 100 · (1/|L|) Σ_{c∈L} F1_c, with F1_c = 0 where the denominator
    is 0. ``L`` is ``labels`` when given (irony: {irony}; stance: {against,
    favor}); otherwise the classes present in gold ∪ pred for class ids (as the
    official TweetEval script), or every column of a multi-label 0/1 matrix.
    """
    gold, pred = np.asarray(gold), np.asarray(pred)
    used = _class_labels(gold, pred, labels)
    per_class = f1_score(gold, pred, labels=used, average=None, zero_division=0)
    return 100.0 * float(np.mean(per_class))


def macro_recall(gold: np.ndarray, pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Macro-averaged recall in percent.

    R_c = TP_c / (TP_c + FN_c) and macro-recall = 100 · (1/|L|) Σ_{c∈L} R_c
    (R_c = 0 for a class with no gold example), ``L`` chosen as in
    :func:`macro_f1`. TweetEval's sentiment score.
    """
    gold, pred = np.asarray(gold), np.asarray(pred)
    used = _class_labels(gold, pred, labels)
    per_class = recall_score(gold, pred, labels=used, average=None, zero_division=0)
    return 100.0 * float(np.mean(per_class))


def accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    """Accuracy in percent: 100 · (1/N) Σ_n [ŷ_n = y_n].

    For a multi-label 0/1 matrix this is subset accuracy (a row counts only if
    every label matches).
    """
    return 100.0 * float(accuracy_score(np.asarray(gold), np.asarray(pred)))


def _correlation(
    corr: Callable[[np.ndarray, np.ndarray], object], gold: np.ndarray, pred: np.ndarray
) -> float:
    """A SciPy correlation of two 1-D arrays in percent; 0.0 where it is undefined.

    A constant input (or fewer than two points) has no correlation: SciPy would
    warn and return NaN; this returns 0.0 without a warning.
    """
    gold = np.asarray(gold, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if gold.size < 2 or np.ptp(gold) == 0.0 or np.ptp(pred) == 0.0:
        return 0.0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        value = float(corr(gold, pred)[0])  # type: ignore[index]
    return 0.0 if math.isnan(value) else 100.0 * value


def pearson(gold: np.ndarray, pred: np.ndarray) -> float:
    """Pearson r in percent: 100 · Σ(y−ȳ)(ŷ−ŷ̄) / sqrt(Σ(y−ȳ)² · Σ(ŷ−ŷ̄)²).

    A constant gold or prediction gives 0.0 (not NaN), with no warning.
    """
    return _correlation(stats.pearsonr, gold, pred)


def spearman(gold: np.ndarray, pred: np.ndarray) -> float:
    """Spearman ρ in percent: Pearson r of the ranks (ties get their mean rank).

    A constant gold or prediction gives 0.0 (not NaN), with no warning.
    """
    return _correlation(stats.spearmanr, gold, pred)


#: ``Metric.fn`` name → kind of function: class-average (takes ``labels``),
#: plain comparison, or correlation (per regression output).
_AVERAGES: dict[str, Callable[..., float]] = {"macro_f1": macro_f1, "macro_recall": macro_recall}
_PLAIN: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": accuracy}
_CORRELATIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "pearson": pearson,
    "spearman": spearman,
}

#: Every metric function a ``Metric.fn`` may name.
METRIC_FUNCTIONS: dict[str, Callable[..., float]] = {**_AVERAGES, **_PLAIN, **_CORRELATIONS}


# --------------------------------------------------------------------------- #
# Scoring a task
# --------------------------------------------------------------------------- #


def _check_labels(task: Task, gold: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    num = len(task.labels)
    if task.kind is TaskKind.CLASSIFICATION:
        gold, pred = np.asarray(gold).ravel(), np.asarray(pred).ravel()
        if gold.shape != pred.shape:
            raise ValueError(
                f"task {task.name!r}: {gold.size} gold labels but {pred.size} predictions"
            )
        expected = "label ids"
    else:
        gold, pred = np.asarray(gold), np.asarray(pred)
        if gold.ndim != 2 or gold.shape != pred.shape or gold.shape[1] != num:
            raise ValueError(
                f"task {task.name!r}: multi-label gold and predictions must both be "
                f"(N, {num}) 0/1 arrays, got {gold.shape} and {pred.shape}"
            )
        num, expected = 2, "0/1 values"
    if gold.size == 0:
        raise ValueError(f"task {task.name!r}: nothing to score (no examples)")
    for name, values in (("gold", gold), ("predicted", pred)):
        is_integral = values.dtype.kind in "biu" or (
            np.all(np.isfinite(values)) and np.all(values == np.round(values))
        )
        if not is_integral:
            raise ValueError(f"task {task.name!r}: {name} values must be {expected}")
        if values.min() < 0 or values.max() >= num:
            raise ValueError(
                f"task {task.name!r}: {name} values must be {expected} in [0, {num - 1}]"
            )
    return gold.astype(np.int64), pred.astype(np.int64)


def _check_outputs(task: Task, gold: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dims = len(task.targets)
    gold = np.asarray(gold, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if dims == 1:
        gold, pred = gold.reshape(gold.shape[0], -1), pred.reshape(pred.shape[0], -1)
    if gold.ndim != 2 or gold.shape != pred.shape or gold.shape[1] != dims:
        raise ValueError(
            f"task {task.name!r}: regression gold and predictions must both be "
            f"(N, {dims}) arrays, got {gold.shape} and {pred.shape}"
        )
    if gold.shape[0] == 0:
        raise ValueError(f"task {task.name!r}: nothing to score (no examples)")
    if not (np.all(np.isfinite(gold)) and np.all(np.isfinite(pred))):
        raise ValueError(f"task {task.name!r}: regression values must be finite")
    return gold, pred


def _score_metric(task: Task, metric: Metric, gold: np.ndarray, pred: np.ndarray) -> float:
    fn = metric.fn
    if fn not in METRIC_FUNCTIONS:
        raise ValueError(
            f"task {task.name!r}: metric {metric.name!r} names unknown function {fn!r}; "
            f"known: {', '.join(sorted(METRIC_FUNCTIONS))}"
        )
    if task.kind is TaskKind.REGRESSION:
        if fn not in _CORRELATIONS:
            raise ValueError(
                f"task {task.name!r}: metric {metric.name!r} ({fn}) is not a regression metric"
            )
        if metric.target is not None:
            if metric.target not in task.targets:
                raise ValueError(
                    f"task {task.name!r}: metric {metric.name!r} scores unknown target "
                    f"{metric.target!r}; targets: {', '.join(task.targets)}"
                )
            column = task.targets.index(metric.target)
            return _CORRELATIONS[fn](gold[:, column], pred[:, column])
        per_output = [_CORRELATIONS[fn](gold[:, d], pred[:, d]) for d in range(gold.shape[1])]
        return float(np.mean(per_output))
    if fn in _CORRELATIONS:
        raise ValueError(
            f"task {task.name!r}: metric {metric.name!r} ({fn}) needs a regression task"
        )
    if fn in _PLAIN:
        if metric.labels:
            raise ValueError(
                f"task {task.name!r}: metric {metric.name!r} ({fn}) takes no label subset"
            )
        return _PLAIN[fn](gold, pred)
    labels = None
    if metric.labels:
        try:
            labels = [task.label_id(name) for name in metric.labels]
        except ValueError as err:
            raise ValueError(
                f"task {task.name!r}: metric {metric.name!r} names a label not in "
                f"{', '.join(task.labels)}: {', '.join(metric.labels)}"
            ) from err
    return _AVERAGES[fn](gold, pred, labels)


def score_task(task: Task, gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric of ``task`` (official or not), in percent, keyed by ``Metric.name``.

    Inputs by task kind:

    * classification: ``gold`` and ``pred`` are int arrays of label ids, shape (N,);
    * multi-label: (N, C) 0/1 arrays;
    * regression: (N, D) float arrays ((N,) is accepted when D = 1).

    A correlation metric with ``target`` scores that output's column; without a
    target it scores the only output (D = 1) or averages the per-output
    correlations (D > 1). Raises ``ValueError`` for mismatched shapes, label ids
    out of range, an unknown ``Metric.fn``, label or target.
    """
    if task.kind is TaskKind.REGRESSION:
        gold, pred = _check_outputs(task, gold, pred)
    else:
        gold, pred = _check_labels(task, gold, pred)
    return {m.name: _score_metric(task, m, gold, pred) for m in task.metrics}


# --------------------------------------------------------------------------- #
# Aggregates over tasks
# --------------------------------------------------------------------------- #


def _task_list(tasks: Iterable[Task] | Mapping[str, Task]) -> list[Task]:
    listed = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    if not listed:
        raise ValueError("no tasks to aggregate over")
    return listed


def _official_values(task: Task, scores: Mapping[str, float], side: str = "") -> list[float]:
    missing = [m.name for m in task.official_metrics if m.name not in scores]
    if missing:
        where = f" in {side}" if side else ""
        raise ValueError(f"task {task.name!r}: missing metric(s) {', '.join(missing)}{where}")
    return [float(scores[m.name]) for m in task.official_metrics]


def task_score(task: Task, scores: Mapping[str, float]) -> float:
    """A task's score: the mean of its official metrics, (1/N_t) Σ_n M_tn.

    ``scores`` maps metric names to values (e.g. the output of
    :func:`score_task`); unofficial metrics are ignored.
    """
    return float(np.mean(_official_values(task, scores)))


def _task_scores(
    tasks: list[Task], scores_by_task: Mapping[str, Mapping[str, float]], side: str
) -> list[Mapping[str, float]]:
    missing = [t.name for t in tasks if t.name not in scores_by_task]
    if missing:
        raise ValueError(f"{side} has no scores for task(s): {', '.join(missing)}")
    return [scores_by_task[t.name] for t in tasks]


def average(
    tasks: Iterable[Task] | Mapping[str, Task],
    scores_by_task: Mapping[str, Mapping[str, float]],
) -> float:
    """Avg = (1/T) Σ_t task_score(t): the mean over tasks of each task's official mean.

    ``scores_by_task`` maps task name → metric name → value; tasks not in
    ``tasks`` are ignored, a task of ``tasks`` missing from it raises ``ValueError``.
    """
    listed = _task_list(tasks)
    per_task = _task_scores(listed, scores_by_task, "scores")
    return float(np.mean([task_score(t, s) for t, s in zip(listed, per_task, strict=True)]))


def delta_p(
    tasks: Iterable[Task] | Mapping[str, Task],
    scores: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
) -> float:
    """Relative improvement over a baseline, in percent.

    Δp = 100/T · Σ_t (1/N_t) Σ_n (−1)^{p_n} (M_tn − M_tn^base) / M_tn^base

    over each task's official metrics n, with p_n = 1 when lower is better
    (``Metric.higher_is_better`` False) and 0 otherwise. The denominator is the
    baseline value as in the papers (not its absolute value).

    Raises ``ValueError`` when a task (or an official metric) is missing from
    either side, or when a baseline metric is zero (|M^base| < 1e-12), naming
    the task and metric, since the relative change is then undefined.
    """
    listed = _task_list(tasks)
    model_scores = _task_scores(listed, scores, "scores")
    base_scores = _task_scores(listed, baseline, "baseline")
    per_task = []
    for task, model, base in zip(listed, model_scores, base_scores, strict=True):
        values = _official_values(task, model, "scores")
        references = _official_values(task, base, "baseline")
        terms = []
        for metric, value, reference in zip(task.official_metrics, values, references, strict=True):
            if abs(reference) < ZERO_BASELINE:
                raise ValueError(
                    f"task {task.name!r}: baseline metric {metric.name!r} is zero, "
                    "so its relative change (Δp) is undefined"
                )
            sign = 1.0 if metric.higher_is_better else -1.0
            terms.append(sign * (value - reference) / reference)
        per_task.append(float(np.mean(terms)))
    return 100.0 * float(np.mean(per_task))
