"""Reader for AffectEval, the four heterogeneous tasks of VIP-MTL (Hu et al., ACL 2025).

Layout under the benchmark folder (see the data README)::

    affecteval/goemotions/{split}.tsv    text<TAB>label ids (comma-separated)<TAB>comment id; no header
    affecteval/goemotions/emotions.txt   the 28 label names in id order
    affecteval/emotioneval/...           a copy of tweeteval/emotion (same layout)
    affecteval/emobank/{split}.tsv       header ``id V A D text``
    affecteval/ei_reg/{split}.tsv        header ``ID Tweet Affect Dimension Intensity Score``

with splits ``train``, ``val`` and ``test``. Every TSV is split on tabs with no
quoting (GoEmotions texts hold raw ``"`` characters) and read as strict UTF-8.

The tasks:

* ``goemotions``: by default the authors' setting (CIFM, VIP-MTL): rows with more
  than one label (a comma in the label field) are dropped and the task is
  single-label 28-way classification, scored by macro-F1 (accuracy reported too).
  ``goemotions_multilabel=True`` keeps every row as the official multi-label task
  (threshold 0.5, macro-F1 over the 28 labels).
* ``emotioneval``: TweetEval's emotion task (4 classes, macro-F1).
* ``emobank``: one regression task with three outputs V, A, D; Pearson r per
  dimension is the score, Spearman ρ per dimension is reported too.
* ``ei_reg``: one regression task over the four emotions' tweets (the files of the
  four emotions concatenated); the score is the mean of Pearson r and Spearman ρ
  over all rows (both reported by VIP-MTL, both counted in Avg). The emotion of
  each row is kept as its group (per-emotion scores in ``results.json``) and, with
  ``ei_reg_pair="first"`` (default), given to the encoder as the first text of a
  pair (``[CLS] anger [SEP] tweet [SEP]``); ``"none"`` gives the tweet alone.
  Literal ``\\n`` sequences in tweets are kept as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from infomtl.data.textio import read_lines
from infomtl.data.tweeteval import load_tweeteval_task
from infomtl.data.types import SPLITS, MultiTaskData, TaskData, choose_task_names
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import EI_REG_PAIRS, TWEETEVAL_TASKS, Metric, Task, TaskKind

#: Task order of the VIP-MTL tables.
AFFECTEVAL_ORDER: tuple[str, ...] = ("goemotions", "emotioneval", "emobank", "ei_reg")

#: GoEmotions label names in id order (``emotions.txt``: alphabetical, neutral last).
GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)

#: EI-reg's emotions, in the order their files are concatenated.
EI_REG_EMOTIONS: tuple[str, ...] = ("anger", "fear", "joy", "sadness")

EMOBANK_TARGETS: tuple[str, ...] = ("V", "A", "D")

GOEMOTIONS_TASK = Task(
    "goemotions", TaskKind.CLASSIFICATION, labels=GOEMOTIONS_LABELS,
    metrics=(Metric("macro_f1", "macro_f1"), Metric("accuracy", "accuracy", official=False)),
    description="GoEmotions, single-label subset (multi-label rows dropped, as the authors), 28 classes",
)
GOEMOTIONS_MULTILABEL_TASK = Task(
    "goemotions", TaskKind.MULTILABEL, labels=GOEMOTIONS_LABELS, threshold=0.5,
    metrics=(Metric("macro_f1", "macro_f1"),),
    description="GoEmotions, official multi-label setting, 28 labels",
)
EMOTIONEVAL_TASK = dataclasses.replace(
    TWEETEVAL_TASKS["emotion"], name="emotioneval",
    description="EmotionEval = TweetEval emotion (SemEval-2018 Task 1, 4 classes)",
)
EMOBANK_TASK = Task(
    "emobank", TaskKind.REGRESSION, targets=EMOBANK_TARGETS,
    metrics=tuple(Metric(f"pearson_{t}", "pearson", target=t) for t in EMOBANK_TARGETS)
    + tuple(Metric(f"spearman_{t}", "spearman", target=t, official=False) for t in EMOBANK_TARGETS),
    description="EmoBank valence, arousal, dominance (regression, 3 outputs)",
)
EI_REG_TASK = Task(
    "ei_reg", TaskKind.REGRESSION, targets=("intensity",),
    metrics=(Metric("pearson", "pearson"), Metric("spearman", "spearman")),
    description="SemEval-2018 Task 1 EI-reg: emotion intensity of anger, fear, joy, sadness tweets",
)

#: The AffectEval tasks (GoEmotions in the authors' single-label setting).
AFFECTEVAL_TASKS: dict[str, Task] = {
    t.name: t for t in (GOEMOTIONS_TASK, EMOTIONEVAL_TASK, EMOBANK_TASK, EI_REG_TASK)
}

EMOBANK_HEADER: tuple[str, ...] = ("id", "V", "A", "D", "text")
EI_REG_HEADER: tuple[str, ...] = ("ID", "Tweet", "Affect Dimension", "Intensity Score")


def select_affecteval_tasks(tasks: Sequence[str] | str | None) -> list[str]:
    """Validated task names, in the order given (default: :data:`AFFECTEVAL_ORDER`).

    Raises:
        ConfigError: an unknown or repeated task name.
    """
    return choose_task_names(tasks, AFFECTEVAL_ORDER, "AffectEval")

def load_affecteval(
    folder: Path,
    tasks: Sequence[str] | None = None,
    goemotions_multilabel: bool = False,
    ei_reg_pair: str = "first",
) -> MultiTaskData:
    """Load AffectEval tasks (see the module docstring).

    Args:
        folder: the ``affecteval`` folder (one folder per task). A data root that
            holds ``affecteval/`` is accepted too.
        tasks: task names to load, in the order wanted; ``None`` = all four in
            :data:`AFFECTEVAL_ORDER`.
        goemotions_multilabel: GoEmotions as the official multi-label task (every
            row) instead of the authors' single-label subset.
        ei_reg_pair: ``"first"``: EI-reg's emotion is the first text of a pair;
            ``"none"``: the tweet alone.

    Raises:
        ConfigError: an unknown task name or ``ei_reg_pair``.
        DataError: a missing folder or file, or a malformed file (the message names
            the file and line).
    """
    names = select_affecteval_tasks(tasks)
    if ei_reg_pair not in EI_REG_PAIRS:
        raise ConfigError(f"ei_reg_pair must be one of {', '.join(EI_REG_PAIRS)}, got {ei_reg_pair!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "AffectEval folder not found")
    if not (folder / names[0]).exists() and (folder / "affecteval").is_dir():
        folder = folder / "affecteval"
    loaded: dict[str, tuple[Task, dict[str, TaskData]]] = {}
    for name in names:
        task_dir = folder / name
        if not task_dir.is_dir():
            raise DataError(task_dir, f"task folder not found (expected the AffectEval {name!r} folder)")
        if name == "goemotions":
            loaded[name] = _load_goemotions(task_dir, goemotions_multilabel)
        elif name == "emotioneval":
            loaded[name] = (EMOTIONEVAL_TASK, load_tweeteval_task(task_dir, EMOTIONEVAL_TASK))
        elif name == "emobank":
            loaded[name] = (EMOBANK_TASK, _per_split(task_dir, lambda p: _read_emobank(p, EMOBANK_TASK)))
        else:
            loaded[name] = (EI_REG_TASK, _per_split(task_dir, lambda p: _read_ei_reg(p, EI_REG_TASK, ei_reg_pair)))
    return MultiTaskData(
        tasks=[loaded[n][0] for n in names], splits={n: loaded[n][1] for n in names}
    )


# --------------------------------------------------------------------------- GoEmotions


def _load_goemotions(task_dir: Path, multilabel: bool) -> tuple[Task, dict[str, TaskData]]:
    _read_emotions(task_dir / "emotions.txt")
    task = GOEMOTIONS_MULTILABEL_TASK if multilabel else GOEMOTIONS_TASK
    return task, _per_split(task_dir, lambda p: _read_goemotions(p, task))


def _read_emotions(path: Path) -> None:
    """``emotions.txt`` must list :data:`GOEMOTIONS_LABELS`, one per line, in id order."""
    _require(path, "the 28 GoEmotions label names, one per line in id order")
    names = tuple(line.strip() for line in read_lines(path) if line.strip())
    if names != GOEMOTIONS_LABELS:
        raise DataError(
            path, f"label names {', '.join(names)} do not match GoEmotions' 28 labels "
            f"({', '.join(GOEMOTIONS_LABELS)})"
        )


def _read_goemotions(path: Path, task: Task) -> TaskData:
    """One GoEmotions split: every row validated, then (single-label) multi-label rows dropped."""
    num = len(task.labels)
    texts: list[str] = []
    label_sets: list[list[int]] = []
    for lineno, cols in _rows(path, 3, "text, label ids, comment id"):
        text = _text(path, lineno, cols[0])
        field = cols[1].strip()
        if not field:
            raise DataError(path, "missing label ids (expected comma-separated ids 0..27)", line=lineno)
        ids = []
        for part in field.split(","):
            value = part.strip()
            if not (value.isascii() and value.isdigit()) or int(value) >= num:
                raise DataError(
                    path, f"unknown GoEmotions label id {value!r} (valid ids: 0..{num - 1}, "
                    "see emotions.txt)", line=lineno,
                )
            ids.append(int(value))
        if task.kind is TaskKind.CLASSIFICATION and len(ids) > 1:
            continue  # the authors' single-label subset
        texts.append(text)
        label_sets.append(ids)
    if task.kind is TaskKind.CLASSIFICATION:
        labels = np.array([ids[0] for ids in label_sets], dtype=np.int64)
    else:
        labels = np.zeros((len(label_sets), num), dtype=np.float32)
        for i, ids in enumerate(label_sets):
            labels[i, ids] = 1.0
    return _task_data(path, task, texts, labels)


# --------------------------------------------------------------------------- EmoBank, EI-reg


def _read_emobank(path: Path, task: Task) -> TaskData:
    texts: list[str] = []
    values: list[list[float]] = []
    for lineno, cols in _rows(path, len(EMOBANK_HEADER), ", ".join(EMOBANK_HEADER), EMOBANK_HEADER):
        texts.append(_text(path, lineno, cols[4]))
        values.append([_number(path, lineno, cols[1 + d], name) for d, name in enumerate(task.targets)])
    return _task_data(path, task, texts, np.asarray(values, dtype=np.float32).reshape(-1, 3))


def _read_ei_reg(path: Path, task: Task, pair: str) -> TaskData:
    texts: list[str] = []
    emotions: list[str] = []
    values: list[float] = []
    for lineno, cols in _rows(path, len(EI_REG_HEADER), "ID, Tweet, Affect Dimension, Intensity Score",
                              EI_REG_HEADER):
        texts.append(_text(path, lineno, cols[1]))
        emotion = cols[2].strip()
        if emotion not in EI_REG_EMOTIONS:
            raise DataError(
                path, f"unknown emotion {emotion!r} in 'Affect Dimension' (expected one of "
                f"{', '.join(EI_REG_EMOTIONS)})", line=lineno,
            )
        emotions.append(emotion)
        values.append(_number(path, lineno, cols[3], "Intensity Score"))
    labels = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    if pair == "first":
        return _task_data(path, task, texts, labels, groups=emotions, pairs=list(emotions), pair_first=True)
    return _task_data(path, task, texts, labels, groups=emotions)


# --------------------------------------------------------------------------- helpers


def _per_split(task_dir: Path, read: Callable[[Path], TaskData]) -> dict[str, TaskData]:
    out = {}
    for split in SPLITS:
        path = task_dir / f"{split}.tsv"
        _require(path, f"the {split} split of {task_dir.name!r}")
        out[split] = read(path)
    return out


def _rows(
    path: Path, ncols: int, columns: str, header: tuple[str, ...] | None = None
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, columns)`` of every data row of a tab-separated file with no quoting."""
    lines = read_lines(path)
    start = 0
    if header is not None:
        expected = "<TAB>".join(header)
        if not lines:
            raise DataError(path, f"empty file: expected the header '{expected}'")
        if tuple(c.strip() for c in lines[0].split("\t")) != header:
            raise DataError(path, f"expected the header '{expected}', got {lines[0]!r}", line=1)
        start = 1
    if len(lines) <= start:
        raise DataError(path, "no data rows")
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            raise DataError(path, f"empty line (expected {ncols} tab-separated columns: {columns})",
                            line=lineno)
        cols = line.split("\t")
        if len(cols) != ncols:
            raise DataError(path, f"expected {ncols} tab-separated columns ({columns}), got {len(cols)}",
                            line=lineno)
        yield lineno, cols


def _text(path: Path, lineno: int, value: str) -> str:
    text = value.strip()
    if not text:
        raise DataError(path, "empty text (whitespace only)", line=lineno)
    return text


def _number(path: Path, lineno: int, value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise DataError(path, f"expected a number for {name}, got {value.strip()!r}", line=lineno) from None
    if not math.isfinite(number):
        raise DataError(path, f"expected a finite number for {name}, got {value.strip()!r}", line=lineno)
    return number


def _task_data(path: Path, task: Task, texts: list[str], labels: np.ndarray, **extra) -> TaskData:
    if not texts:
        raise DataError(path, f"no rows left for task {task.name!r}")
    return TaskData(task=task, split=path.stem, texts=texts, labels=labels, source=str(path), **extra)


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(path, f"missing file: expected {path.name} with {what}")


__all__ = [
    "AFFECTEVAL_ORDER",
    "AFFECTEVAL_TASKS",
    "EI_REG_EMOTIONS",
    "EI_REG_PAIRS",
    "GOEMOTIONS_LABELS",
    "GOEMOTIONS_MULTILABEL_TASK",
    "load_affecteval",
    "select_affecteval_tasks",
]
