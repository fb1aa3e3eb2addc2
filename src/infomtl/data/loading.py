"""Loading the tasks of a run: built-in benchmarks or task folders, then the limits.

:func:`load_benchmark` reads a built-in benchmark by name; :func:`load_data` reads the
tasks a :class:`~infomtl.config.TrainConfig` names (benchmark or task folders, with
its multi-label threshold); :func:`prepare_data` then applies the data-constrained and
smoke-run limits (``--train-ratio``, ``--max-train-examples``, ``--max-eval-examples``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.affecteval import load_affecteval
from infomtl.data.folder import load_task_folders
from infomtl.data.paths import resolve_benchmark_dir
from infomtl.data.subsample import head, subsample
from infomtl.data.synthetic import synthetic_benchmark
from infomtl.data.tweeteval import load_tweeteval
from infomtl.data.types import MultiTaskData, choose_task_names
from infomtl.errors import ConfigError, InfomtlError
from infomtl.tasks import TaskKind

#: ``loader(data_dir, tasks, **options)``; a loader declares the options it takes as
#: keyword parameters (AffectEval: ``goemotions_multilabel``, ``ei_reg_pair``).
BenchmarkLoader = Callable[..., MultiTaskData]


def _tweeteval(data_dir: str | Path | None, tasks: Sequence[str] | None) -> MultiTaskData:
    return load_tweeteval(resolve_benchmark_dir("tweeteval", data_dir), tasks)


def _affecteval(
    data_dir: str | Path | None,
    tasks: Sequence[str] | None,
    goemotions_multilabel: bool = False,
    ei_reg_pair: str = "first",
) -> MultiTaskData:
    return load_affecteval(
        resolve_benchmark_dir("affecteval", data_dir), tasks,
        goemotions_multilabel=goemotions_multilabel, ei_reg_pair=ei_reg_pair,
    )


def _synthetic(data_dir: str | Path | None, tasks: Sequence[str] | None) -> MultiTaskData:
    return select_tasks(synthetic_benchmark(), tasks, benchmark="synthetic")


#: Built-in benchmarks: name -> loader(data_dir, tasks, **options).
BENCHMARKS: dict[str, BenchmarkLoader] = {
    "tweeteval": _tweeteval,
    "synthetic": _synthetic,
    "affecteval": _affecteval,
}


def load_benchmark(
    name: str,
    data_dir: str | Path | None = None,
    tasks: Sequence[str] | None = None,
    **options: Any,
) -> MultiTaskData:
    """Load a built-in benchmark by name (see :data:`BENCHMARKS`).

    Args:
        name: ``tweeteval``, ``synthetic`` or ``affecteval``.
        data_dir: data root holding the benchmark's folder (else ``$INFOMTL_DATA``
            or the user cache; see :func:`resolve_benchmark_dir`).
        tasks: task names to keep, in the order wanted (default: all).
        options: benchmark options (``goemotions_multilabel``, ``ei_reg_pair``);
            each loader gets those it declares and ignores the others, so one set
            of options serves every benchmark.

    Raises:
        ConfigError: an unknown benchmark or task name.
        InfomtlError: the data cannot be found or read.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    loader = BENCHMARKS[name]
    accepted = list(inspect.signature(loader).parameters)[2:]  # after data_dir, tasks
    return loader(data_dir, tasks, **{k: v for k, v in options.items() if k in accepted})


def select_tasks(
    data: MultiTaskData, tasks: Sequence[str] | str | None, benchmark: str = "benchmark"
) -> MultiTaskData:
    """The named tasks of ``data``, in the order given (``None`` keeps all).

    Raises:
        ConfigError: an unknown or repeated task name.
    """
    if tasks is None:
        return data
    names = choose_task_names(tasks, data.task_names, benchmark)
    by_name = {t.name: t for t in data.tasks}
    return MultiTaskData(
        tasks=[by_name[n] for n in names], splits={n: data.splits[n] for n in names}
    )


def prepare_data(config: TrainConfig) -> MultiTaskData:
    """Load the configured tasks and apply the data-constrained / smoke-run limits."""
    return limit_data(config, load_data(config))


def load_data(config: TrainConfig) -> MultiTaskData:
    """The configured tasks with their whole splits (no limits applied)."""
    if config.task_dirs:
        data = load_task_folders([Path(p) for p in config.task_dirs])
        data = select_tasks(data, config.tasks or None, benchmark="task-folder")
    else:
        data = load_benchmark(
            config.benchmark, config.data_dir, config.tasks or None,
            goemotions_multilabel=config.goemotions_multilabel, ei_reg_pair=config.ei_reg_pair,
        )
    if config.multilabel_threshold is not None:
        data = with_multilabel_threshold(data, config.multilabel_threshold)
    return data


def limit_data(config: TrainConfig, full: MultiTaskData) -> MultiTaskData:
    """``full`` with the data-constrained / smoke-run limits applied (``full`` is not changed)."""
    data = MultiTaskData(tasks=list(full.tasks), splits={k: dict(v) for k, v in full.splits.items()})
    for task in data.tasks:
        splits = data.splits[task.name]
        for required in ("train", "val"):
            if required not in splits:
                raise InfomtlError(f"task {task.name}: no {required} split")
        train = splits["train"]
        if config.train_ratio < 1:
            train = subsample(train, ratio=config.train_ratio, seed=config.seed)
        if config.max_train_examples is not None and len(train) > config.max_train_examples:
            train = subsample(train, count=config.max_train_examples, seed=config.seed)
        splits["train"] = train
        if config.max_eval_examples is not None:
            for split in ("val", "test"):
                if split in splits:
                    splits[split] = head(splits[split], config.max_eval_examples)
    return data


def with_multilabel_threshold(data: MultiTaskData, threshold: float) -> MultiTaskData:
    """``data`` with every multi-label task's decision threshold set to ``threshold``."""
    tasks = [
        dataclasses.replace(t, threshold=threshold) if t.kind is TaskKind.MULTILABEL else t
        for t in data.tasks
    ]
    splits = {
        task.name: {
            split: dataclasses.replace(part, task=task) for split, part in data.splits[task.name].items()
        }
        for task in tasks
    }
    return MultiTaskData(tasks=tasks, splits=splits)
