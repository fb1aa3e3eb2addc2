"""Rows read from any task source, and their labels: inferred label sets, encoded label arrays.

A reader turns its file or dataset into :class:`Row` objects (text, raw label, optional
pair, and where the row is for messages) and then uses :func:`infer_labels` /
:func:`infer_targets` when the task does not list its labels, :func:`build_task` to
make the :class:`~infomtl.tasks.Task` and :func:`encode_labels` for the label array.
Errors name ``where`` (a file, or a dataset and split) and the row's ``line``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infomtl.data.task_yaml import TaskSpec, build_metrics
from infomtl.errors import DataError
from infomtl.tasks import Task, TaskKind

#: Most classes inferred from integer label ids (ids ``0..max``); more needs ``labels`` in task.yaml.
MAX_INFERRED_CLASSES = 10_000

RawLabel = Any  # int | str (classification), list[int | str] (multi-label), list[float] (regression)


@dataclass
class Row:
    """One row as read: its text, raw label, optional text pair and 1-based line (or row number)."""

    text: str
    label: RawLabel
    pair: str | None
    line: int


def build_task(spec: TaskSpec, default_name: str, kind: TaskKind, train_where: object, train_rows: list[Row],
               class_names: tuple[str, ...] | None = None) -> tuple[Task, bool]:
    """The task of a source: labels from ``spec`` (task.yaml), else ``class_names`` (a dataset's
    own, e.g. a ClassLabel's), else inferred from the train rows; returns it and whether its
    labels were inferred.

    Raises:
        DataError: an invalid task (too few labels, a metric naming an unknown label...).
    """
    labels: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    inferred = False
    if kind is TaskKind.REGRESSION:
        targets = spec.targets or infer_targets(train_rows)
    elif spec.labels is not None:
        labels = spec.labels
    elif class_names is not None:
        labels = class_names
    else:
        inferred = True
        labels = infer_labels(train_where, train_rows)
    where = spec.path or train_where
    try:
        task = Task(
            name=spec.name or default_name,
            kind=kind,
            labels=labels,
            targets=targets,
            metrics=build_metrics(spec, labels, targets),
            threshold=spec.threshold,
            description=spec.description,
        )
    except ValueError as exc:
        hint = " (labels inferred from the train split)" if inferred and "label" in str(exc) else ""
        raise DataError(where, f"{exc}{hint}") from None
    if any(getattr(spec, key) is not None for key in ("instruction", "answers", "template", "scale")):
        spec.prompt(task)  # the LLM baseline's keys are checked with the rest of task.yaml
    return task, inferred


def regression_targets(value: Any, where: object, line: int | None) -> list[float]:
    """A regression row's targets: one number or a non-empty list of finite numbers (not
    booleans); anything else is a :class:`DataError` at ``where``, ``line``."""
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise DataError(where, f"regression target must be a finite number, got {item!r}", line=line)
        out.append(float(item))
    if not out:
        raise DataError(where, "regression target list is empty", line=line)
    return out


def is_int_label(value: RawLabel) -> bool:
    """Whether a raw label is an integer id (an int, or a string of at most 18 digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if isinstance(value, str):
        digits = value[1:] if value[:1] in ("+", "-") else value
        return digits.isascii() and digits.isdigit() and len(digits) <= 18  # longer: a name
    return False


def infer_labels(path: object, rows: list[Row]) -> tuple[str, ...]:
    """The label set of train rows: ids ``0..max`` named ``"0"...`` when every label is an
    integer id, else the sorted distinct names."""
    values = [v for r in rows for v in (r.label if isinstance(r.label, list) else [r.label])]
    if values and all(is_int_label(v) for v in values):
        for row in rows:
            for v in row.label if isinstance(row.label, list) else [row.label]:
                if int(v) < 0:
                    raise DataError(path, f"label id {v} is negative", line=row.line)
                if int(v) >= MAX_INFERRED_CLASSES:
                    raise DataError(path, f"label id {v} would make {int(v) + 1} classes (ids 0..{v}); "
                                    f"at most {MAX_INFERRED_CLASSES} are inferred: list the labels "
                                    "in task.yaml", line=row.line)
        return tuple(str(i) for i in range(max(int(v) for v in values) + 1))
    return tuple(sorted({str(v) for v in values}))


def infer_targets(rows: list[Row]) -> tuple[str, ...]:
    """Regression output names from the width of the first row: ``score``, or ``y0, y1...``."""
    width = len(rows[0].label)
    return ("score",) if width == 1 else tuple(f"y{i}" for i in range(width))


def encode_labels(path: object, rows: list[Row], task: Task, inferred: bool, origin: str = "labels of task.yaml"
                  ) -> np.ndarray:
    """The label array of ``rows`` for ``task`` (see :class:`~infomtl.data.types.TaskData`);
    ``origin`` says where the label names came from when they were not inferred."""
    if task.kind is TaskKind.REGRESSION:
        width = len(task.targets)
        out = np.zeros((len(rows), width), dtype=np.float32)
        for i, row in enumerate(rows):
            if len(row.label) != width:
                raise DataError(path, f"expected {width} regression output(s) "
                                f"({', '.join(task.targets)}), got {len(row.label)}", line=row.line)
            out[i] = row.label
        return out
    index = {name: i for i, name in enumerate(task.labels)}
    if task.kind is TaskKind.CLASSIFICATION:
        return np.array([label_id(path, r.line, r.label, task, index, inferred, origin) for r in rows], dtype=np.int64)
    out = np.zeros((len(rows), len(task.labels)), dtype=np.float32)
    for i, row in enumerate(rows):
        for value in row.label:
            out[i, label_id(path, row.line, value, task, index, inferred, origin)] = 1.0
    return out


def label_id(path: object, line: int, value: RawLabel, task: Task, index: dict[str, int], inferred: bool,
             origin: str = "labels of task.yaml") -> int:
    """The id of a raw label: a label name first, else an integer id where ids are allowed.

    Integer ids are allowed when the labels come from task.yaml, or were inferred
    from integer labels; with names inferred from train, an id would be ambiguous.
    """
    origin = "labels seen in the train split" if inferred else origin
    if str(value) in index:
        return index[str(value)]
    ids_ok = not inferred or task.labels == tuple(str(i) for i in range(len(task.labels)))
    if ids_ok and is_int_label(value):
        number = int(value)
        if 0 <= number < len(task.labels):
            return number
        raise DataError(path, f"label id {number} out of range 0..{len(task.labels) - 1} "
                        f"({origin})", line=line)
    raise DataError(path, f"unknown label {value!r} (valid: {', '.join(task.labels)}; {origin})",
                    line=line)
