"""The results store of a sweep: a folder that survives a kill.

A run's id is the first 12 hex digits of the SHA-256 of its resolved config's
canonical JSON, leaving out the options that do not change its results
(:data:`NOT_HASHED`). The store::

    STORE/sweep.yaml        copy of the last sweep file run into the store
    STORE/plan.json         every run ever planned into the store (id -> label, point, seed, ...)
    STORE/index.jsonl       one line per finished run (appended and fsynced by one writer)
    STORE/runs/<id>/        the run folder of `infomtl train` (results.json when finished)

A run is finished iff ``runs/<id>/results.json`` exists (written by rename, so
it is never partial). Running a sweep again skips finished runs, deletes and
restarts unfinished ones, and, for a changed sweep file, adds the new ids;
nothing finished is ever overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.errors import InfomtlError

#: Options that do not change what a run computes, so they are left out of its id.
NOT_HASHED = ("output_dir", "progress", "track_information", "feature_cache", "compile")  # do not change results


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
    """Stable id of a run: SHA-256 of its canonical JSON config (minus :data:`NOT_HASHED`)
    and of its resolved method (every hyperparameter, defaults included), so that a run
    trained under an earlier default of a method is not taken for one under the new."""
    from infomtl.methods import resolve_method  # torch: kept out of `infomtl --help`
    from infomtl.methods.single_task import is_single_task

    data = {k: v for k, v in config.to_dict().items() if k not in NOT_HASHED}
    if not is_single_task(config.method):
        data["method_spec"] = resolve_method(config.method, config.weighting, config.method_args).to_dict()
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
