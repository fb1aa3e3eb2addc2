"""Running a sweep into a results store (:mod:`~infomtl.experiments.store`); the sweep
file is read by :mod:`~infomtl.experiments.plan`.

Engines: runs train one after another in this process (default), in ``workers``
local processes, or as tasks of a Ray cluster (``--engine ray``,
:mod:`~infomtl.experiments.ray_engine`: one :func:`run_one` task per run; the store
must be on a file system every node sees). Frozen-backbone runs' features are
extracted once, in this process, before any run starts.

A failed write (disk full, a read-only store) stops the sweep with the error; SIGINT /
SIGTERM stop it at the next step boundary of the runs in progress, which are left
resumable (``last/``), with the index written only for finished runs. Running the same
command again resumes: an unfinished run of the plan continues from its ``last/``.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from infomtl.artifacts.run_folder import resume_config
from infomtl.config import TrainConfig
from infomtl.data.loading import load_data
from infomtl.errors import ConfigError, InfomtlError, Interrupted
from infomtl.experiments.plan import load_sweep, select_runs
from infomtl.experiments.ray_engine import RayOptions, ray_runs
from infomtl.experiments.store import PlannedRun, Store, run_id
from infomtl.fileio import WriteError, read_json, writing
from infomtl.logs import quieted, show_progress
from infomtl.methods.registry import OBJECTIVES, resolve_method
from infomtl.modeling.backbones import load_backbone
from infomtl.modeling.building import uses_features
from infomtl.modeling.feature_cache import AUTOCAST, FeatureCache
from infomtl.threads import available_cpus
from infomtl.training import signals, train

log = logging.getLogger(__name__)


def run_one(config_dict: dict[str, Any], store_root: str, threads: int | None = None) -> str:
    """Train one run of a store into ``runs/<id>/``. Returns ``"trained"``, ``"finished"``
    (it was finished before, by another sweep on the store) or ``"busy"`` (another process
    is training it).

    A plain function of plain arguments, so it can run in this process, in a
    worker process, or as a task on a cluster engine (see docs/experiments.md). The run
    is claimed first (:meth:`Store.claim`); an unfinished folder from an earlier attempt
    is then resumed (``--resume``: it continues after its last saved step) when it holds
    this run's config, else deleted; a finished run is left as it is.
    """
    config = TrainConfig.from_dict(config_dict, "run")
    if threads:
        config.run.threads = threads
    rid = run_id(config)
    store = Store(Path(store_root))
    with store.claim(rid) as mine:
        if not mine:
            return "busy"
        folder = store.run_dir(rid)
        if store.is_finished(rid):
            return "finished"
        if _resumable(folder, rid):
            config = TrainConfig(resume=str(folder))
        else:
            if folder.exists():
                shutil.rmtree(folder)
            config.run.output_dir = str(folder)
        with quieted("infomtl.training", logging.ERROR):  # the sweep reports each run in one line
            train(config)
    return "trained"


def collapse_warnings(store: Store, rid: str) -> list[str]:
    """The collapse messages of a finished run's final model (its ``results.json``): the sweep
    process logs them as each run ends, whichever process or Ray worker trained it."""
    try:
        results = read_json(store.run_dir(rid) / "results.json")
    except (InfomtlError, OSError):
        return []
    return [str(m) for m in results.get("collapse", [])]


def _resumable(folder: Path, rid: str) -> bool:
    """Whether ``folder`` is an unfinished run folder of run ``rid`` (same id from its config)."""
    try:
        return run_id(resume_config(folder)) == rid
    except InfomtlError:
        return False


#: The options a run's cached features depend on (besides the backbone's own files).
FEATURE_OPTIONS = ("backbone", "pooling", "max_length", "benchmark", "tasks", "task_dirs", "hf_tasks",
                   "benchmark_args", "data_dir", "feature_cache", "mixed_precision", "cpu")


def prepare_features(configs: list[TrainConfig]) -> int:
    """Compute the cached features of every fast-mode config's whole splits, once per
    distinct data setup, in this process (all cores) — before a sweep starts workers that
    would otherwise wait on each other's extraction. Returns the number of setups."""
    setups: dict[tuple, TrainConfig] = {}
    for config in configs:
        spec = resolve_method(config.method.name, config.method.weighting, config.method.args)
        if uses_features(config, OBJECTIVES[spec.objective].token_states):
            key = tuple(repr(config.get(name)) for name in FEATURE_OPTIONS)
            setups.setdefault(key, config)
    for config in setups.values():
        data = load_data(config)
        backbone = load_backbone(config.model.backbone, config.model.pooling, config.model.max_length)
        device = "cuda" if torch.cuda.is_available() and not config.run.cpu else "cpu"
        cache = FeatureCache(backbone, config.model.feature_cache, device, progress=show_progress(config.run.progress),
                             dtype=AUTOCAST[config.run.mixed_precision], stop=signals.requested)
        parts = [part for task in data.tasks for part in data.splits[task.name].values()]
        missing = [part for part in parts if not cache.cached(part)]
        if missing:
            log.info("features: %s (%s, max length %d) for %d split(s) of %d task(s) -> %s",
                     config.model.backbone, config.model.pooling, config.model.max_length, len(missing),
                     len(data.tasks),
                     cache.root)
        for part in missing:
            cache.features(part)
    return len(setups)


@dataclass
class SweepSummary:
    total: int
    skipped: int
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)  # trained (or being trained) by another sweep


def sweep_command(sweep_path: str | Path, store_root: str | Path, workers: int = 1, ray: bool = False,
                  only: list[str] | None = None, order: str = "rows") -> str:
    """The command line that runs (or resumes) a sweep."""
    extra = " --engine ray" if ray else (f" --workers {workers}" if workers > 1 else "")
    extra += "".join(f" --only {shlex.quote(label)}" for label in only or [])
    extra += f" --order {order}" if order != "rows" else ""
    return f"infomtl sweep {shlex.quote(str(sweep_path))} --store {shlex.quote(str(store_root))}{extra}"


def run_sweep(
    sweep_path: str | Path,
    store_root: str | Path,
    workers: int = 1,
    ray: RayOptions | None = None,
    only: list[str] | None = None,
    order: str = "rows",
) -> SweepSummary:
    """Run every unfinished run of a sweep file into a store (see the module docstring);
    with ``ray``, as tasks of a Ray cluster instead of local processes; ``only`` and ``order``
    as :func:`~infomtl.experiments.plan.select_runs` (the store's plan keeps every run).

    Raises :class:`~infomtl.fileio.WriteError` when a write fails and
    :class:`~infomtl.errors.Interrupted` on SIGINT / SIGTERM, each with the command that resumes.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    command = sweep_command(sweep_path, store_root, workers, ray is not None, only, order)
    try:
        with signals.graceful_stop():
            return _run_sweep(sweep_path, Store(Path(store_root)), workers, ray, only, order)
    except WriteError as exc:
        raise exc.with_hint(f"once fixed, resume the sweep with: {command}") from None
    except Interrupted as exc:
        raise Interrupted(exc.signal_name, exc.saved, command, exc.exit_status) from None


def _run_sweep(sweep_path: str | Path, store: Store, workers: int, ray: RayOptions | None,
               only: list[str] | None = None, order: str = "rows") -> SweepSummary:
    planned = load_sweep(sweep_path)
    runs = select_runs(planned, only, order)
    with writing(store.root / "sweep.yaml"):
        (store.root / "runs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep_path, store.root / "sweep.yaml.tmp")
        os.replace(store.root / "sweep.yaml.tmp", store.root / "sweep.yaml")
    store.add_to_plan(planned)
    adopted = store.adopt_legacy(planned)
    if adopted:
        log.info("store %s: %d finished run(s) renamed from the first id scheme to stable ids", store.root, adopted)
    indexed = {e["id"] for e in store.read_index()}
    todo: list[PlannedRun] = []
    for run in runs:
        if store.is_finished(run.run_id):
            if run.run_id not in indexed:  # killed between results.json and the index line
                store.append_index({**run.meta(), "status": "finished"})
        else:
            todo.append(run)
    summary = SweepSummary(total=len(runs), skipped=len(runs) - len(todo))
    how = "Ray" if ray is not None else f"{workers} worker{'s' if workers > 1 else ''}"
    log.info("sweep %s: %d runs, %d finished, %d to run (%s) -> %s",
             sweep_path, len(runs), summary.skipped, len(todo), how, store.root)
    by_id = {run.run_id: run for run in todo}
    prepare_features([run.config for run in todo])  # fast-mode features, once, all cores

    def done(rid: str, error: str | None, outcome: str = "trained") -> None:
        run = by_id[rid]
        if outcome != "trained":
            summary.busy.append(rid)
            how = "being trained" if outcome == "busy" else "finished"
            log.info("%s %s [%s] seed %d: %s by another sweep on this store", rid, run.label, run.point_name,
                     run.config.run.seed, how)
        elif error is None:
            store.append_index({**run.meta(), "status": "finished"})
            summary.finished.append(rid)
            log.info("[%d/%d] %s %s [%s] seed %d: done", len(summary.finished) + len(summary.failed),
                     len(todo), rid, run.label, run.point_name, run.config.run.seed)
            for message in collapse_warnings(store, rid):  # the final model's, not every epoch's
                log.warning("warning: run %s: %s", rid, message)
        else:
            summary.failed[rid] = error
            log.warning("[%d/%d] %s %s [%s] seed %d: FAILED: %s",
                        len(summary.finished) + len(summary.failed), len(todo), rid, run.label,
                        run.point_name, run.config.run.seed, error)

    if ray is not None:
        if todo:
            ray_runs(run_one, todo, str(store.root), ray, done)
    elif workers == 1:
        for run in todo:
            _stop_if_asked(store, summary)
            try:
                got = run_one(run.config.to_dict(), str(store.root))
            except WriteError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
                done(run.run_id, f"{type(exc).__name__}: {exc}")
            else:
                done(run.run_id, None, got)
    elif todo:
        _run_in_workers(todo, store, workers, done)
    _stop_if_asked(store, summary)
    return summary


def _stop_if_asked(store: Store, summary: SweepSummary) -> None:
    """Between runs: raise :class:`Interrupted` if a signal asked the sweep to stop."""
    signum = signals.requested()
    if signum is not None:
        raise Interrupted(signals.signal_name(signum), f"{store.root}: {len(summary.finished)} run(s) trained and "
                          "indexed, no run in progress", "", 128 + signum)


def _run_in_workers(todo: list[PlannedRun], store: Store, workers: int,
                    done: Callable[..., None]) -> None:
    """Train ``todo`` in ``workers`` local processes. The workers ignore SIGINT / SIGTERM and
    stop, at a step boundary, when this process sets their stop event on such a signal or
    when one of them failed to write."""
    threads = max(1, available_cpus() // workers)
    context = get_context("spawn")
    stop = context.Event()
    failure: WriteError | None = None
    saved: list[str] = []  # what each interrupted run kept
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=signals.follow,
                             initargs=(stop,)) as pool:
        futures = {pool.submit(run_one, run.config.to_dict(), str(store.root), threads): run.run_id
                   for run in todo}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.cancelled():
                    continue
                exc = future.exception()
                if exc is None:
                    done(futures[future], None, future.result())
                elif isinstance(exc, Interrupted):
                    saved.append(exc.saved)
                elif isinstance(exc, WriteError):
                    failure = failure or exc
                else:
                    done(futures[future], f"{type(exc).__name__}: {exc}")
            if (failure is not None or signals.requested() is not None) and not stop.is_set():
                stop.set()  # runs in progress save and stop; runs not started are dropped
                for future in pending:
                    future.cancel()
    if failure is not None:
        raise failure
    signum = signals.requested()
    if signum is not None and saved:
        raise Interrupted(signals.signal_name(signum), "; ".join(saved), "", 128 + signum)


def describe_runs(runs: list[PlannedRun], store_root: str | Path) -> str:
    """One line per run of a sweep: id, finished or not, label, grid point, seed, ratio, setting."""
    store = Store(Path(store_root))
    lines = []
    for run in runs:
        c = run.config
        state = "finished" if store.is_finished(run.run_id) else "to run"
        tasks = f"  tasks={'+'.join(run.task_set)}" if run.task_set else ""
        lines.append(f"{run.run_id}  {state:8}  {run.label}  [{run.point_name}]  seed={c.run.seed}  "
                     f"ratio={c.data.train_ratio}  {c.data.benchmark}/{c.model.backbone}{tasks}")
    todo = sum(not store.is_finished(r.run_id) for r in runs)
    lines.append(f"{len(runs)} runs, {len(runs) - todo} finished, {todo} to run")
    return "\n".join(lines)
