"""Loading the tasks of a run: built-in benchmarks, task folders and Hugging Face datasets
mixed, then the limits.

:func:`load_benchmark` reads a built-in benchmark by name; :func:`load_data` reads the
tasks a :class:`~infomtl.config.TrainConfig` names (resolved by
:mod:`infomtl.data.refs`; with its multi-label threshold); :func:`prepare_data` then
applies the data-constrained and smoke-run limits (``--train-ratio``,
``--max-train-examples``, ``--max-eval-examples``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.affecteval import load_affecteval
from infomtl.data.folder import load_task_folder
from infomtl.data.paths import resolve_benchmark_dir
from infomtl.data.refs import TaskRef, resolve_task_refs
from infomtl.data.subsample import eval_subsets, subsample
from infomtl.data.synthetic import synthetic_benchmark
from infomtl.data.tweeteval import load_tweeteval
from infomtl.data.types import MultiTaskData, TaskData, choose_task_names
from infomtl.errors import ConfigError, InfomtlError, unknown_names
from infomtl.options import scalar
from infomtl.tasks import EI_REG_PAIRS, Task, TaskKind

#: ``loader(data_dir, tasks, **options)``; a loader declares the options it reads (its
#: ``--benchmark-args``) as keyword parameters with defaults (AffectEval:
#: ``goemotions_multilabel``, ``ei_reg_pair``; TweetEval: ``source``).
BenchmarkLoader = Callable[..., MultiTaskData]


def _tweeteval(data_dir: str | Path | None, tasks: Sequence[str] | None, source: str = "files") -> MultiTaskData:
    if source != "files":
        from infomtl.data.tweeteval_hf import HUB_ID, load_tweeteval_hf  # needs the datasets extra

        return load_tweeteval_hf(source[3:].strip() if source.startswith("hf:") else HUB_ID, tasks)
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
        options: the readers' options (``goemotions_multilabel``, ``ei_reg_pair``,
            ``source``; :func:`resolve_benchmark_args` checks them): each loader gets
            those it declares and ignores the others, so one set of options serves every
            benchmark.

    Raises:
        ConfigError: an unknown benchmark or task name.
        InfomtlError: the data cannot be found or read.
    """
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    accepted = _declared(BENCHMARKS[name])
    return BENCHMARKS[name](data_dir, tasks, **{k: v for k, v in options.items() if k in accepted})


def _declared(loader: BenchmarkLoader) -> dict[str, Any]:
    """The options a loader declares (its keyword parameters after ``data_dir`` and ``tasks``), with their defaults."""
    return {p.name: p.default for p in list(inspect.signature(loader).parameters.values())[2:]}


def reader_options() -> dict[str, dict[str, Any]]:
    """Each built-in benchmark's reader options (its ``--benchmark-args``) with their defaults."""
    return {name: _declared(loader) for name, loader in BENCHMARKS.items()}


def _check_source(value: str) -> str | None:
    fine = value in ("files", "hf") or (value.startswith("hf:") and bool(value[3:].strip()))
    return None if fine else "must be files, hf or hf:ID_OR_PATH"


#: Values a reader option must take beyond its type: option -> what is wrong with a value, or None.
OPTION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "source": _check_source,
    "ei_reg_pair": lambda v: None if v in EI_REG_PAIRS else f"must be one of {', '.join(EI_REG_PAIRS)}",
}


def resolve_benchmark_args(args: dict[str, Any]) -> dict[str, Any]:
    """``--benchmark-args`` checked by the readers that declare them (as ``method_args`` by
    their method): each key an option of a built-in benchmark's reader, each value coerced
    to the type of that option's default and checked (:data:`OPTION_CHECKS`).

    Raises:
        ConfigError: a key no reader declares (with each reader's options), or a bad value.
    """
    declared: dict[str, tuple[str, Any]] = {}  # option -> (its benchmark, its default)
    readers = reader_options()
    for bench, options in readers.items():
        for name, default in options.items():
            declared.setdefault(name, (bench, default))
    resolved = {}
    for key, value in args.items():
        if key not in declared:
            listing = "; ".join(f"{b}: {', '.join(o)}" for b, o in readers.items() if o)
            raise ConfigError(f"--benchmark-args: {unknown_names('option', [key], declared)} "
                              f"(the readers' options: {listing})")
        bench, default = declared[key]
        try:
            resolved[key] = scalar(value, type(default))
        except (TypeError, ValueError):
            raise ConfigError(f"--benchmark-args {key}={value!r}: expected a {type(default).__name__} "
                              f"({bench})") from None
        problem = OPTION_CHECKS[key](resolved[key]) if key in OPTION_CHECKS else None
        if problem:
            raise ConfigError(f"--benchmark-args {key} {problem}, got {value!r} ({bench})")
    return resolved


def reader_values(args: dict[str, Any]) -> dict[str, Any]:
    """Every reader option of the built-in benchmarks: its ``--benchmark-args`` entry in
    ``args`` (:func:`resolve_benchmark_args`), else the default of the reader declaring it."""
    values: dict[str, Any] = {}
    for options in reader_options().values():
        for name, default in options.items():
            values.setdefault(name, default)
    return {**values, **resolve_benchmark_args(args)}


def benchmark_arg(config: TrainConfig, name: str) -> Any:
    """The value of reader option ``name`` in a run (:func:`reader_values`)."""
    return reader_values(config.data.benchmark_args)[name]


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
        tasks=[by_name[n] for n in names], splits={n: data.splits[n] for n in names},
        sources={n: data.sources[n] for n in names if n in data.sources},
    )


def prepare_data(config: TrainConfig) -> MultiTaskData:
    """Load the configured tasks and apply the data-constrained / smoke-run limits."""
    return limit_data(config, load_data(config))


def load_data(config: TrainConfig) -> MultiTaskData:
    """The configured tasks with their whole splits (no limits applied), in the order of
    :func:`~infomtl.data.refs.resolve_task_refs`, each task's source in ``sources``."""
    refs = resolve_task_refs(config, list(BENCHMARKS))
    options = resolve_benchmark_args(config.data.benchmark_args)
    loaded: dict[int, list[tuple[Task, dict[str, TaskData], str]]] = {}
    by_benchmark: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        if ref.kind == "benchmark":
            by_benchmark.setdefault(str(ref.benchmark), []).append(i)
        else:
            task, splits = _load_own(ref)
            loaded[i] = [(task, splits, ref.source)]
    for bench, positions in by_benchmark.items():  # one load per benchmark, in the run's order
        names = None if refs[positions[0]].name == "*" else [refs[i].name for i in positions]
        data = load_benchmark(bench, config.data.data_dir, names, **options)
        if names is None:
            loaded[positions[0]] = [(t, data.splits[t.name], bench) for t in data.tasks]
        else:
            for i, task in zip(positions, data.tasks, strict=True):
                loaded[i] = [(task, data.splits[task.name], bench)]
    entries = [item for i in range(len(refs)) for item in loaded[i]]
    names = [task.name for task, _, _ in entries]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"task name {twice!r} is given by two sources "
                          f"({', '.join(src for t, _, src in entries if t.name == twice)}); task names must be unique")
    data = MultiTaskData(tasks=[t for t, _, _ in entries], splits={t.name: sp for t, sp, _ in entries},
                         sources={t.name: src for t, _, src in entries})
    if config.data.multilabel_threshold is not None:
        data = with_multilabel_threshold(data, config.data.multilabel_threshold)
    return data


def task_refs(config: TrainConfig, data: MultiTaskData | None = None) -> list[TaskRef]:
    """The run's tasks and their sources (:func:`~infomtl.data.refs.resolve_task_refs`); a
    benchmark loaded whole whose task names only its loader knows is expanded with ``data``."""
    refs = resolve_task_refs(config, list(BENCHMARKS))
    if data is None or not any(r.name == "*" for r in refs):
        return refs
    return [TaskRef(t.name, "benchmark", benchmark=config.data.benchmark) for t in data.tasks]


def _load_own(ref: TaskRef) -> tuple[Task, dict[str, TaskData]]:
    """A task folder's or an ``--hf-task``'s task; its name is the one the ref was resolved by."""
    if ref.kind == "folder":
        return load_task_folder(Path(str(ref.path)).expanduser())
    from infomtl.data.hf_source import load_hf_flag  # needs the datasets extra

    return load_hf_flag(dict(ref.hf or {}))


def limit_data(config: TrainConfig, full: MultiTaskData) -> MultiTaskData:
    """``full`` with the data-constrained / smoke-run limits applied (``full`` is not changed)."""
    data = MultiTaskData(tasks=list(full.tasks), splits={k: dict(v) for k, v in full.splits.items()},
                         sources=dict(full.sources))
    for task in data.tasks:
        splits = data.splits[task.name]
        for required in ("train", "val"):
            if required not in splits:
                raise InfomtlError(f"task {task.name}: no {required} split")
        train = splits["train"]
        if config.data.train_ratio < 1:
            train = subsample(train, ratio=config.data.train_ratio, seed=config.run.seed)
        if config.data.max_train_examples is not None and len(train) > config.data.max_train_examples:
            train = subsample(train, count=config.data.max_train_examples, seed=config.run.seed)
        splits["train"] = train
    if config.data.max_eval_examples is not None:  # tasks labelling one text set keep one subset
        for split in ("val", "test"):
            tasks = [t for t in data.tasks if split in data.splits[t.name]]
            parts = eval_subsets([data.splits[t.name][split] for t in tasks], config.data.max_eval_examples)
            for task, part in zip(tasks, parts, strict=True):
                data.splits[task.name][split] = part
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
    return MultiTaskData(tasks=tasks, splits=splits, sources=dict(data.sources))
