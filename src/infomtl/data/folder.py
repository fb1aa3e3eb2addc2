"""Reader for users' own tasks: one folder per task, splits as JSONL or TSV.

Layout of a task folder (or TweetEval's layout, :mod:`infomtl.data.folder_tweeteval`,
or a Hugging Face dataset named by ``task.yaml``, :mod:`infomtl.data.hf_source`)::

    my_task/
        task.yaml        optional: kind, labels, targets, metrics, threshold, description, name
                         (and the LLM baseline's instruction, answers, template, scale)
        train.jsonl      or train.tsv   (required)
        val.jsonl        or val.tsv, or dev.jsonl / dev.tsv (required)
        test.jsonl       or test.tsv    (optional: the split is omitted when absent)

JSONL rows are objects: ``{"text": ..., "label": ...}`` with an optional
``"text_pair"``; a multi-label row has ``"labels": [...]``; a regression row has
``"label"`` as a number or a list of numbers. TSV rows are ``text<TAB>label``
(optionally ``<TAB>text_pair``), with an optional header line naming those
columns and no quoting; multi-label and multi-output values are comma-separated.
Blank lines are skipped. Every error names the file and the 1-based line.
The optional ``task.yaml`` is read by :mod:`infomtl.data.task_yaml`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infomtl.data.folder_tweeteval import is_tweeteval_layout, load_tweeteval_folder
from infomtl.data.rows import RawLabel, Row, build_task, encode_labels, regression_targets
from infomtl.data.task_yaml import read_task_spec
from infomtl.data.textio import read_text, split_lines
from infomtl.data.types import SPLITS, MultiTaskData, TaskData
from infomtl.errors import ConfigError, DataError
from infomtl.fileio import JSONError, loads_json
from infomtl.prompts import Prompt
from infomtl.tasks import Task, TaskKind

SPLIT_STEMS: dict[str, tuple[str, ...]] = {"train": ("train",), "val": ("val", "dev"), "test": ("test",)}
REQUIRED_SPLITS: tuple[str, ...] = ("train", "val")
FORMATS: tuple[str, ...] = ("jsonl", "tsv")


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


def task_folder_name(path: Path | str) -> str:
    """The name of a folder's task without reading its rows: ``name`` of its task.yaml, else the folder's name.

    Raises:
        DataError: an invalid task.yaml.
    """
    path = Path(path)
    name = read_task_spec(path).name if path.is_dir() else None
    return name or path.resolve().name


def load_task_folder(path: Path) -> tuple[Task, dict[str, TaskData]]:
    """Load one task folder: its task definition and its splits.

    The folder holds JSONL or TSV split files (see the module docstring), or TweetEval's
    layout (:mod:`infomtl.data.folder_tweeteval`), or only a ``task.yaml`` with
    ``source: hf`` (:mod:`infomtl.data.hf_source`). The task is named after the folder
    unless ``task.yaml`` sets ``name``. Without ``labels`` in ``task.yaml`` the label set
    is inferred from the train split (integer ids ``0..max`` become the names
    ``"0"..."max"``; otherwise the sorted distinct names), and a val/test label absent
    from train is an error.

    Returns:
        The task and ``{split: TaskData}`` for ``train``, ``val`` and, when present, ``test``.

    Raises:
        DataError: a missing folder or required split, a split file without rows, or a
            malformed file.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "task folder not found")
    spec = read_task_spec(path)
    if spec.source == "hf":
        from infomtl.data.hf_source import load_hf_task  # needs the datasets extra

        return load_hf_task(spec, path.resolve().name, base=path)
    if is_tweeteval_layout(path):
        return load_tweeteval_folder(path, spec)
    files = _find_split_files(path)
    rows = {split: _read_rows(file, spec.kind) for split, file in files.items()}
    _check_pairs(files, rows)

    for split, file in files.items():
        if not rows[split]:
            hint = "; delete the file to omit the split" if split not in REQUIRED_SPLITS else ""
            raise DataError(file, f"the {split} split has no rows{hint}")
    task, inferred = build_task(spec, path.resolve().name, spec.kind, files["train"], rows["train"])
    has_pairs = any(r.pair is not None for split_rows in rows.values() for r in split_rows)
    data = {
        split: TaskData(
            task=task,
            split=split,
            texts=[r.text for r in rows[split]],
            labels=encode_labels(files[split], rows[split], task, inferred),
            pairs=[r.pair or "" for r in rows[split]] if has_pairs else None,
            source=str(files[split]),
        )
        for split in SPLITS
        if split in files
    }
    return task, data


def load_task_prompts(paths: Sequence[Path | str], tasks: Sequence[Task]) -> dict[str, Prompt]:
    """The zero-shot LLM baseline's prompt of each of ``tasks`` that one of the folders
    ``paths`` defines: its ``task.yaml`` keys over :func:`~infomtl.prompts.default_prompt`."""
    by_name = {t.name: t for t in tasks}
    prompts = {}
    for path in paths:
        spec = read_task_spec(Path(path))
        name = spec.name or Path(path).name
        if name in by_name:
            prompts[name] = spec.prompt(by_name[name])
    return prompts


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
            raise DataError(folder, f"missing required {split} split: expected {expected} (or TweetEval's "
                            f"{split}_text.txt, {split}_labels.txt and mapping.txt, or a task.yaml with source: hf)")
    return files


def _read_rows(path: Path, kind: TaskKind) -> list[Row]:
    lines = split_lines(read_text(path))
    if path.suffix == ".jsonl":
        return _read_jsonl(path, lines, kind)
    return _read_tsv(path, lines, kind)


def _read_jsonl(path: Path, lines: list[str], kind: TaskKind) -> list[Row]:
    label_key = "labels" if kind is TaskKind.MULTILABEL else "label"
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = loads_json(line)
        except JSONError as exc:
            column = f" (column {exc.colno})" if exc.colno is not None else ""
            raise DataError(path, f"invalid JSON: {exc.reason}{column}", line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object with 'text' and '{label_key}'", line=lineno)
        text = _json_text(path, lineno, obj, "text", required=True)
        assert text is not None  # required: a missing text raised
        pair = _json_text(path, lineno, obj, "text_pair", required=False)
        key = label_key if label_key in obj or kind is not TaskKind.MULTILABEL else "label"
        if key not in obj:
            raise DataError(path, f"missing key '{label_key}'", line=lineno)
        rows.append(Row(text, _json_label(path, lineno, obj[key], kind), pair, lineno))
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
    return regression_targets(value, path, lineno)


def _read_tsv(path: Path, lines: list[str], kind: TaskKind) -> list[Row]:
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
        rows.append(Row(text, _tsv_label(path, lineno, cols[1].strip(), kind), pair, lineno))
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


def _check_pairs(files: dict[str, Path], rows: dict[str, list[Row]]) -> None:
    """Either every row of every split has a text_pair, or none has."""
    with_pair = any(r.pair is not None for split_rows in rows.values() for r in split_rows)
    if not with_pair:
        return
    for split, split_rows in rows.items():
        for row in split_rows:
            if row.pair is None:
                raise DataError(files[split], "missing text_pair (other rows of this task have one)",
                                line=row.line)
