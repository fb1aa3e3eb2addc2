"""Reading a model's reply as a prediction, and the fallback when it holds none.

An allowed answer *appears* in a reply where its words do, case-insensitively, as whole
words (not inside a longer word), with spaces, ``-`` and ``_`` between its words
interchangeable: ``not offensive`` appears in ``"Not-offensive."``.

* **classification**: the label is the allowed answer that appears first in the reply;
  of answers appearing at the same position, the longest (``"not offensive"`` beats
  ``"offensive"`` in ``"not offensive"``, while ``"offensive, not not offensive"`` is
  ``offensive``).
* **multi-label**: every allowed answer that appears, scanning left to right and
  skipping an appearance inside an earlier, longer one (``"not ironic"`` does not
  also count ``"ironic"``); a reply with none but the word ``none`` is the empty set.
* **regression**: the first D numbers of the reply (D outputs), each clipped to the
  scale.

A reply with no allowed answer (fewer than D numbers) is *invalid*: its prediction is
the fallback of the training split, and it is counted. The fallback is the majority
class (ties: the lowest label id) for classification, the labels positive in more than
half of the training rows for multi-label, and the mean of each output for regression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from infomtl.data.types import TaskData
from infomtl.prompts import normalized
from infomtl.tasks import Task, TaskKind

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_NONE = re.compile(r"(?<!\w)none(?!\w)", re.IGNORECASE)


def answer_pattern(answer: str) -> re.Pattern[str]:
    """The whole-word, case-insensitive pattern of an allowed answer (see the module docstring)."""
    words = normalized(answer).split(" ")
    return re.compile(r"(?<!\w)" + r"[\s_-]+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def fallback(task: Task, train: TaskData) -> np.ndarray:
    """The prediction of an invalid reply (see the module docstring)."""
    if task.kind is TaskKind.CLASSIFICATION:
        return np.asarray(np.bincount(train.labels, minlength=len(task.labels)).argmax(), dtype=np.int64)
    if task.kind is TaskKind.MULTILABEL:
        return (train.labels.mean(axis=0) > 0.5).astype(np.float32)
    return train.labels.mean(axis=0).astype(np.float32)


@dataclass
class AnswerReader:
    """Turns replies into one task's predictions (label ids, multi-hot rows or values)."""

    task: Task
    answers: tuple[str, ...]
    default: np.ndarray
    scale: tuple[float, float] | None = None
    _patterns: list[re.Pattern[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._patterns = [answer_pattern(a) for a in self.answers]

    def matches(self, reply: str) -> list[tuple[int, int, int]]:
        """Every appearance of an allowed answer: ``(start, end, label id)``, by position,
        the longest first at equal positions."""
        found = [(m.start(), m.end(), i) for i, p in enumerate(self._patterns) for m in p.finditer(reply)]
        return sorted(found, key=lambda f: (f[0], -(f[1] - f[0]), f[2]))

    def read(self, reply: str) -> np.ndarray | None:
        """The prediction of ``reply``, or None when it holds no allowed answer."""
        kind = self.task.kind
        if kind is TaskKind.REGRESSION:
            return self._numbers(reply)
        found = self.matches(reply)
        if kind is TaskKind.CLASSIFICATION:
            return np.asarray(found[0][2], dtype=np.int64) if found else None
        row = np.zeros(len(self.task.labels), dtype=np.float32)
        end = -1
        for start, stop, label in found:
            if start >= end:  # not inside an earlier, longer appearance
                row[label] = 1.0
                end = stop
        if not found and not _NONE.search(reply):
            return None
        return row

    def _numbers(self, reply: str) -> np.ndarray | None:
        width = len(self.task.targets)
        values = []
        for m in _NUMBER.finditer(reply):
            try:
                values.append(float(m.group()))
            except ValueError:
                continue
            if len(values) == width:
                break
        if len(values) < width or not all(np.isfinite(values)):
            return None
        assert self.scale is not None
        return np.clip(np.asarray(values, dtype=np.float32), self.scale[0], self.scale[1])

    def predict(self, replies: list[str]) -> tuple[np.ndarray, int]:
        """Predictions of ``replies`` (the fallback for the invalid ones) and how many were invalid."""
        rows, invalid = [], 0
        for reply in replies:
            value = self.read(reply)
            if value is None:
                invalid += 1
                value = self.default
            rows.append(value)
        if self.task.kind is TaskKind.CLASSIFICATION:
            return np.asarray(rows, dtype=np.int64).reshape(len(replies)), invalid
        width = self.task.num_outputs
        return np.asarray(rows, dtype=np.float32).reshape(len(replies), width), invalid
