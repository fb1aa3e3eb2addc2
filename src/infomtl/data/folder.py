"""Reader for users' own tasks: one folder per task, splits as JSONL or TSV.

Layout of a task folder::

    my_task/
        task.yaml        optional: kind, labels, targets, metrics, threshold, description, name
        train.jsonl      or train.tsv   (required)
        val.jsonl        or val.tsv, or dev.jsonl / dev.tsv (required)
        test.jsonl       or test.tsv    (optional: the split is omitted when absent)

JSONL rows are objects: ``{"text": ..., "label": ...}`` with an optional
``"text_pair"``; a multi-label row has ``"labels": [...]``; a regression row has
``"label"`` as a number or a list of numbers. TSV rows are ``text<TAB>label``
(optionally ``<TAB>text_pair``), with an optional header line naming those
columns and no quoting; multi-label and multi-output values are comma-separated.
Blank lines are skipped. Every error names the file and the 1-based line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infomtl.data.textio import read_text, split_lines
from infomtl.data.types import SPLITS, MultiTaskData, TaskData
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import Metric, Task, TaskKind

TASK_FILES: tuple[str, ...] = ("task.yaml", "task.yml")
#: File stems accepted for each split, in the order they are looked for.
SPLIT_STEMS: dict[str, tuple[str, ...]] = {"train": ("train",), "val": ("val", "dev"), "test": ("test",)}
REQUIRED_SPLITS: tuple[str, ...] = ("train", "val")
FORMATS: tuple[str, ...] = ("jsonl", "tsv")
YAML_KEYS: tuple[str, ...] = (
    "name", "kind", "labels", "targets", "metrics", "threshold", "description",
)
METRIC_KEYS: tuple[str, ...] = ("name", "fn", "labels", "target", "higher_is_better", "official")
CLASSIFICATION_METRICS: tuple[str, ...] = ("macro_f1", "macro_recall", "accuracy")
REGRESSION_METRICS: tuple[str, ...] = ("pearson", "spearman")

RawLabel = Any  # int | str (classification), list[int | str] (multi-label), list[float] (regression)


@dataclass
class _Row:
    text: str
    label: RawLabel
    pair: str | None
    line: int


@dataclass
class _Spec:
    """The validated contents of ``task.yaml`` (all optional)."""

    path: Path | None = None
    name: str | None = None
    kind: TaskKind = TaskKind.CLASSIFICATION
    labels: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    metrics: list[Any] | None = None
    threshold: float = 0.5
    description: str = ""


def load_task_folders(paths: Sequence[Path | str]) -> MultiTaskData:
    """Load several task folders (see :func:`load_task_folder`) as one multi-task set.

    Raises:
        ConfigError: no folder given, or two folders defining the same task name.
        DataError: a missing or malformed file.
    """
    if not paths:
        raise ConfigError("no task folder given")
    tasks: list[Task] = []
    splits: dict[str, dict[str, TaskData]] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        task, data = load_task_folder(Path(path))
        if task.name in origin:
            raise ConfigError(
                f"task name {task.name!r} is defined by both {origin[task.name]} and {path}; "
                "rename a folder or set 'name' in its task.yaml"
            )
        origin[task.name] = Path(path)
        tasks.append(task)
        splits[task.name] = data
    return MultiTaskData(tasks=tasks, splits=splits)


def load_task_folder(path: Path) -> tuple[Task, dict[str, TaskData]]:
    """Load one task folder: its task definition and its splits.

    The task is named after the folder unless ``task.yaml`` sets ``name``. Without
    ``labels`` in ``task.yaml`` the label set is inferred from the train split
    (integer ids ``0..max`` become the names ``"0"..."max"``; otherwise the sorted
    distinct names), and a val/test label absent from train is an error.

    Returns:
        The task and ``{split: TaskData}`` for ``train``, ``val`` and, when present, ``test``.

    Raises:
        DataError: a missing folder or required split, or a malformed file.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "task folder not found")
    spec = _read_spec(path)
    files = _find_split_files(path)
    rows = {split: _read_rows(file, spec.kind) for split, file in files.items()}
    _check_pairs(files, rows)

    train_file, train_rows = files["train"], rows["train"]
    if not train_rows:
        raise DataError(train_file, "the train split has no rows")
    labels: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    inferred = False
    if spec.kind is TaskKind.REGRESSION:
        targets = spec.targets or _infer_targets(train_rows)
    else:
        inferred = spec.labels is None
        labels = spec.labels if spec.labels is not None else _infer_labels(train_file, train_rows)

    where = spec.path or path
    try:
        task = Task(
            name=spec.name or path.name,
            kind=spec.kind,
            labels=labels,
            targets=targets,
            metrics=_build_metrics(spec, labels, targets),
            threshold=spec.threshold,
            description=spec.description,
        )
    except ValueError as exc:
        inferred_labels = spec.labels is None and "label" in str(exc)
        hint = " (labels inferred from the train split)" if inferred_labels else ""
        raise DataError(where, f"{exc}{hint}") from None

    has_pairs = any(r.pair is not None for split_rows in rows.values() for r in split_rows)
    data = {
        split: TaskData(
            task=task,
            split=split,
            texts=[r.text for r in rows[split]],
            labels=_encode(files[split], rows[split], task, inferred),
            pairs=[r.pair or "" for r in rows[split]] if has_pairs else None,
            source=str(files[split]),
        )
        for split in SPLITS
        if split in files
    }
    return task, data


# --------------------------------------------------------------------------- task.yaml


def _read_spec(folder: Path) -> _Spec:
    found = [folder / name for name in TASK_FILES if (folder / name).is_file()]
    if not found:
        return _Spec()
    if len(found) > 1:
        raise DataError(folder, f"both {found[0].name} and {found[1].name} exist; keep one")
    path = found[0]
    import yaml  # local: only task folders with a task.yaml need it

    text = read_text(path)
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError(path, f"invalid YAML: {problem}", line=line) from None
    if raw is None:
        return _Spec(path=path)
    if not isinstance(raw, dict):
        raise DataError(path, "expected a mapping of keys (kind, labels, metrics, ...)", line=1)
    lines = {
        str(k.value): k.start_mark.line + 1 for k, _ in getattr(node, "value", ()) if hasattr(k, "value")
    }

    def fail(key: str, message: str) -> DataError:
        return DataError(path, f"{key}: {message}", line=lines.get(key))

    for key in raw:
        if key not in YAML_KEYS:
            raise DataError(path, f"unknown key {key!r} (valid keys: {', '.join(YAML_KEYS)})",
                            line=lines.get(str(key)))
    spec = _Spec(path=path)
    if "name" in raw:
        spec.name = _yaml_str(raw["name"], lambda m: fail("name", m))
        if not spec.name.replace("_", "").replace("-", "").isalnum():
            raise fail("name", f"{spec.name!r} must be letters, digits, '_' or '-'")
    if "description" in raw:
        spec.description = _yaml_str(raw["description"], lambda m: fail("description", m), empty=True)
    if "kind" in raw:
        try:
            spec.kind = TaskKind(raw["kind"])
        except ValueError:
            valid = ", ".join(k.value for k in TaskKind)
            raise fail("kind", f"{raw['kind']!r} is not a task kind ({valid})") from None
    if "labels" in raw:
        if spec.kind is TaskKind.REGRESSION:
            raise fail("labels", "a regression task has 'targets', not 'labels'")
        spec.labels = _yaml_names(raw["labels"], lambda m: fail("labels", m))
    if "targets" in raw:
        if spec.kind is not TaskKind.REGRESSION:
            raise fail("targets", f"only a regression task has targets (kind is {spec.kind.value})")
        spec.targets = _yaml_names(raw["targets"], lambda m: fail("targets", m))
    if "threshold" in raw:
        value = raw["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise fail("threshold", f"expected a number between 0 and 1, got {value!r}")
        spec.threshold = float(value)
    if "metrics" in raw:
        value = raw["metrics"]
        if not isinstance(value, list) or not value:
            raise fail("metrics", "expected a non-empty list of metric names or mappings")
        spec.metrics = value
        _validate_metric_entries(value, spec.kind, lambda m: fail("metrics", m))
    return spec


def _yaml_str(value: Any, fail: Any, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise fail(f"expected a {'string' if empty else 'non-empty string'}, got {value!r}")
    return value.strip()


def _yaml_names(value: Any, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise fail(f"expected a non-empty list of names, got {value!r}")
    names = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
            raise fail(f"expected names (strings), got {item!r}")
        names.append(str(item).strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"duplicate names {duplicates}")
    return tuple(names)


def _validate_metric_entries(entries: list[Any], kind: TaskKind, fail: Any) -> None:
    valid_fns = REGRESSION_METRICS if kind is TaskKind.REGRESSION else CLASSIFICATION_METRICS
    for entry in entries:
        if isinstance(entry, str):
            fn = entry
        elif isinstance(entry, dict):
            unknown = [k for k in entry if k not in METRIC_KEYS]
            if unknown:
                raise fail(f"unknown metric key {unknown[0]!r} (valid keys: {', '.join(METRIC_KEYS)})")
            if "fn" not in entry:
                raise fail(f"metric {entry} has no 'fn'")
            fn = entry["fn"]
            for key in ("higher_is_better", "official"):
                if key in entry and not isinstance(entry[key], bool):
                    raise fail(f"metric {key} must be true or false, got {entry[key]!r}")
            if "name" in entry and (not isinstance(entry["name"], str) or not entry["name"]):
                raise fail(f"metric name must be a non-empty string, got {entry['name']!r}")
            if "labels" in entry:
                _yaml_names(entry["labels"], fail)
            if "target" in entry and not isinstance(entry["target"], (str, type(None))):
                raise fail(f"metric target must be a string, got {entry['target']!r}")
        else:
            raise fail(f"expected a metric name or mapping, got {entry!r}")
        if fn not in valid_fns:
            raise fail(f"metric function {fn!r} is not one of {', '.join(valid_fns)} "
                       f"(for a {kind.value} task)")


def _build_metrics(spec: _Spec, labels: tuple[str, ...], targets: tuple[str, ...]) -> tuple[Metric, ...]:
    if spec.metrics is None:
        return ()
    metrics = []
    for entry in spec.metrics:
        if isinstance(entry, str):
            metrics.append(Metric(name=entry, fn=entry))
            continue
        metric = Metric(
            name=entry.get("name") or entry["fn"],
            fn=entry["fn"],
            labels=tuple(str(x).strip() for x in entry.get("labels") or ()),
            target=entry.get("target"),
            higher_is_better=entry.get("higher_is_better", True),
            official=entry.get("official", True),
        )
        for name in metric.labels:
            if name not in labels:
                raise DataError(spec.path, f"metrics: metric {metric.name!r} names label {name!r}, "
                                f"which is not a label of the task ({', '.join(labels)})")
        if metric.target is not None and metric.target not in (targets or ("score",)):
            raise DataError(spec.path, f"metrics: metric {metric.name!r} names target "
                            f"{metric.target!r}, which is not a target ({', '.join(targets)})")
        metrics.append(metric)
    names = [m.name for m in metrics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(spec.path, f"metrics: duplicate metric names {duplicates}")
    return tuple(metrics)


# --------------------------------------------------------------------------- split files


def _find_split_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for split, stems in SPLIT_STEMS.items():
        found = [folder / f"{s}.{ext}" for s in stems for ext in FORMATS if (folder / f"{s}.{ext}").is_file()]
        if len(found) > 1:
            names = " and ".join(p.name for p in found)
            raise DataError(folder, f"{names} both hold the {split} split; keep exactly one")
        if found:
            files[split] = found[0]
        elif split in REQUIRED_SPLITS:
            expected = " or ".join(f"{s}.{ext}" for s in stems for ext in FORMATS)
            raise DataError(folder, f"missing required {split} split: expected {expected}")
    return files


def _read_rows(path: Path, kind: TaskKind) -> list[_Row]:
    lines = split_lines(read_text(path))
    if path.suffix == ".jsonl":
        return _read_jsonl(path, lines, kind)
    return _read_tsv(path, lines, kind)


def _read_jsonl(path: Path, lines: list[str], kind: TaskKind) -> list[_Row]:
    label_key = "labels" if kind is TaskKind.MULTILABEL else "label"
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object with 'text' and '{label_key}'", line=lineno)
        text = _json_text(path, lineno, obj, "text", required=True)
        pair = _json_text(path, lineno, obj, "text_pair", required=False)
        key = label_key if label_key in obj or kind is not TaskKind.MULTILABEL else "label"
        if key not in obj:
            raise DataError(path, f"missing key '{label_key}'", line=lineno)
        rows.append(_Row(text, _json_label(path, lineno, obj[key], kind), pair, lineno))
    return rows


def _json_text(path: Path, lineno: int, obj: dict, key: str, required: bool) -> str | None:
    if key not in obj:
        if required:
            raise DataError(path, f"missing key '{key}'", line=lineno)
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(path, f"'{key}' must be a string, got {value!r}", line=lineno)
    if not value.strip():
        raise DataError(path, f"empty {key} (whitespace only)", line=lineno)
    return value.strip()


def _json_label(path: Path, lineno: int, value: Any, kind: TaskKind) -> RawLabel:
    if kind is TaskKind.CLASSIFICATION:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            raise DataError(path, f"label must be a label name or an integer id, got {value!r}", line=lineno)
        return value.strip() if isinstance(value, str) else value
    if kind is TaskKind.MULTILABEL:
        if not isinstance(value, list):
            raise DataError(path, f"'labels' must be a list of label names or ids, got {value!r}", line=lineno)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, str)) or item == "":
                raise DataError(path, f"label must be a label name or an integer id, got {item!r}", line=lineno)
        return [v.strip() if isinstance(v, str) else v for v in value]
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise DataError(path, f"regression target must be a finite number, got {item!r}", line=lineno)
        out.append(float(item))
    if not out:
        raise DataError(path, "regression target list is empty", line=lineno)
    return out


def _read_tsv(path: Path, lines: list[str], kind: TaskKind) -> list[_Row]:
    rows = []
    ncols: int | None = None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if ncols is None:
            ncols = len(cols)
            names = [c.strip() for c in cols]
            if names[:1] == ["text"] and names[1:2] in (["label"], ["labels"]) and names[2:] in ([], ["text_pair"]):
                continue  # header line
            if ncols not in (2, 3):
                raise DataError(path, f"expected 2 tab-separated columns (text, label) or 3 "
                                f"(text, label, text_pair), got {ncols}", line=lineno)
        if len(cols) != ncols:
            raise DataError(path, f"expected {ncols} tab-separated columns, got {len(cols)}", line=lineno)
        text = cols[0].strip()
        if not text:
            raise DataError(path, "empty text (whitespace only)", line=lineno)
        pair = None
        if ncols == 3:
            pair = cols[2].strip()
            if not pair:
                raise DataError(path, "empty text_pair (whitespace only)", line=lineno)
        rows.append(_Row(text, _tsv_label(path, lineno, cols[1].strip(), kind), pair, lineno))
    return rows


def _tsv_label(path: Path, lineno: int, value: str, kind: TaskKind) -> RawLabel:
    if kind is TaskKind.CLASSIFICATION:
        if not value:
            raise DataError(path, "missing label", line=lineno)
        return value
    parts = [p.strip() for p in value.split(",")] if value else []
    if kind is TaskKind.MULTILABEL:
        return [p for p in parts if p]
    if not parts:
        raise DataError(path, "missing regression target", line=lineno)
    out = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise DataError(path, f"regression target must be a finite number, got {part!r}", line=lineno)
        out.append(number)
    return out


def _check_pairs(files: dict[str, Path], rows: dict[str, list[_Row]]) -> None:
    """Either every row of every split has a text_pair, or none has."""
    with_pair = any(r.pair is not None for split_rows in rows.values() for r in split_rows)
    if not with_pair:
        return
    for split, split_rows in rows.items():
        for row in split_rows:
            if row.pair is None:
                raise DataError(files[split], "missing text_pair (other rows of this task have one)",
                                line=row.line)


# --------------------------------------------------------------------------- labels


def _is_int_label(value: RawLabel) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if isinstance(value, str):
        digits = value[1:] if value[:1] in ("+", "-") else value
        return digits.isascii() and digits.isdigit()
    return False


def _infer_labels(path: Path, rows: list[_Row]) -> tuple[str, ...]:
    values = [v for r in rows for v in (r.label if isinstance(r.label, list) else [r.label])]
    if values and all(_is_int_label(v) for v in values):
        for row in rows:
            for v in row.label if isinstance(row.label, list) else [row.label]:
                if int(v) < 0:
                    raise DataError(path, f"label id {v} is negative", line=row.line)
        return tuple(str(i) for i in range(max(int(v) for v in values) + 1))
    return tuple(sorted({str(v) for v in values}))


def _infer_targets(rows: list[_Row]) -> tuple[str, ...]:
    width = len(rows[0].label)
    return ("score",) if width == 1 else tuple(f"y{i}" for i in range(width))


def _encode(path: Path, rows: list[_Row], task: Task, inferred: bool) -> np.ndarray:
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
        return np.array([_label_id(path, r.line, r.label, task, index, inferred) for r in rows], dtype=np.int64)
    out = np.zeros((len(rows), len(task.labels)), dtype=np.float32)
    for i, row in enumerate(rows):
        for value in row.label:
            out[i, _label_id(path, row.line, value, task, index, inferred)] = 1.0
    return out


def _label_id(path: Path, line: int, value: RawLabel, task: Task, index: dict[str, int], inferred: bool) -> int:
    origin = "labels seen in the train split" if inferred else "labels of task.yaml"
    if isinstance(value, str) and value in index:
        return index[value]
    ids_ok = not inferred or task.labels == tuple(str(i) for i in range(len(task.labels)))
    if not ids_ok:
        if str(value) in index:
            return index[str(value)]
    elif _is_int_label(value):
        label_id = int(value)
        if 0 <= label_id < len(task.labels):
            return label_id
        raise DataError(path, f"label id {label_id} out of range 0..{len(task.labels) - 1} "
                        f"({origin})", line=line)
    raise DataError(path, f"unknown label {value!r} (valid: {', '.join(task.labels)}; {origin})",
                    line=line)
