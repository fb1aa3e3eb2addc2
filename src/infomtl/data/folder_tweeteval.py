"""A task folder in TweetEval's official layout (a copy of one of its task folders, or your own).

Layout::

    my_task/
        mapping.txt          id<TAB>name, one label per line (ids 0..C-1)
        train_text.txt       one text per line
        train_labels.txt     one label id per line, line-aligned with the texts
        val_text.txt / val_labels.txt      (required)
        test_text.txt / test_labels.txt    (optional)
        {split}_target.txt   optional: a group per line (as TweetEval's stance), in every split
        task.yaml            optional: name, metrics, description (kind must be classification)

A folder holding ``train_text.txt``, ``train_labels.txt`` or ``mapping.txt`` is read
this way; every file is checked as the built-in TweetEval reader checks it (strict
UTF-8, equal line counts, ids in the mapping, no empty text), the errors naming the
file and line. A folder named like a TweetEval task whose mapping is that task's (a
copy of the official folder) keeps the official files' few empty tweets, as
``--tasks tweeteval:NAME`` does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from infomtl.data.rows import build_task
from infomtl.data.task_yaml import TaskSpec
from infomtl.data.tweeteval import OFFICIAL_EMPTY_LINES, load_split, read_mapping_names
from infomtl.data.types import TaskData
from infomtl.errors import DataError
from infomtl.tasks import TWEETEVAL_TASKS, Task, TaskKind

#: Files whose presence makes a folder one in TweetEval's layout.
MARKERS: tuple[str, ...] = ("mapping.txt", "train_text.txt", "train_labels.txt")
GROUP = "target"


def is_tweeteval_layout(folder: Path) -> bool:
    """Whether ``folder`` holds a file of TweetEval's layout (:data:`MARKERS`)."""
    return any((folder / name).is_file() for name in MARKERS)


def load_tweeteval_folder(folder: Path, spec: TaskSpec) -> tuple[Task, dict[str, TaskData]]:
    """The task and splits of a folder in TweetEval's layout (see the module docstring).

    Raises:
        DataError: a missing or malformed file, a ``task.yaml`` whose kind or labels
            contradict ``mapping.txt``, or a group file in some splits only.
    """
    names = tuple(read_mapping_names(folder / "mapping.txt"))
    if spec.kind_given and spec.kind is not TaskKind.CLASSIFICATION:
        raise DataError(spec.path, f"kind: TweetEval's layout holds a classification task, not {spec.kind.value}")
    if spec.labels is not None and spec.labels != names:
        raise DataError(spec.path, f"labels: {', '.join(spec.labels)} differ from mapping.txt ({', '.join(names)})")
    spec = dataclasses.replace(spec, labels=names, kind=TaskKind.CLASSIFICATION)
    task, _ = build_task(spec, folder.name, TaskKind.CLASSIFICATION, folder / "mapping.txt", [])
    splits = ["train", "val"] + (["test"] if _has_split(folder, "test") else [])
    official = TWEETEVAL_TASKS.get(task.name)
    grouped = [s for s in splits if (folder / f"{s}_{GROUP}.txt").is_file()]
    if grouped and grouped != splits:
        missing = next(s for s in splits if s not in grouped)
        raise DataError(folder / f"{missing}_{GROUP}.txt",
                        f"missing file: {grouped[0]}_{GROUP}.txt gives each row a group, so every split needs one")
    data = {}
    for split in splits:
        allowed = (OFFICIAL_EMPTY_LINES.get((task.name, split), frozenset())
                   if official is not None and official.labels == task.labels else frozenset())
        data[split] = load_split(folder, task, split, allowed, GROUP if grouped else None)
    return task, data


def _has_split(folder: Path, split: str) -> bool:
    return (folder / f"{split}_text.txt").is_file() or (folder / f"{split}_labels.txt").is_file()
