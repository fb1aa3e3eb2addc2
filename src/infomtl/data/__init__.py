"""Data: readers, validation, loading a run's tasks, subsampling and batching.

Importing this package is cheap (NumPy only; no torch).
"""

from __future__ import annotations

from infomtl.data.affecteval import load_affecteval
from infomtl.data.folder import load_task_folder, load_task_folders
from infomtl.data.loading import (
    BENCHMARKS,
    load_benchmark,
    load_data,
    prepare_data,
    select_tasks,
)
from infomtl.data.paths import default_cache_root, resolve_benchmark_dir
from infomtl.data.subsample import head, subsample
from infomtl.data.synthetic import synthetic_benchmark
from infomtl.data.tweeteval import load_tweeteval
from infomtl.data.types import SPLITS, MultiTaskData, TaskData

__all__ = [
    "BENCHMARKS",
    "SPLITS",
    "MultiTaskData",
    "TaskData",
    "default_cache_root",
    "head",
    "load_affecteval",
    "load_benchmark",
    "load_data",
    "load_task_folder",
    "load_task_folders",
    "load_tweeteval",
    "prepare_data",
    "resolve_benchmark_dir",
    "select_tasks",
    "subsample",
    "synthetic_benchmark",
]
