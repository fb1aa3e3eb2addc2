"""TweetEval from the Hugging Face dataset ``cardiffnlp/tweet_eval`` (``--tweeteval-source hf``).

The Hub dataset has one config per task (``emotion``, ``hate``, ``irony``,
``offensive``, ``sentiment``) and one per stance target (``stance_abortion`` ...
``stance_hillary``), each with ``train``, ``validation`` and ``test`` splits of
``text`` and a ``ClassLabel`` ``label`` whose ids are those of the official
``mapping.txt`` (the Hub spells two names differently: ``non-hate``,
``non-offensive``; labels are matched by id). Stance is rebuilt as the official
files hold it: the five targets concatenated in :data:`STANCE_TARGETS` order, each
row's target kept as its group, so scores equal those from the files.

The same code reads a local copy of that shape: a folder with one ``save_to_disk``
dataset per config (``<folder>/emotion``, ``<folder>/stance_abortion`` ...), or
anything ``load_dataset(path, name=config)`` opens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infomtl.data.download import STANCE_TARGETS
from infomtl.data.hf_source import HFSource, import_datasets, open_dataset, pick_splits
from infomtl.data.tweeteval import OFFICIAL_EMPTY_LINES, select_tweeteval_tasks
from infomtl.data.types import SPLITS, MultiTaskData, TaskData
from infomtl.errors import DataError, DatasetSplit
from infomtl.tasks import TWEETEVAL_TASKS, Task

#: The Hub dataset of ``--tweeteval-source hf``.
HUB_ID = "cardiffnlp/tweet_eval"


def hub_configs(task: str) -> list[tuple[str, str | None]]:
    """The dataset configs of one TweetEval task, with the group of their rows (stance: the target)."""
    if task == "stance":
        return [(f"stance_{target}", target) for target in STANCE_TARGETS]
    return [(task, None)]


def load_tweeteval_hf(dataset: str = HUB_ID, tasks: Sequence[str] | None = None) -> MultiTaskData:
    """TweetEval's tasks from a Hugging Face dataset of ``tweet_eval``'s shape (see the module docstring).

    Raises:
        ConfigError: an unknown task name, or no ``datasets`` package.
        DataError: a config, split or column missing, a label outside the task's ids, an empty text.
    """
    names = select_tweeteval_tasks(tasks)
    splits = {}
    for name in names:
        task = TWEETEVAL_TASKS[name]
        parts: dict[str, list[TaskData]] = {split: [] for split in SPLITS}
        for config, group in hub_configs(name):
            source = HFSource(dataset=dataset, config=config)
            opened = open_dataset(source)
            chosen = pick_splits(list(opened), source)
            for split in SPLITS:
                if split not in chosen:
                    raise DataError(source.display, f"no {split} split (splits: {', '.join(opened)})")
                where = DatasetSplit(f"{source.display}[{chosen[split]}]")
                parts[split].append(_read_part(opened[chosen[split]], task, split, group, where))
        splits[name] = {split: _concat(task, split, pieces) for split, pieces in parts.items()}
    return MultiTaskData(tasks=[TWEETEVAL_TASKS[n] for n in names], splits=splits)


def _read_part(part: object, task: Task, split: str, group: str | None, where: DatasetSplit) -> TaskData:
    datasets = import_datasets()
    columns = part.column_names  # type: ignore[attr-defined]
    for column in ("text", "label"):
        if column not in columns:
            raise DataError(where, f"no column {column!r} (columns: {', '.join(columns)})")
    feature = part.features["label"]  # type: ignore[attr-defined]
    if isinstance(feature, datasets.ClassLabel) and feature.num_classes != len(task.labels):
        raise DataError(where, f"label has {feature.num_classes} classes ({', '.join(feature.names)}); "
                        f"TweetEval {task.name} has {len(task.labels)} ({', '.join(task.labels)})")
    allowed_empty = OFFICIAL_EMPTY_LINES.get((task.name, split), frozenset()) if group is None else frozenset()
    texts, labels = [], []
    for i, (text, label) in enumerate(zip(part["text"], part["label"], strict=True)):  # type: ignore[index]
        if not isinstance(text, str):
            raise DataError(where, f"text must be a string, got {text!r}", line=i)
        if not text.strip() and i + 1 not in allowed_empty:
            raise DataError(where, "empty text (whitespace only)", line=i)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(task.labels):
            valid = ", ".join(str(k) for k in range(len(task.labels)))
            raise DataError(where, f"label {label!r} is not a {task.name} label id ({valid})", line=i)
        texts.append(text.strip())
        labels.append(label)
    return TaskData(task=task, split=split, texts=texts, labels=np.asarray(labels, dtype=np.int64),
                    groups=[group] * len(texts) if group is not None else None, source=str(where))


def _concat(task: Task, split: str, pieces: list[TaskData]) -> TaskData:
    if len(pieces) == 1:
        return pieces[0]
    return TaskData(
        task=task, split=split, texts=[t for p in pieces for t in p.texts],
        labels=np.concatenate([p.labels for p in pieces]),
        groups=[g for p in pieces for g in (p.groups or [])], source=", ".join(p.source for p in pieces),
    )
