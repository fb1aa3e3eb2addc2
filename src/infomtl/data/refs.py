"""Which tasks a run trains, and where each comes from: built-in benchmarks, task folders and
Hugging Face datasets mixed in one list.

The rule (``--tasks``, ``--task-dirs``, ``--hf-task``, ``--benchmark``):

* each ``--tasks`` entry is ``BENCHMARK:NAME`` (``affecteval:emobank``), a path to a
  task folder (an entry with a ``/``, or starting with ``.`` or ``~``), or a plain
  ``NAME``: the task of that name from ``--task-dirs`` / ``--hf-task``, else the task
  of ``--benchmark``;
* the tasks of ``--task-dirs`` and ``--hf-task`` that ``--tasks`` does not name are
  added after its entries, unless it names one of them: then ``--tasks`` is the whole
  list (``--task-dirs a,b --tasks a`` trains ``a`` alone);
* without ``--tasks``: the tasks of ``--task-dirs`` and ``--hf-task``, or, when there
  are none, every task of ``--benchmark``.

Task names are unique within a run; two sources giving one name is an error naming
both. Resolving reads only task.yaml files (for a folder's name), never data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.affecteval import AFFECTEVAL_ORDER
from infomtl.data.folder import task_folder_name
from infomtl.data.hf_source import hf_task_name
from infomtl.data.synthetic import SYNTHETIC_TASKS
from infomtl.errors import ConfigError, did_you_mean
from infomtl.tasks import TWEETEVAL_ORDER

#: Task names of the built-in benchmarks, in table order (a benchmark added to
#: ``BENCHMARKS`` without an entry here has its names checked when it loads).
BENCHMARK_TASK_NAMES: dict[str, tuple[str, ...]] = {
    "tweeteval": TWEETEVAL_ORDER,
    "affecteval": AFFECTEVAL_ORDER,
    "synthetic": tuple(t.name for t in SYNTHETIC_TASKS),
}


@dataclass(frozen=True)
class TaskRef:
    """One task of a run and its source: a benchmark's task, a task folder, or an ``--hf-task``."""

    name: str
    kind: str  # "benchmark" | "folder" | "hf"
    benchmark: str | None = None
    path: str | None = None
    hf: dict[str, Any] | None = None

    @property
    def source(self) -> str:
        """Where the task comes from, as recorded in ``run.json``: ``tweeteval``, ``folder:PATH``
        or ``hf:DATASET[:CONFIG]``."""
        if self.kind == "benchmark":
            return str(self.benchmark)
        if self.kind == "folder":
            return f"folder:{self.path}"
        assert self.hf is not None
        return "hf:" + str(self.hf["dataset"]) + (f":{self.hf['config']}" if self.hf.get("config") else "")


def is_path_entry(entry: str) -> bool:
    """Whether a ``--tasks`` entry names a task folder by its path."""
    return "/" in entry or "\\" in entry or entry.startswith((".", "~"))


def _same_folder(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def resolve_task_refs(config: TrainConfig, benchmarks: Sequence[str],
                      folder_name: Callable[[str], str] = task_folder_name) -> list[TaskRef]:
    """The run's tasks in order (see the module docstring).

    Args:
        benchmarks: the names ``BENCHMARK:NAME`` may use (the registry's).
        folder_name: how a folder's task name is read (default: its task.yaml, else its name).

    Raises:
        ConfigError: an unknown benchmark or task (with the closest valid name), a task
            listed twice, or two sources giving one task name.
        DataError: an invalid task.yaml.
    """
    own = [TaskRef(folder_name(p), "folder", path=p) for p in config.data.task_dirs]
    own += [TaskRef(hf_task_name(spec), "hf", hf=spec) for spec in config.data.hf_tasks]
    _check_unique(own)
    if not config.data.tasks:
        if own:
            return own
        names = BENCHMARK_TASK_NAMES.get(config.data.benchmark)
        if names is None:  # a benchmark registered without its names: it loads them all itself
            return [TaskRef("*", "benchmark", benchmark=config.data.benchmark)]
        return [TaskRef(n, "benchmark", benchmark=config.data.benchmark) for n in names]
    by_name = {r.name: r for r in own}
    chosen: list[TaskRef] = []
    for entry in config.data.tasks:
        ref = _resolve_entry(entry, config, benchmarks, own, by_name, folder_name)
        if ref in chosen:
            raise ConfigError(f"--tasks: task {ref.name!r} ({ref.source}) is listed twice")
        chosen.append(ref)
    if not any(r in own for r in chosen):
        chosen += [r for r in own if r not in chosen]
    _check_unique(chosen)
    return chosen


def _resolve_entry(entry: str, config: TrainConfig, benchmarks: Sequence[str], own: list[TaskRef],
                   by_name: dict[str, TaskRef], folder_name: Callable[[str], str]) -> TaskRef:
    if is_path_entry(entry):
        for ref in own:
            if ref.kind == "folder" and ref.path is not None and _same_folder(ref.path, entry):
                return ref
        return TaskRef(folder_name(entry), "folder", path=entry)
    if ":" in entry:
        bench, name = (p.strip() for p in entry.split(":", 1))
        if bench not in benchmarks:
            raise ConfigError(f"--tasks {entry}: unknown benchmark {bench!r}{did_you_mean(bench, benchmarks)} "
                              f"(benchmarks: {', '.join(benchmarks)})")
        _check_benchmark_task(bench, name, entry, [])
        return TaskRef(name, "benchmark", benchmark=bench)
    if entry in by_name:
        return by_name[entry]
    _check_benchmark_task(config.data.benchmark, entry, entry, [r.name for r in own], benchmarks)
    return TaskRef(entry, "benchmark", benchmark=config.data.benchmark)


def _check_benchmark_task(bench: str, name: str, entry: str, own: list[str],
                          benchmarks: Sequence[str] = ()) -> None:
    names = BENCHMARK_TASK_NAMES.get(bench)
    if names is None or name in names:
        return
    elsewhere = [f"{b}:{name}" for b in benchmarks if b != bench and name in BENCHMARK_TASK_NAMES.get(b, ())]
    valid = own + list(names) + [f"{b}:{n}" for b in benchmarks if b != bench
                                 for n in BENCHMARK_TASK_NAMES.get(b, ())]
    if entry != name:  # BENCHMARK:NAME
        hint = did_you_mean(entry, [f"{bench}:{n}" for n in names])
    else:
        hint = f" (did you mean `{elsewhere[0]}`?)" if elsewhere else did_you_mean(entry, valid)
    where = "--task-dirs / --hf-task or " if own else ""
    raise ConfigError(f"--tasks: unknown task {entry!r}{hint}; valid tasks of "
                      f"{where}{bench}: {', '.join(own + list(names))} (another benchmark's: BENCHMARK:NAME)")


def _check_unique(refs: list[TaskRef]) -> None:
    first: dict[str, TaskRef] = {}
    for ref in refs:
        if ref.name in first and first[ref.name] != ref:
            raise ConfigError(
                f"task name {ref.name!r} is given by both {first[ref.name].source} and {ref.source}; "
                "task names must be unique: rename a folder or set 'name' in its task.yaml (or name= of --hf-task)")
        first.setdefault(ref.name, ref)


def task_entries(config: TrainConfig, refs: Sequence[TaskRef]) -> list[str]:
    """``--tasks`` entries that name exactly ``refs`` again, with ``config``'s other sources."""
    out = []
    for ref in refs:
        if ref.kind == "benchmark":
            out.append(ref.name if ref.benchmark == config.data.benchmark else f"{ref.benchmark}:{ref.name}")
        elif ref.kind == "folder" and not any(_same_folder(ref.path or "", p) for p in config.data.task_dirs):
            out.append(str(ref.path))
        else:
            out.append(ref.name)
    return out


def config_for_task(config: TrainConfig, ref: TaskRef) -> TrainConfig:
    """``config`` reduced to the one task ``ref`` (its source only; a single-task run's config)."""
    if ref.kind == "benchmark":
        entry = ref.name if ref.benchmark == config.data.benchmark else f"{ref.benchmark}:{ref.name}"
        return config.replace(tasks=[entry], task_dirs=[], hf_tasks=[])
    if ref.kind == "folder":
        return config.replace(tasks=[ref.name], task_dirs=[str(ref.path)], hf_tasks=[])
    return config.replace(tasks=[ref.name], task_dirs=[], hf_tasks=[dict(ref.hf or {})])
