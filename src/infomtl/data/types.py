"""In-memory task data: plain Python lists and NumPy arrays, one object per split."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from infomtl.errors import ConfigError, unknown_names
from infomtl.tasks import Task, TaskKind

SPLITS: tuple[str, ...] = ("train", "val", "test")


def choose_task_names(
    tasks: Sequence[str] | str | None, valid: Sequence[str], benchmark: str
) -> list[str]:
    """Validated task names, in the order given (``None``: all of ``valid``).

    Raises:
        ConfigError: no name, unknown names (all named, each with the closest valid one),
            or a name given twice.
    """
    if tasks is None:
        return list(valid)
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    listing = ", ".join(valid)
    if not names:
        raise ConfigError(f"no {benchmark} task selected; valid tasks: {listing}")
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise ConfigError(f"{unknown_names(f'{benchmark} task', unknown, valid)}; valid tasks: {listing}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{benchmark} task listed twice in {names}")
    return names


@dataclass
class TaskData:
    """One split of one task.

    Attributes:
        task: the task definition.
        split: ``train``, ``val`` or ``test``.
        texts: one text per row.
        labels: classification: int64 ``(N,)`` label ids; multi-label: float32
            ``(N, C)`` multi-hot; regression: float32 ``(N, D)`` targets.
        pairs: optional second text per row, given to the encoder as a text pair
            (``pair_first`` puts it first, e.g. EI-reg's emotion name).
        groups: optional group per row (stance target, EI-reg emotion), kept for
            per-group reporting; never used as model input unless it is also a pair.
        source: where the rows came from, for messages.
    """

    task: Task
    split: str
    texts: list[str]
    labels: np.ndarray
    pairs: list[str] | None = None
    pair_first: bool = False
    groups: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.texts)
        if len(self.labels) != n:
            raise ValueError(f"{self.source}: {n} texts but {len(self.labels)} labels")
        for name in ("pairs", "groups"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{self.source}: {n} texts but {len(value)} {name}")
        kind = self.task.kind
        if kind is TaskKind.CLASSIFICATION:
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n)
        else:
            self.labels = np.asarray(self.labels, dtype=np.float32).reshape(n, self.task.num_outputs)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TaskData:
        """The rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        return TaskData(
            task=self.task,
            split=self.split,
            texts=[self.texts[i] for i in idx],
            labels=self.labels[idx],
            pairs=pick(self.pairs),
            pair_first=self.pair_first,
            groups=pick(self.groups),
            source=self.source,
        )

    def stratum(self) -> np.ndarray:
        """A class id per row for stratified sampling (regression: one stratum)."""
        if self.task.kind is TaskKind.CLASSIFICATION:
            return self.labels
        if self.task.kind is TaskKind.MULTILABEL:
            # first positive label, or C for rows with none
            has = self.labels.any(axis=1)
            return np.where(has, self.labels.argmax(axis=1), self.labels.shape[1])
        return np.zeros(len(self), dtype=np.int64)


@dataclass
class MultiTaskData:
    """Several tasks' splits: ``data[task_name][split] -> TaskData``; ``sources`` says where
    each task came from (``tweeteval``, ``folder:PATH``, ``hf:DATASET``), where known."""

    tasks: list[Task]
    splits: dict[str, dict[str, TaskData]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names: {names}")

    def __getitem__(self, task_name: str) -> dict[str, TaskData]:
        return self.splits[task_name]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def split(self, split: str) -> list[TaskData]:
        """Every task's data for one split, in task order."""
        return [self.splits[t.name][split] for t in self.tasks]

    def source_label(self, default: str = "") -> str:
        """What the tasks come from, in a word: their benchmark, ``folders`` (task folders and
        Hugging Face datasets), or several joined by ``+`` (``tweeteval+folders``); ``default``
        where a task's source is not known."""
        parts = []
        for task in self.tasks:
            source = self.sources.get(task.name, default)
            parts.append("folders" if source.startswith(("folder:", "hf:")) else source)
        return "+".join(dict.fromkeys(parts))

    def pair_modes(self) -> dict[str, str]:
        """How each task's text pair reaches the encoder, from its train split: ``none``;
        ``first`` (put first, required: EI-reg's emotion); ``second`` (a task's own pair)."""
        modes = {}
        for task in self.tasks:
            part = self.splits[task.name].get("train")
            has = part is not None and part.pairs is not None
            modes[task.name] = "none" if not has else "first" if part.pair_first else "second"  # type: ignore[union-attr]
        return modes
