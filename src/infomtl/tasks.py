"""Task definitions: what a task is, its label space and its official metrics.

A :class:`Task` is data, not code. Everything downstream (heads, losses,
metrics, predictions) is driven by ``task.kind`` and ``task.metrics``, never by
the task's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TaskKind(str, Enum):
    """The three task kinds the library trains."""

    CLASSIFICATION = "classification"  # one label out of C (cross-entropy)
    MULTILABEL = "multilabel"  # any subset of C labels (binary cross-entropy)
    REGRESSION = "regression"  # D real-valued targets (MSE averaged over outputs)


@dataclass(frozen=True)
class Metric:
    """One official metric of a task.

    Attributes:
        name: key under which the score is reported (``macro_f1``, ``f1_irony``...).
        fn: metric function in :mod:`infomtl.metrics` (``macro_f1``, ``macro_recall``,
            ``accuracy``, ``pearson``, ``spearman``).
        labels: for classification, restrict the average to these label names
            (``("irony",)`` = F1 of the irony class; ``("against", "favor")`` = mean
            F1 of those two classes). Empty = all classes.
        target: for multi-output regression, the output this metric scores
            (``"V"`` of EmoBank). ``None`` = all outputs pooled.
        higher_is_better: direction, used by Δp and model selection.
        official: counted in the task's score (and so in Avg); unofficial metrics
            are reported alongside but not averaged.
    """

    name: str
    fn: str
    labels: tuple[str, ...] = ()
    target: str | None = None
    higher_is_better: bool = True
    official: bool = True


@dataclass(frozen=True)
class Task:
    """A task: its name, kind, label or target names, and metrics.

    Attributes:
        name: unique task name (``emotion``, ``hate``...).
        kind: classification, multi-label or regression.
        labels: class names in id order (classification and multi-label).
        targets: output names (regression), e.g. ``("V", "A", "D")``; one unnamed
            output is ``("score",)``.
        metrics: the metrics reported for the task; the official ones make its score.
        threshold: decision threshold of multi-label predictions.
        description: one line for listings and model cards.
    """

    name: str
    kind: TaskKind
    labels: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
    threshold: float = 0.5
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"task name {self.name!r} must be letters, digits, '_' or '-'")
        kind = TaskKind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind is TaskKind.REGRESSION:
            if not self.targets:
                object.__setattr__(self, "targets", ("score",))
        elif len(self.labels) < 2:
            raise ValueError(f"task {self.name!r}: a {kind.value} task needs at least 2 labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"task {self.name!r}: duplicate label names in {self.labels}")
        if not self.metrics:
            object.__setattr__(self, "metrics", default_metrics(kind, self.targets))
        if not any(m.official for m in self.metrics):
            raise ValueError(f"task {self.name!r}: at least one metric must be official")

    @property
    def num_outputs(self) -> int:
        """Width of the task head: C classes or D regression targets."""
        return len(self.targets) if self.kind is TaskKind.REGRESSION else len(self.labels)

    @property
    def official_metrics(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.official)

    def label_id(self, name: str) -> int:
        """Id of a label name (raises ``KeyError`` for an unknown name)."""
        return self.labels.index(name)

    def to_dict(self) -> dict:
        """JSON-serialisable form, the inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "labels": list(self.labels),
            "targets": list(self.targets),
            "metrics": [
                {
                    "name": m.name,
                    "fn": m.fn,
                    "labels": list(m.labels),
                    "target": m.target,
                    "higher_is_better": m.higher_is_better,
                    "official": m.official,
                }
                for m in self.metrics
            ],
            "threshold": self.threshold,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Task:
        metrics = tuple(
            Metric(
                name=m["name"],
                fn=m["fn"],
                labels=tuple(m.get("labels", ())),
                target=m.get("target"),
                higher_is_better=bool(m.get("higher_is_better", True)),
                official=bool(m.get("official", True)),
            )
            for m in data.get("metrics", ())
        )
        return cls(
            name=data["name"],
            kind=TaskKind(data["kind"]),
            labels=tuple(data.get("labels", ())),
            targets=tuple(data.get("targets", ())),
            metrics=metrics,
            threshold=float(data.get("threshold", 0.5)),
            description=data.get("description", ""),
        )


def default_metrics(kind: TaskKind, targets: tuple[str, ...] = ()) -> tuple[Metric, ...]:
    """Metrics of a user task that names none: macro-F1, or Pearson (+ Spearman) per output."""
    if kind is not TaskKind.REGRESSION:
        return (Metric("macro_f1", "macro_f1"),)
    if len(targets) <= 1:
        return (Metric("pearson", "pearson"), Metric("spearman", "spearman", official=False))
    return tuple(Metric(f"pearson_{t}", "pearson", target=t) for t in targets) + tuple(
        Metric(f"spearman_{t}", "spearman", target=t, official=False) for t in targets
    )


def _cls(name: str, labels: tuple[str, ...], *metrics: Metric, description: str = "") -> Task:
    return Task(name, TaskKind.CLASSIFICATION, labels=labels, metrics=metrics, description=description)


#: The six TweetEval tasks (emoji excluded, as in the papers), with the metrics of
#: TweetEval's official evaluation script. Label order is that of ``mapping.txt``.
TWEETEVAL_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        _cls("emotion", ("anger", "joy", "optimism", "sadness"), Metric("macro_f1", "macro_f1"),
             description="SemEval-2018 Task 1 emotion (4 classes)"),
        _cls("hate", ("not-hate", "hate"), Metric("macro_f1", "macro_f1"),
             description="SemEval-2019 Task 5 hate speech"),
        _cls("irony", ("non_irony", "irony"), Metric("f1_irony", "macro_f1", labels=("irony",)),
             description="SemEval-2018 Task 3 irony"),
        _cls("offensive", ("not-offensive", "offensive"), Metric("macro_f1", "macro_f1"),
             description="SemEval-2019 Task 6 offensive language"),
        _cls("sentiment", ("negative", "neutral", "positive"),
             Metric("macro_recall", "macro_recall"),
             description="SemEval-2017 Task 4A sentiment"),
        _cls("stance", ("none", "against", "favor"),
             Metric("f1_against_favor", "macro_f1", labels=("against", "favor")),
             description="SemEval-2016 Task 6 stance, 5 targets pooled"),
    )
}

#: Order the papers' tables use.
TWEETEVAL_ORDER: tuple[str, ...] = ("emotion", "hate", "irony", "offensive", "sentiment", "stance")


#: How EI-reg's emotion reaches the encoder: first text of a pair, or not at all.
EI_REG_PAIRS: tuple[str, ...] = ("first", "none")
