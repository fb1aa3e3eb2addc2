"""The collapse check: a task whose predictions no longer depend on the text.

A model that has learned nothing yet (too few rows or epochs, a learning rate too low
for fine-tuning, a frozen encoder whose MLP has barely moved) often answers the same
for every text. The rule, on one split's predictions of a task:

- **classification**: one class is predicted for at least :data:`MAJORITY_SHARE`
  (95 %) of the rows, while fewer than 95 % of the gold labels are that class (a
  split that is itself 95 % one class is not a collapse);
- **multi-label**: one label set (often the empty one) is predicted for at least
  95 % of the rows, while fewer than 95 % of the gold rows have that set;
- **regression**: a target whose predictions have a standard deviation below
  :data:`CONSTANT_STD_RATIO` (5 %) of the gold values' (the model predicts about
  one value, usually the mean; targets that are themselves constant are skipped).

The trainer runs it at every validation (a warning per collapsed task, and a
``collapse`` entry in the epoch's ``log.jsonl`` line) and on the final model (kept in
``results.json`` and repeated in ``infomtl train``'s closing summary).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infomtl.config import TrainConfig
from infomtl.tasks import Task, TaskKind

#: A class (or label set) predicted for at least this share of the rows is a collapse.
MAJORITY_SHARE = 0.95
#: A regression target whose predictions' std is below this ratio of the golds' is constant.
CONSTANT_STD_RATIO = 0.05

SPLIT_NAMES = {"val": "validation", "test": "test", "train": "training"}


@dataclass(frozen=True)
class Collapse:
    """One collapsed task on one split.

    ``answer`` is what the model keeps predicting: a class name, a label set (``"none"``
    for the empty set) or, for regression, the target's name. ``share`` is the fraction
    of rows with that answer (classification, multi-label); ``std`` and ``gold_std`` the
    standard deviations of the predictions and the gold values (regression).
    ``majority``: the answer is also the most frequent gold one.
    """

    task: str
    kind: TaskKind
    split: str
    answer: str
    share: float | None = None
    std: float | None = None
    gold_std: float | None = None
    majority: bool = False

    def finding(self) -> str:
        """What was seen, e.g. ``emotion predicts `anger` for 99 % of validation rows``."""
        rows = f"{SPLIT_NAMES.get(self.split, self.split)} rows"
        if self.kind is TaskKind.REGRESSION:
            return (f"{self.task} predicts a nearly constant {self.answer} on {rows} (std {self.std:.3g}, "
                    f"targets' std {self.gold_std:.3g})")
        what = f"`{self.answer}`" if self.kind is TaskKind.CLASSIFICATION else f"the label set `{self.answer}`"
        return f"{self.task} predicts {what} for {int(100 * (self.share or 0.0))} % of {rows}"

    def cause(self) -> str:
        """The likely cause, in a few words."""
        if self.kind is TaskKind.REGRESSION:
            return "the model predicts about one value for every text"
        return f"the model has collapsed to {'the majority' if self.majority else 'one'} class"

    def message(self, advice: str) -> str:
        """``finding: cause; advice`` on one line."""
        return f"{self.finding()}: {self.cause()}; {advice}"


def check_collapse(
    tasks: Sequence[Task], golds: Sequence[np.ndarray], preds: Sequence[np.ndarray], split: str = "val"
) -> list[Collapse]:
    """The collapsed tasks of one split (see the module docstring), in task order."""
    found = []
    for task, gold, pred in zip(tasks, golds, preds, strict=True):
        if len(pred) == 0:
            continue
        if task.kind is TaskKind.REGRESSION:
            found += _constant_targets(task, np.asarray(gold, np.float64), np.asarray(pred, np.float64), split)
        elif (hit := _one_answer(task, np.asarray(gold), np.asarray(pred), split)) is not None:
            found.append(hit)
    return found


def _one_answer(task: Task, gold: np.ndarray, pred: np.ndarray, split: str) -> Collapse | None:
    pred_counts, gold_counts = Counter(_answers(task, pred)), Counter(_answers(task, gold))
    answer, count = pred_counts.most_common(1)[0]
    share = count / len(pred)
    if share < MAJORITY_SHARE or gold_counts[answer] >= MAJORITY_SHARE * len(gold):
        return None
    majority = bool(gold_counts) and gold_counts[answer] == max(gold_counts.values())
    if task.kind is TaskKind.CLASSIFICATION:
        name = task.labels[answer]
    else:
        name = ",".join(task.labels[i] for i in answer) or "none"
    return Collapse(task.name, task.kind, split, name, share=share, majority=majority)


def _answers(task: Task, values: np.ndarray) -> list:
    """Each row's answer as a hashable value: the class id, or the tuple of label ids."""
    if task.kind is TaskKind.CLASSIFICATION:
        return [int(v) for v in values]
    return [tuple(int(i) for i in np.flatnonzero(row > 0.5)) for row in values.reshape(len(values), -1)]


def _constant_targets(task: Task, gold: np.ndarray, pred: np.ndarray, split: str) -> list[Collapse]:
    gold, pred = gold.reshape(len(gold), -1), pred.reshape(len(pred), -1)
    found = []
    for d, name in enumerate(task.targets):
        gold_std, std = float(gold[:, d].std()), float(pred[:, d].std())
        if gold_std > 0 and std < CONSTANT_STD_RATIO * gold_std:
            found.append(Collapse(task.name, task.kind, split, name, std=std, gold_std=gold_std))
    return found


def collapse_advice(config: TrainConfig) -> str:
    """The fix to suggest for a collapse under ``config`` (fine-tuning or fast mode)."""
    if config.model.freeze_backbone:
        return "try more epochs (--epochs) or a higher --lr (3e-3 suits fast mode)"
    return ("with few rows or epochs try fast mode (--freeze-backbone --lr 3e-3), "
            "or more epochs / a higher --lr")


def collapse_messages(
    tasks: Sequence[Task], golds: Sequence[np.ndarray], preds: Sequence[np.ndarray], config: TrainConfig,
    split: str = "val",
) -> list[str]:
    """One line per collapse of ``split`` (:func:`check_collapse`), with the fix for ``config``."""
    advice = collapse_advice(config)
    return [c.message(advice) for c in check_collapse(tasks, golds, preds, split)]
