"""Hand-built inputs for unit tests of objectives: a random shared representation and a
mixed batch with labels of each task's kind."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from infomtl.data.encoding import Batch
from infomtl.tasks import Task, TaskKind

#: One task of each kind, for unit tests of objectives.
MIXED_TASKS = [
    Task("alpha", TaskKind.CLASSIFICATION, labels=("a", "b", "c")),
    Task("beta", TaskKind.MULTILABEL, labels=("x", "y", "z", "w")),
    Task("gamma", TaskKind.REGRESSION, targets=("v", "d")),
]


def random_labels(task: Task, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random labels of ``task``'s kind (class ids, 0/1 rows, or real targets)."""
    if task.kind is TaskKind.CLASSIFICATION:
        return torch.randint(0, task.num_outputs, (n,), generator=gen)
    if task.kind is TaskKind.MULTILABEL:
        return torch.randint(0, 2, (n, task.num_outputs), generator=gen).float()
    return torch.randn(n, task.num_outputs, generator=gen)


def fake_batch(
    tasks: list[Task],
    rows_per_task: tuple[int, ...],
    dim: int,
    seed: int = 0,
    labels: dict[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, Batch]:
    """``h`` ``(B, dim)`` and a :class:`Batch` with ``rows_per_task[t]`` rows of task t
    (tasks with 0 rows are absent); ``labels`` overrides the random labels of a task."""
    gen = torch.Generator().manual_seed(seed)
    rows, batch_labels, start = {}, {}, 0
    for t, n in enumerate(rows_per_task):
        if n == 0:
            continue
        rows[t] = torch.arange(start, start + n)
        start += n
        given = (labels or {}).get(t)
        batch_labels[t] = given[:n] if given is not None else random_labels(tasks[t], n, gen)
    h = torch.randn(start, dim, generator=gen)
    ids = torch.zeros(start, 3, dtype=torch.long)
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=None,
                  rows=rows, labels=batch_labels)
    return h, batch


def small_config(output_dir, **overrides):
    """A run on the built-in synthetic benchmark with the ``tiny`` backbone: seconds on a CPU."""
    from infomtl.config import TrainConfig

    values = dict(
        benchmark="synthetic", backbone="tiny", max_length=32, batch_size=32, epochs=1,
        max_train_examples=64, max_eval_examples=32, progress=False, output_dir=str(output_dir),
    )
    values.update(overrides)
    return TrainConfig(**values)


def dropout_free(tiny):
    """``tiny`` (:func:`infomtl.modeling.backbones._tiny`) with every dropout of the encoder off."""
    from torch import nn

    def build():
        encoder, tokenizer = tiny()
        encoder.config.hidden_dropout_prob = encoder.config.attention_probs_dropout_prob = 0.0
        for module in encoder.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
            if hasattr(module, "dropout_prob"):  # scaled-dot-product attention
                module.dropout_prob = 0.0
        return encoder, tokenizer

    return build


class _Calls(logging.Handler):
    def __init__(self, callback: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        self.callback(record.getMessage())


@contextmanager
def on_progress(callback: Callable[[str], None]) -> Iterator[None]:
    """Within the block, ``callback(line)`` for each line the library logs (its ``infomtl``
    loggers, INFO and above); what the callback raises propagates into the library."""
    logger = logging.getLogger("infomtl")
    handler, previous = _Calls(callback), logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
