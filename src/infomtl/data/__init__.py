"""Data: readers, validation, subsampling and batching.

Importing this package is cheap (NumPy only; no torch).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infomtl.data.affecteval import load_affecteval
from infomtl.data.folder import load_task_folder, load_task_folders
from infomtl.data.paths import default_cache_root, resolve_benchmark_dir
from infomtl.data.subsample import head, subsample
from infomtl.data.synthetic import synthetic_benchmark
from infomtl.data.tweeteval import load_tweeteval
from infomtl.data.types import SPLITS, MultiTaskData, TaskData, choose_task_names
from infomtl.errors import ConfigError

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

__all__ = [
    "BENCHMARKS",
    "SPLITS",
    "MultiTaskData",
    "TaskData",
    "default_cache_root",
    "head",
    "load_affecteval",
    "load_benchmark",
    "load_task_folder",
    "load_task_folders",
    "load_tweeteval",
    "resolve_benchmark_dir",
    "select_tasks",
    "subsample",
    "synthetic_benchmark",
]
