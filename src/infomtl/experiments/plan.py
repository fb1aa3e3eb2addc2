"""Sweep files: the grid of training runs a sweep names, resolved and validated.

A sweep file (YAML; its format: ``docs/experiments.md``) gives ``base`` TrainConfig options
(flat or by section), ``methods`` (one entry per report row: ``method``, optional ``label``,
``grid`` of method hyperparameters, ``seeds`` and any option overriding ``base``), and the
``seeds``, ``train_ratios``, ``benchmarks``, ``backbones`` and ``task_sets`` (``all``,
``pairs``, ``singles`` or task lists) every row is repeated over. Every run is resolved to a
:class:`TrainConfig` and validated (method and hyperparameters included) before anything
trains; its id (:func:`~infomtl.experiments.store.run_id`) hashes the options that differ
from their defaults, so the same run always gets the same id.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig, flat_options
from infomtl.data.loading import BENCHMARKS
from infomtl.data.refs import BENCHMARK_TASK_NAMES, is_path_entry, resolve_task_refs
from infomtl.data.types import choose_task_names
from infomtl.errors import ConfigError, InfomtlError, unknown_names
from infomtl.experiments.store import PlannedRun, run_id
from infomtl.options import load_yaml
from infomtl.training import resolve_spec

SWEEP_KEYS = ("base", "methods", "seeds", "train_ratios", "benchmarks", "backbones", "task_sets")
ENTRY_KEYS = ("method", "label", "grid")
DEFAULT_SEEDS = (0, 1, 2)


def _as_list(value: Any, name: str, source: str) -> list[Any]:
    if isinstance(value, list) and value:
        return value
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value]
    raise ConfigError(f"{source}: {name} must be a non-empty list, got {value!r}")


def expand_sweep(data: dict[str, Any], source: str = "sweep") -> list[PlannedRun]:
    """Every run of a sweep mapping, resolved and validated (method included).

    Raises :class:`ConfigError` naming ``source`` and the bad entry; nothing is run.
    """
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{source}: {unknown_names('key', map(str, unknown), SWEEP_KEYS)} "
                          f"(expected {', '.join(SWEEP_KEYS)})")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: base must be a mapping of TrainConfig options")
    base = flat_options(base, f"{source}: base")  # flat, or by section
    entries = data.get("methods")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: methods must be a non-empty list of {{method: NAME, ...}}")
    seeds = _as_list(data.get("seeds", list(DEFAULT_SEEDS)), "seeds", source)
    ratios = _as_list(data.get("train_ratios", [base.get("train_ratio", 1.0)]), "train_ratios", source)
    benchmarks = _as_list(data.get("benchmarks", [base.get("benchmark", "tweeteval")]), "benchmarks", source)
    backbones = _as_list(data.get("backbones", [base.get("backbone", "roberta-base")]), "backbones", source)
    task_sets = {b: expand_task_sets(data.get("task_sets"), b, base, source) for b in benchmarks}
    places = [(bench, backbone, ratio, task_set)
              for bench, backbone, ratio in itertools.product(benchmarks, backbones, ratios)
              for task_set in task_sets[bench]]

    runs: list[PlannedRun] = []
    labels: dict[str, int] = {}
    for i, entry in enumerate(entries, 1):
        where = f"{source}: methods[{i}]"
        if not isinstance(entry, dict) or "method" not in entry:
            raise ConfigError(f"{where}: expected a mapping with a 'method' key, got {entry!r}")
        label = str(entry.get("label") or _default_label(entry))
        if label in labels:
            raise ConfigError(f"{where}: label {label!r} already used by methods[{labels[label]}]; set label:")
        labels[label] = i
        grid = entry.get("grid") or {}
        if not isinstance(grid, dict):
            raise ConfigError(f"{where}: grid must be a mapping of hyperparameter: [values]")
        names = list(grid)
        value_lists = [_as_list(grid[n], f"grid.{n}", where) for n in names]
        options = flat_options({k: v for k, v in entry.items() if k not in ("label", "grid", "seeds")}, where)
        # a row's own seeds (e.g. 5 for the main rows, 3 for ablations), else the sweep's
        row_seeds = _as_list(entry["seeds"], "seeds", where) if "seeds" in entry else seeds
        for values in itertools.product(*value_lists):
            point = dict(zip(names, values, strict=True))
            for (benchmark, backbone, ratio, task_set), seed in itertools.product(places, row_seeds):
                merged = {**base, **options, "benchmark": benchmark, "backbone": backbone,
                          "train_ratio": ratio, "seed": seed}
                if task_set is not None:
                    merged["tasks"] = list(task_set)
                try:
                    config = TrainConfig.from_dict(merged, where)
                    config.method.args = {**config.method.args, **point}
                    config.run.output_dir = None
                    config.validate()
                    resolve_spec(config)
                    _only_the_task_set(config, task_set)
                except InfomtlError as exc:
                    message = str(exc)
                    if not message.startswith(where):
                        message = f"{where} ({label}): {message}"
                    raise ConfigError(message) from None
                runs.append(PlannedRun(run_id(config), label, point, config, task_set))
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        if run.run_id in seen:
            tasks = f", tasks {'+'.join(run.task_set)}" if run.task_set else ""
            raise ConfigError(
                f"{source}: {run.label} [{run.point_name}] and {seen[run.run_id].label} "
                f"[{seen[run.run_id].point_name}] are the same run (seed {run.config.run.seed}{tasks})"
            )
        seen[run.run_id] = run
    return runs


def _only_the_task_set(config: TrainConfig, task_set: tuple[str, ...] | None) -> None:
    """Check the run's task names (the closest valid one suggested); a task set naming none of
    the base's task folders or ``hf_tasks`` trains without them (they would be added otherwise)."""
    refs = resolve_task_refs(config, list(BENCHMARKS))
    if task_set is not None and len(refs) > len(task_set):
        config.data.task_dirs, config.data.hf_tasks = [], []


TASK_SET_WORDS = ("all", "pairs", "singles")


def benchmark_task_names(benchmark: str) -> tuple[str, ...] | None:
    """The task names of a built-in benchmark, in table order (None for another name)."""
    return BENCHMARK_TASK_NAMES.get(benchmark)


def expand_task_sets(
    spec: Any, benchmark: str, base: dict[str, Any], source: str = "sweep"
) -> list[tuple[str, ...] | None]:
    """The task subsets of a sweep's ``task_sets`` for one benchmark (``None`` = all tasks).

    Items: a list of task names or a comma-separated string, ``all``, ``pairs``
    (every pair, in table order) or ``singles``. ``pairs``/``singles`` range over the
    base's ``tasks`` when it names some, else over the benchmark's tasks. Task names
    of a built-in benchmark are checked here; repeated subsets are kept once.
    """
    if spec is None:
        return [None]
    where = f"{source}: task_sets"
    items = _as_list(spec, "task_sets", source)
    base_tasks = base.get("tasks")
    if isinstance(base_tasks, str):
        base_tasks = [t.strip() for t in base_tasks.split(",") if t.strip()]
    known = None if base.get("task_dirs") or base.get("hf_tasks") else benchmark_task_names(benchmark)
    universe = tuple(base_tasks) if base_tasks else known
    out: list[tuple[str, ...] | None] = []
    for item in items:
        if item in TASK_SET_WORDS:
            if item == "all":
                out.append(None)
                continue
            if universe is None:
                raise ConfigError(f"{where}: {item!r} needs a built-in benchmark (tweeteval, affecteval, "
                                  "synthetic) or base tasks; list the task sets instead")
            out += list(itertools.combinations(universe, 2 if item == "pairs" else 1))
            continue
        names = [t.strip() for t in item.split(",") if t.strip()] if isinstance(item, str) else item
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: expected a list of task names, a comma-separated string or one of "
                              f"{', '.join(TASK_SET_WORDS)}; got {item!r}")
        plain = [n for n in names if ":" not in n and not is_path_entry(n)]  # others: checked per run
        if known is not None and plain:
            try:
                choose_task_names(plain, known, benchmark)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: task listed twice in {names}")
        out.append(tuple(names))
    return list(dict.fromkeys(out))


def _default_label(entry: dict[str, Any]) -> str:
    weighting = entry.get("weighting")
    return f"{entry['method']}+{weighting}" if weighting else str(entry["method"])


def load_sweep(path: str | Path) -> list[PlannedRun]:
    """Read and expand a sweep file (see the module docstring)."""
    return expand_sweep(load_yaml(path), str(path))


#: ``infomtl sweep --order``: runs as the file lists them, or every row's first seed first
ORDERS = ("rows", "seeds")


def select_runs(runs: list[PlannedRun], only: list[str] | None = None, order: str = "rows") -> list[PlannedRun]:
    """The runs a sweep trains this time: those of the rows labelled in ``only`` (all when
    empty), in ``order`` — ``rows``: as the file lists them; ``seeds``: by seed, then as listed,
    so a sweep stopped part-way holds every row at its first seeds (a comparison over fewer
    seeds rather than some rows over all seeds and others over none). Neither changes a run."""
    if order not in ORDERS:
        raise ConfigError(f"--order {order!r}: expected one of {', '.join(ORDERS)}")
    if only:
        labels = list(dict.fromkeys(r.label for r in runs))
        unknown = [name for name in only if name not in labels]
        if unknown:
            raise ConfigError(f"--only: {unknown_names('row label', unknown, labels)} "
                              f"(the sweep's rows: {', '.join(labels)})")
        runs = [r for r in runs if r.label in only]
    if order == "seeds":
        runs = sorted(runs, key=lambda r: r.config.run.seed)  # stable: rows keep the file's order
    return runs
