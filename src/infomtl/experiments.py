"""Sweeps: a grid of training runs written to a results store that survives a kill.

A sweep file (YAML) names the runs::

    base:                      # TrainConfig options shared by every run
      benchmark: synthetic
      backbone: tiny
    methods:                   # one entry per method (a row of the report)
      - method: ew
      - method: infomtl
        grid: {alpha: [0.01, 0.1], beta: [0.01]}   # method hyperparameters
      - method: infomtl
        label: infomtl w/o TIMin                     # an ablation: its own row
        method_args: {timin: false}
    seeds: [0, 1, 2]           # default
    train_ratios: [1.0]        # default
    benchmarks: [tweeteval]    # optional (default: base's)
    backbones: [roberta-base]  # optional (default: base's)
    task_sets: [pairs]         # optional: train on subsets of the tasks (see below)

``task_sets`` lists the task subsets every run is repeated on: a list of task
names (``[emotion, irony]``) or a comma-separated string, ``all`` (the base's
tasks, i.e. no subset), ``pairs`` (every pair of the benchmark's tasks, or of the
base's ``tasks`` when it names some) or ``singles`` (each task alone). Runs of a
subset carry ``task_set`` in the plan, and ``infomtl report`` tabulates them apart
(pairwise tables) from the runs on all tasks.

Besides ``method``, ``label``, ``grid``, a method entry may set ``seeds`` (its own
list, replacing the sweep's: main rows over 5 seeds, ablations over 3) and any
TrainConfig option (``weighting``, ``method_args``, ``lr`` ...); it overrides ``base``.

Every run is resolved to a :class:`TrainConfig` and validated (method and
hyperparameters included) before anything trains. Its id is the first 12 hex
digits of the SHA-256 of the resolved config's canonical JSON, leaving out
``output_dir`` and ``progress``: the same run always gets the same id. The store::

    STORE/sweep.yaml        copy of the last sweep file run into the store
    STORE/plan.json         every run ever planned into the store (id -> label, point, seed, ...)
    STORE/index.jsonl       one line per finished run (appended and fsynced by one writer)
    STORE/runs/<id>/        the run folder of `infomtl train` (results.json when finished)

A run is finished iff ``runs/<id>/results.json`` exists (written by rename, so
it is never partial). Running a sweep again skips finished runs, deletes and
restarts unfinished ones, and, for a changed sweep file, adds the new ids;
nothing finished is ever overwritten.

Engines: runs train one after another in this process (default), in ``workers``
local processes, or as tasks of a Ray cluster (``--engine ray``: one
:func:`run_one` task per run holding ``cpus_per_run`` CPUs and ``gpus_per_run``
GPUs; the store must be on a file system every node sees). Frozen-backbone runs'
features are extracted once, in this process, before any run starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig, load_yaml
from infomtl.errors import ConfigError, InfomtlError

SWEEP_KEYS = ("base", "methods", "seeds", "train_ratios", "benchmarks", "backbones", "task_sets")
ENTRY_KEYS = ("method", "label", "grid")
#: Options that do not change what a run computes, so they are left out of its id.
NOT_HASHED = ("output_dir", "progress", "track_information", "feature_cache", "compile")  # do not change results
DEFAULT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its id, where it sits in the grid, and its config."""

    run_id: str
    label: str
    point: dict[str, Any]
    config: TrainConfig
    task_set: tuple[str, ...] | None = None  # a subset of the tasks from ``task_sets`` (None: all)

    @property
    def point_name(self) -> str:
        return point_name(self.point)

    def meta(self) -> dict[str, Any]:
        """What the index and the plan record about the run."""
        c = self.config
        meta = {
            "id": self.run_id, "label": self.label, "point": self.point, "seed": c.seed,
            "train_ratio": c.train_ratio, "benchmark": c.benchmark, "backbone": c.backbone,
            "method": c.method, "weighting": c.weighting, "method_args": dict(c.method_args),
        }
        if self.task_set is not None:
            meta["task_set"] = list(self.task_set)
        return meta


def point_name(point: dict[str, Any]) -> str:
    """``{"alpha": 0.1, "beta": 0.01}`` -> ``"alpha=0.1,beta=0.01"`` (``"-"`` when empty)."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "-"


def run_id(config: TrainConfig) -> str:
    """Stable id of a run: SHA-256 of its canonical JSON config (minus :data:`NOT_HASHED`)."""
    data = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------- #
# Expansion
# --------------------------------------------------------------------------- #


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
    from infomtl.training import resolve_spec

    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (expected {', '.join(SWEEP_KEYS)})")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: base must be a mapping of TrainConfig options")
    entries = data.get("methods")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: methods must be a non-empty list of {{method: NAME, ...}}")
    seeds = _as_list(data.get("seeds", list(DEFAULT_SEEDS)), "seeds", source)
    ratios = _as_list(data.get("train_ratios", [base.get("train_ratio", 1.0)]), "train_ratios", source)
    benchmarks = _as_list(data.get("benchmarks", [base.get("benchmark", "tweeteval")]), "benchmarks", source)
    backbones = _as_list(data.get("backbones", [base.get("backbone", "roberta-base")]), "backbones", source)
    task_sets = {b: expand_task_sets(data.get("task_sets"), b, base, source) for b in benchmarks}
    settings = [(bench, backbone, ratio, task_set, seed)
                for bench, backbone, ratio in itertools.product(benchmarks, backbones, ratios)
                for task_set, seed in itertools.product(task_sets[bench], seeds)]

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
        options = {k: v for k, v in entry.items() if k not in ("label", "grid", "seeds")}
        entry_settings = settings
        if "seeds" in entry:  # this row's own seeds (e.g. 5 for the main rows, 3 for ablations)
            own = _as_list(entry["seeds"], "seeds", where)
            entry_settings = [(*s[:4], seed) for s in settings if s[4] == seeds[0] for seed in own]
        for values in itertools.product(*value_lists):
            point = dict(zip(names, values, strict=True))
            for benchmark, backbone, ratio, task_set, seed in entry_settings:
                merged = {**base, **options, "benchmark": benchmark, "backbone": backbone,
                          "train_ratio": ratio, "seed": seed}
                if task_set is not None:
                    merged["tasks"] = list(task_set)
                try:
                    config = TrainConfig.from_dict(merged, where)
                    config.method_args = {**config.method_args, **point}
                    config.output_dir = None
                    config.validate()
                    resolve_spec(config)
                except InfomtlError as exc:
                    message = str(exc)
                    raise ConfigError(message if message.startswith(where) else f"{where} ({label}): {message}") from None
                runs.append(PlannedRun(run_id(config), label, point, config, task_set))
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        if run.run_id in seen:
            tasks = f", tasks {'+'.join(run.task_set)}" if run.task_set else ""
            raise ConfigError(
                f"{source}: {run.label} [{run.point_name}] and {seen[run.run_id].label} "
                f"[{seen[run.run_id].point_name}] are the same run (seed {run.config.seed}{tasks})"
            )
        seen[run.run_id] = run
    return runs


TASK_SET_WORDS = ("all", "pairs", "singles")


def benchmark_task_names(benchmark: str) -> tuple[str, ...] | None:
    """The task names of a built-in benchmark, in table order (None for another name)."""
    from infomtl.data.affecteval import AFFECTEVAL_ORDER
    from infomtl.data.synthetic import SYNTHETIC_TASKS
    from infomtl.tasks import TWEETEVAL_ORDER

    known = {"tweeteval": TWEETEVAL_ORDER, "affecteval": AFFECTEVAL_ORDER,
             "synthetic": tuple(t.name for t in SYNTHETIC_TASKS)}
    return known.get(benchmark)


def expand_task_sets(
    spec: Any, benchmark: str, base: dict[str, Any], source: str = "sweep"
) -> list[tuple[str, ...] | None]:
    """The task subsets of a sweep's ``task_sets`` for one benchmark (``None`` = all tasks).

    Items: a list of task names or a comma-separated string, ``all``, ``pairs``
    (every pair, in table order) or ``singles``. ``pairs``/``singles`` range over the
    base's ``tasks`` when it names some, else over the benchmark's tasks. Task names
    of a built-in benchmark are checked here; repeated subsets are kept once.
    """
    from infomtl.data.types import choose_task_names

    if spec is None:
        return [None]
    where = f"{source}: task_sets"
    items = _as_list(spec, "task_sets", source)
    base_tasks = base.get("tasks")
    if isinstance(base_tasks, str):
        base_tasks = [t.strip() for t in base_tasks.split(",") if t.strip()]
    known = None if base.get("task_dirs") else benchmark_task_names(benchmark)
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
        if known is not None:
            try:
                choose_task_names(names, known, benchmark)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        elif len(set(names)) != len(names):
            raise ConfigError(f"{where}: task listed twice in {names}")
        out.append(tuple(names))
    return list(dict.fromkeys(out))


def _default_label(entry: dict[str, Any]) -> str:
    weighting = entry.get("weighting")
    return f"{entry['method']}+{weighting}" if weighting else str(entry["method"])


def load_sweep(path: str | Path) -> list[PlannedRun]:
    """Read and expand a sweep file (see the module docstring)."""
    return expand_sweep(load_yaml(path), str(path))


# --------------------------------------------------------------------------- #
# The store
# --------------------------------------------------------------------------- #


@dataclass
class Store:
    """A results store folder (see the module docstring for its layout)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def index_path(self) -> Path:
        return self.root / "index.jsonl"

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    def run_dir(self, rid: str) -> Path:
        return self.root / "runs" / rid

    def is_finished(self, rid: str) -> bool:
        return (self.run_dir(rid) / "results.json").is_file()

    def read_index(self) -> list[dict[str, Any]]:
        """Finished runs in the index, one per id (a torn last line is ignored)."""
        if not self.index_path.is_file():
            return []
        entries: dict[str, dict[str, Any]] = {}
        for line in self.index_path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "id" in entry:
                entries.setdefault(entry["id"], entry)
        return list(entries.values())

    def read_plan(self) -> dict[str, dict[str, Any]]:
        if not self.plan_path.is_file():
            return {}
        try:
            return json.loads(self.plan_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InfomtlError(f"{self.plan_path}: not valid JSON ({exc})") from None

    def add_to_plan(self, runs: Iterable[PlannedRun]) -> None:
        """Merge ``runs`` into ``plan.json`` (temp file + rename); never drops a planned run."""
        plan = self.read_plan()
        for run in runs:
            plan.setdefault(run.run_id, run.meta())
        _write_atomic(self.plan_path, json.dumps(plan, indent=1) + "\n")  # keeps the sweep's order

    def append_index(self, entry: dict[str, Any]) -> None:
        """Append one finished run to the index (one write of one line, then fsync)."""
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.index_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.fstat(fd).st_size:  # a torn last line (killed mid-write) gets its own line
                with open(self.index_path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_one(config_dict: dict[str, Any], store_root: str, threads: int | None = None) -> str:
    """Train one run of a store into ``runs/<id>/`` and return its id.

    A plain function of plain arguments, so it can run in this process, in a
    worker process, or as a task on a cluster engine (see the README). An
    unfinished folder from an earlier attempt is deleted first; a finished run
    is left as it is.
    """
    from infomtl.training import train

    if threads:
        import torch

        torch.set_num_threads(threads)
    config = TrainConfig.from_dict(config_dict, "run")
    rid = run_id(config)
    store = Store(Path(store_root))
    folder = store.run_dir(rid)
    if store.is_finished(rid):
        return rid
    if folder.exists():
        shutil.rmtree(folder)
    config.output_dir = str(folder)
    train(config, echo=lambda *_: None)
    return rid


# --------------------------------------------------------------------------- #
# Running a sweep
# --------------------------------------------------------------------------- #


@dataclass
class SweepSummary:
    total: int
    skipped: int
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RayOptions:
    """Where and how ``--engine ray`` runs each run: the cluster ``address`` (None: a local
    Ray instance, or the one ``RAY_ADDRESS`` names) and the resources one run holds."""

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0


def _ray_runs(todo: list[PlannedRun], store_root: str, options: RayOptions,
              done: Callable[[str, str | None], None]) -> None:
    """Train ``todo`` as Ray tasks (one :func:`run_one` each), reporting each as it ends.

    The store must be on a file system every Ray node sees; a task writes only its run
    folder, and this process (the driver) writes the index.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'infomtl[ray]'") from None
    ray.init(address=options.address, ignore_reinit_error=True, log_to_driver=False)
    threads = max(1, int(options.cpus_per_run))
    remote = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run)(run_one)
    pending = {remote.remote(run.config.to_dict(), store_root, threads): run.run_id for run in todo}
    while pending:
        finished, _ = ray.wait(list(pending), num_returns=1)
        for ref in finished:
            rid = pending.pop(ref)
            try:
                ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
                done(rid, f"{type(exc).__name__}: {exc}")
            else:
                done(rid, None)


def run_sweep(
    sweep_path: str | Path,
    store_root: str | Path,
    workers: int = 1,
    echo: Callable[[str], None] = print,
    ray: RayOptions | None = None,
) -> SweepSummary:
    """Run every unfinished run of a sweep file into a store (see the module docstring);
    with ``ray``, as tasks of a Ray cluster instead of local processes."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    runs = load_sweep(sweep_path)
    store = Store(Path(store_root))
    (store.root / "runs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sweep_path, store.root / "sweep.yaml.tmp")
    os.replace(store.root / "sweep.yaml.tmp", store.root / "sweep.yaml")
    store.add_to_plan(runs)
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
    echo(f"sweep {sweep_path}: {len(runs)} runs, {summary.skipped} finished, {len(todo)} to run "
         f"({how}) -> {store.root}")
    by_id = {run.run_id: run for run in todo}
    from infomtl import features

    features.prepare([run.config for run in todo], echo)  # fast-mode features, once, all cores

    def done(rid: str, error: str | None) -> None:
        run = by_id[rid]
        if error is None:
            store.append_index({**run.meta(), "status": "finished"})
            summary.finished.append(rid)
            echo(f"[{len(summary.finished) + len(summary.failed)}/{len(todo)}] {rid} {run.label} "
                 f"[{run.point_name}] seed {run.config.seed}: done")
        else:
            summary.failed[rid] = error
            echo(f"[{len(summary.finished) + len(summary.failed)}/{len(todo)}] {rid} {run.label} "
                 f"[{run.point_name}] seed {run.config.seed}: FAILED: {error}")

    if ray is not None:
        if todo:
            _ray_runs(todo, str(store.root), ray, done)
    elif workers == 1:
        for run in todo:
            try:
                run_one(run.config.to_dict(), str(store.root))
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the sweep
                done(run.run_id, f"{type(exc).__name__}: {exc}")
            else:
                done(run.run_id, None)
    elif todo:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(run_one, run.config.to_dict(), str(store.root), threads): run.run_id
                for run in todo
            }
            for future in as_completed(futures):
                exc = future.exception()
                done(futures[future], None if exc is None else f"{type(exc).__name__}: {exc}")
    return summary


def store_run_name(run_dir: str | Path) -> str | None:
    """A readable name for a run folder of a results store (``STORE/runs/<id>``), from the
    plan: ``"infomtl [alpha=0.1] seed 0"`` (grid point, task subset and ratio when set);
    ``None`` for any other folder."""
    folder = Path(run_dir).resolve()
    if folder.parent.name != "runs":
        return None
    try:
        meta = Store(folder.parent.parent).read_plan().get(folder.name)
    except InfomtlError:
        return None
    if not isinstance(meta, dict) or "label" not in meta:
        return None
    parts = [str(meta["label"])]
    if meta.get("point"):
        parts.append(f"[{point_name(meta['point'])}]")
    if meta.get("task_set"):
        parts.append("+".join(meta["task_set"]))
    if float(meta.get("train_ratio", 1.0)) != 1.0:
        parts.append(f"ratio {float(meta['train_ratio']):g}")
    parts.append(f"seed {meta.get('seed')}")
    return " ".join(parts)


def describe_runs(runs: list[PlannedRun], store_root: str | Path) -> str:
    """One line per run of a sweep: id, finished or not, label, grid point, seed, ratio, setting."""
    store = Store(Path(store_root))
    lines = []
    for run in runs:
        c = run.config
        state = "finished" if store.is_finished(run.run_id) else "to run"
        tasks = f"  tasks={'+'.join(run.task_set)}" if run.task_set else ""
        lines.append(f"{run.run_id}  {state:8}  {run.label}  [{run.point_name}]  seed={c.seed}  "
                     f"ratio={c.train_ratio}  {c.benchmark}/{c.backbone}{tasks}")
    todo = sum(not store.is_finished(r.run_id) for r in runs)
    lines.append(f"{len(runs)} runs, {len(runs) - todo} finished, {todo} to run")
    return "\n".join(lines)
