"""Reader for TweetEval's official folder layout.

One folder per task under the benchmark folder::

    tweeteval/<task>/mapping.txt             id<TAB>name, one label per line
    tweeteval/<task>/{split}_text.txt        one tweet per line
    tweeteval/<task>/{split}_labels.txt      one integer label per line, aligned
    tweeteval/stance/{split}_target.txt      stance target of each line (kept as groups)

with splits ``train``, ``val`` and ``test``. Files are read as strict UTF-8 and
split on ``\\n`` only; texts are stripped of surrounding whitespace (every
official line ends with a space). The official hate files hold eight empty tweets
(:data:`OFFICIAL_EMPTY_LINES`); they are kept as empty texts so that row counts
match the official ones, and any other empty line is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from infomtl.data.textio import read_lines
from infomtl.data.types import SPLITS, MultiTaskData, TaskData, choose_task_names
from infomtl.errors import DataError
from infomtl.tasks import TWEETEVAL_ORDER, TWEETEVAL_TASKS, Task

#: Tasks whose rows carry a group (``{split}_target.txt``).
GROUP_FILES: dict[str, str] = {"stance": "target"}

#: Lines of the official release whose tweet is empty (1-based). They are kept as
#: ``""`` so that row counts and line alignment match the official files (and the
#: papers); an empty line anywhere else is an error.
OFFICIAL_EMPTY_LINES: dict[tuple[str, str], frozenset[int]] = {
    ("hate", "train"): frozenset({1468, 1983, 3844, 6644, 6792, 7115, 8219}),
    ("hate", "val"): frozenset({265}),
}


def select_tweeteval_tasks(tasks: Sequence[str] | str | None) -> list[str]:
    """Validated task names, in the order given (default: :data:`TWEETEVAL_ORDER`).

    Raises:
        ConfigError: an unknown or repeated task name.
    """
    return choose_task_names(tasks, TWEETEVAL_ORDER, "TweetEval")

def load_tweeteval(folder: Path, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """Load TweetEval tasks from the official layout.

    Args:
        folder: the ``tweeteval`` folder (holding one folder per task). A data root
            that holds ``tweeteval/`` is accepted too.
        tasks: task names to load, in the order wanted; ``None`` = all six in
            :data:`~infomtl.tasks.TWEETEVAL_ORDER`.

    Returns:
        The tasks with their ``train``, ``val`` and ``test`` splits.

    Raises:
        ConfigError: an unknown task name.
        DataError: a missing folder or file, or a malformed file (the message names
            the file and line).
    """
    names = select_tweeteval_tasks(tasks)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "TweetEval folder not found")
    if not (folder / names[0]).exists() and (folder / "tweeteval").is_dir():
        folder = folder / "tweeteval"
    splits = {name: load_tweeteval_task(folder / name, TWEETEVAL_TASKS[name]) for name in names}
    return MultiTaskData(tasks=[TWEETEVAL_TASKS[n] for n in names], splits=splits)


def load_tweeteval_task(task_dir: Path, task: Task) -> dict[str, TaskData]:
    """All splits of one TweetEval task folder, checked against ``task``."""
    if not task_dir.is_dir():
        raise DataError(
            task_dir,
            f"task folder not found (expected the TweetEval {task.name!r} folder with "
            "mapping.txt and {split}_text.txt / {split}_labels.txt)",
        )
    read_mapping(task_dir / "mapping.txt", task)
    return {split: _load_split(task_dir, task, split) for split in SPLITS}


def read_mapping(path: Path, task: Task) -> list[str]:
    """Label names of ``mapping.txt`` in id order; they must equal ``task.labels``."""
    found = read_mapping_names(path)
    if tuple(found) != task.labels:
        listed = ", ".join(f"{i} {n}" for i, n in enumerate(found))
        expected = ", ".join(f"{i} {n}" for i, n in enumerate(task.labels))
        raise DataError(
            path, f"mapping [{listed}] does not match task {task.name!r}: expected [{expected}]"
        )
    return found


def read_mapping_names(path: Path) -> list[str]:
    """Label names of a ``mapping.txt`` (``id<TAB>name`` lines, ids ``0..C-1``) in id order."""
    _require(path, "the label mapping (id<TAB>name per line)")
    names: dict[int, str] = {}
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("\t")
        if len(parts) != 2 or not _is_int(parts[0]) or not parts[1].strip():
            raise DataError(path, f"expected 'id<TAB>name', got {line.strip()!r}", line=lineno)
        label_id = int(parts[0])
        if label_id in names:
            raise DataError(path, f"label id {label_id} defined twice", line=lineno)
        names[label_id] = parts[1].strip()
    if sorted(names) != list(range(len(names))):
        listed = ", ".join(str(i) for i in sorted(names))
        raise DataError(path, f"label ids must be 0..{len(names) - 1} without gaps, got {listed or 'none'}")
    return [names[i] for i in sorted(names)]


def _load_split(task_dir: Path, task: Task, split: str) -> TaskData:
    return load_split(task_dir, task, split, OFFICIAL_EMPTY_LINES.get((task.name, split), frozenset()),
                      GROUP_FILES.get(task.name))


def load_split(
    task_dir: Path, task: Task, split: str, allowed_empty: frozenset[int] = frozenset(), group: str | None = None
) -> TaskData:
    """One split of a folder in TweetEval's layout: ``{split}_text.txt`` and ``{split}_labels.txt``
    (ids of ``task.labels``), and with ``group`` the group of each row from ``{split}_{group}.txt``.
    An empty text is an error except at the 1-based lines of ``allowed_empty``."""
    text_path = task_dir / f"{split}_text.txt"
    label_path = task_dir / f"{split}_labels.txt"
    _require(text_path, f"the {split} texts of {task.name!r}")
    _require(label_path, f"the {split} labels of {task.name!r}")
    texts = read_lines(text_path)
    raw_labels = read_lines(label_path)
    _check_counts(text_path, len(texts), label_path, len(raw_labels))
    if not texts:
        raise DataError(text_path, f"the {split} split has no rows")
    for lineno, text in enumerate(texts, start=1):
        stripped = text.strip()
        if not stripped and lineno not in allowed_empty:
            raise DataError(text_path, "empty text (whitespace only)", line=lineno)
        texts[lineno - 1] = stripped
    labels = parse_label_ids(label_path, raw_labels, len(task.labels))

    groups = None
    if group is not None:
        group_path = task_dir / f"{split}_{group}.txt"
        _require(group_path, f"the {split} {group} of each {task.name} row")
        groups = read_lines(group_path)
        _check_counts(text_path, len(texts), group_path, len(groups))
        for lineno, value in enumerate(groups, start=1):
            if not value.strip():
                raise DataError(group_path, f"empty {group}", line=lineno)
            groups[lineno - 1] = value.strip()
    return TaskData(
        task=task, split=split, texts=texts, labels=labels, groups=groups, source=str(text_path)
    )


def parse_label_ids(path: Path, lines: list[str], num_labels: int) -> np.ndarray:
    """Integer label ids, one per line, each in ``0..num_labels-1``."""
    labels = np.empty(len(lines), dtype=np.int64)
    for lineno, line in enumerate(lines, start=1):
        value = line.strip()
        if not _is_int(value):
            raise DataError(path, f"label {value!r} is not an integer id", line=lineno)
        label_id = int(value)
        if not 0 <= label_id < num_labels:
            valid = ", ".join(str(i) for i in range(num_labels))
            raise DataError(
                path, f"label {label_id} is not in mapping.txt (valid ids: {valid})", line=lineno
            )
        labels[lineno - 1] = label_id
    return labels


def _check_counts(path_a: Path, count_a: int, path_b: Path, count_b: int) -> None:
    if count_a != count_b:
        raise DataError(
            path_b,
            f"{count_b} lines but {path_a} has {count_a} lines; "
            "the two files must be line-aligned",
        )


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(path, f"missing file: expected {path.name} with {what}")


def _is_int(value: str) -> bool:
    value = value.strip()
    if value[:1] in "+-":
        value = value[1:]
    return value.isascii() and value.isdigit()
