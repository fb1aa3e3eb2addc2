"""The results store of a sweep: a folder that survives a kill.

A run's id is the first 12 hex digits of the SHA-256 of the canonical JSON of what
sets it apart (:func:`run_id`): the options that differ from their defaults, the
method's hyperparameters that differ from theirs, and :data:`ID_SCHEMA`. Adding an
option therefore keeps every existing id; :data:`ID_SCHEMA` is bumped only when a
default's meaning changes. The store::

    STORE/sweep.yaml        copy of the last sweep file run into the store
    STORE/plan.json         every run ever planned into the store (id -> label, point, seed, ...)
    STORE/index.jsonl       one line per finished run (appended whole and fsynced, under the store lock)
    STORE/runs/<id>/        the run folder of `infomtl train` (results.json when finished)
    STORE/locks/<id>.lock   held by the process training the run (several sweeps may share a store)
    STORE/locks/store.lock  held while the plan or the index is written

A run is finished iff ``runs/<id>/results.json`` exists (written by rename, so
it is never partial). Running a sweep again skips finished runs, resumes
unfinished ones (from their ``last/``), and, for a changed sweep file, adds the new ids;
nothing finished is ever overwritten. Runs whose folder carries the id of the
first id scheme (every option hashed) are renamed to their current id when a sweep
plans them (:meth:`Store.adopt_legacy`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from infomtl.config import TrainConfig
from infomtl.errors import InfomtlError
from infomtl.fileio import append_line, write_text, writing

#: Options that do not change what a run computes, so they are left out of its id.
NOT_HASHED = ("output_dir", "progress", "threads", "track_information", "information_rows", "report_to",
              "feature_cache", "compile")

#: Version of the id scheme: bump it only when a default's meaning changes (every id changes then).
ID_SCHEMA = 2


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
            "id": self.run_id, "label": self.label, "point": self.point, "seed": c.run.seed,
            "train_ratio": c.data.train_ratio, "benchmark": c.data.benchmark, "backbone": c.model.backbone,
            "method": c.method.name, "weighting": c.method.weighting, "method_args": dict(c.method.args),
        }
        if self.task_set is not None:
            meta["task_set"] = list(self.task_set)
        return meta


def point_name(point: dict[str, Any]) -> str:
    """``{"alpha": 0.1, "beta": 0.01}`` -> ``"alpha=0.1,beta=0.01"`` (``"-"`` when empty)."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "-"


def run_id(config: TrainConfig) -> str:
    """Stable id of a run: SHA-256 of :data:`ID_SCHEMA` and of the options whose value
    differs from the default (minus :data:`NOT_HASHED`), with the method written as its
    canonical objective and weighting and only the hyperparameters that differ from the
    method's defaults (so ``--method-args simax=true`` is the same run as none), less those
    that only choose how the update is computed (``Hyper.unhashed``: PCGrad's ``grads``)."""
    from infomtl.methods import resolve_method  # torch: kept out of `infomtl --help`
    from infomtl.methods.single_task import is_single_task

    defaults = TrainConfig().to_dict()
    data: dict[str, Any] = {
        k: v for k, v in config.to_dict().items()
        if k not in NOT_HASHED and k not in ("method", "weighting", "method_args", "benchmark_args")
        and v != defaults[k]
    }
    reader_defaults = _reader_options(TrainConfig())
    data.update({k: v for k, v in _reader_options(config).items() if v != reader_defaults[k]})
    data["id_schema"] = ID_SCHEMA
    if is_single_task(config.method.name):
        data["method"] = config.method.name
        if config.method.args:
            data["method_args"] = dict(config.method.args)
    else:
        resolved = resolve_method(config.method.name, config.method.weighting, config.method.args)
        spec = resolved.to_dict()
        base = resolve_method(spec["objective"], spec["weighting"], {}).to_dict()
        data["method"] = spec["objective"]
        data["weighting"] = spec["weighting"]
        unhashed = {*type(resolved.objective_hp).unhashed, *type(resolved.weighting_hp).unhashed}
        changed = {k: v for part in ("objective_args", "weighting_args")
                   for k, v in spec[part].items() if base[part].get(k) != v and k not in unhashed}
        if changed:
            data["method_args"] = changed
    return digest(data)


def legacy_run_id(config: TrainConfig) -> str:
    """The run's id under the first scheme (every option and every resolved hyperparameter
    hashed, defaults included): equal to the id a store recorded only for a run trained
    with today's defaults, which is what makes adopting such a folder safe."""
    from infomtl.methods import resolve_method
    from infomtl.methods.single_task import is_single_task

    data = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED and k != "benchmark_args"}
    data.update({k: v for k, v in _reader_options(config).items() if k in TrainConfig.SHORTHANDS})
    if not is_single_task(config.method.name):
        data["method_spec"] = resolve_method(config.method.name, config.method.weighting, config.method.args).to_dict()
    return digest(data)


def _reader_options(config: TrainConfig) -> dict[str, Any]:
    """Every benchmark reader option of the run, given or default, under the name of its
    shorthand where it has one (``tweeteval_source``, ``goemotions_multilabel``,
    ``ei_reg_pair``: options of their own before ``--benchmark-args``, hashed so then)."""
    from infomtl.data.loading import reader_values  # kept out of `infomtl --help`

    names = {entry: name for name, (entry, *_) in TrainConfig.SHORTHANDS.items()}
    return {names.get(k, k): v for k, v in sorted(reader_values(config.data.benchmark_args).items())}


def digest(data: dict[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of ``data``'s canonical JSON (a run id)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


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

    def lock_path(self, name: str) -> Path:
        folder = self.root / "locks"
        with writing(folder):
            folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.lock"

    @contextmanager
    def locked(self, timeout: float = 120.0) -> Iterator[None]:
        """Hold the store's lock (the plan and the index are read-modify-written under it)."""
        try:
            with FileLock(self.lock_path("store"), timeout=timeout):
                yield
        except Timeout:
            raise InfomtlError(f"{self.root}: the store is locked by another process for over "
                               f"{timeout:g} s ({self.lock_path('store')})") from None

    @contextmanager
    def claim(self, rid: str) -> Iterator[bool]:
        """Try to take run ``rid`` for this process: yields True while held, False when another
        process holds it. The lock is an OS file lock, so a killed holder releases it (no stale
        lock to clean up)."""
        lock = FileLock(self.lock_path(rid), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

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
        self.add_plan_entries({run.run_id: run.meta() for run in runs})

    def add_plan_entries(self, entries: dict[str, dict[str, Any]]) -> None:
        """Merge ``{id: meta}`` into ``plan.json`` (temp file + rename), keeping what is planned already."""
        with self.locked():
            plan = self.read_plan()
            for rid, meta in entries.items():
                plan.setdefault(rid, meta)
            write_text(self.plan_path, json.dumps(plan, indent=1) + "\n")  # keeps the sweep's order

    def append_index(self, entry: dict[str, Any]) -> bool:
        """Append one finished run to the index (one write of one line, then fsync) unless it is
        there already (another sweep on the store indexed it); returns whether it was added."""
        with self.locked():
            if any(e["id"] == entry["id"] for e in self.read_index()):
                return False
            self._append_line(entry)
            return True

    def adopt_legacy(self, runs: Iterable[PlannedRun]) -> int:
        """Rename finished run folders recorded under the first id scheme
        (:func:`legacy_run_id`) to their current id, in the folder, the index and the plan, so
        a store made before stable ids is not trained again. Returns how many were renamed."""
        renamed: dict[str, str] = {}
        with self.locked():
            for run in runs:
                if self.is_finished(run.run_id):
                    continue
                old = legacy_run_id(run.config)
                if old != run.run_id and self.is_finished(old) and not self.run_dir(run.run_id).exists():
                    os.replace(self.run_dir(old), self.run_dir(run.run_id))
                    renamed[old] = run.run_id
            if renamed:
                if self.index_path.is_file():
                    entries = [{**e, "id": renamed.get(e["id"], e["id"])} for e in self.read_index()]
                    write_text(self.index_path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
                plan = self.read_plan()
                plan = {renamed.get(k, k): {**v, "id": renamed.get(k, k)} for k, v in plan.items()}
                write_text(self.plan_path, json.dumps(plan, indent=1) + "\n")
        return len(renamed)

    def _append_line(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        if self.index_path.is_file() and self.index_path.stat().st_size:
            with open(self.index_path, "rb") as fh:  # a torn last line (killed mid-write) gets its own line
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line
        append_line(self.index_path, line)


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
