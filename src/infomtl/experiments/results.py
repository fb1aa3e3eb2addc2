"""A results store read for reporting: each finished run's scores, grouped into cells
(one method label in one setting) with the papers' selection of a grid point, and the
ablation variants and the EW baseline among them.

Used by :mod:`infomtl.experiments.report` and :mod:`infomtl.experiments.report_analyses`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from infomtl.config import flat_options
from infomtl.errors import ConfigError, InfomtlError
from infomtl.experiments.store import Store, point_name
from infomtl.methods import objective_of
from infomtl.tasks import Task

BASELINE_METHODS = ("ew", "equal")

Setting = tuple[str, str, float]


@dataclass
class Run:
    """A finished run of the store."""

    id: str
    seed: int
    results: dict[str, Any]
    tasks: list[Task]

    @property
    def val_avg(self) -> float:
        return float(self.results["val"]["avg"])

    @property
    def test_avg(self) -> float:
        return float(self.results["test"]["avg"])

    def test_score(self, task: str) -> float:
        """The task's test score (mean over its official metrics); NaN if the run has no such task."""
        return float(self.results["test"].get("scores", {}).get(task, math.nan))


@dataclass
class Cell:
    """One (setting, label): the selected grid point and its runs."""

    label: str
    point: str
    points: int  # grid points of the label
    expected_seeds: list[int]
    runs: list[Run]  # finished runs of the selected point, by seed
    complete: bool
    val_avg: float = math.nan
    method: str = ""
    weighting: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)  # of the selected point, grid values included
    ablation: tuple[str, ...] = ()  # ``method_args`` keys of the components switched off

    @property
    def seeds(self) -> str:
        return f"{len(self.runs)}/{len(self.expected_seeds)}"

    def test_avgs(self) -> list[float]:
        return [r.test_avg for r in self.runs]

    def test_scores(self, task: str) -> list[float]:
        """The task's test score per seed (``task="Avg"``: the test Avg)."""
        return self.test_avgs() if task == "Avg" else [r.test_score(task) for r in self.runs]

    def mean_scores(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Per task and metric, the mean over seeds."""
        first = self.runs[0].results[split]["tasks"]
        return {
            task: {m: float(np.mean([r.results[split]["tasks"][task][m] for r in self.runs])) for m in metrics}
            for task, metrics in first.items()
        }


@dataclass
class StoreData:
    """A store's plan and its selected cells."""

    root: Path
    plan: dict[str, dict[str, Any]]
    #: runs on all tasks: setting -> label -> cell (comparison methods and ablation variants)
    cells: dict[Setting, dict[str, Cell]]
    #: runs on a subset of the tasks: setting -> label -> task set -> cell
    subsets: dict[Setting, dict[str, dict[tuple[str, ...], Cell]]]

    def comparison(self) -> dict[Setting, dict[str, Cell]]:
        """:attr:`cells` without the ablation variants (settings left empty are dropped)."""
        out = {s: {lbl: c for lbl, c in labels.items() if not c.ablation} for s, labels in self.cells.items()}
        return {s: labels for s, labels in out.items() if labels}


# --------------------------------------------------------------------------- #
# Loading and selection
# --------------------------------------------------------------------------- #


def _tasks_of(run_dir: Path) -> list[Task]:
    for name in ("run.json", "baseline.json"):  # a trained run, or a zero-shot baseline's run
        meta = run_dir / name
        if meta.is_file():
            return [Task.from_dict(t) for t in json.loads(meta.read_text(encoding="utf-8"))["tasks"]]
    tasks: list[Task] = []  # an STL run: one sub-run per task
    for sub in sorted(p for p in run_dir.iterdir() if (p / "run.json").is_file()):
        tasks.extend(Task.from_dict(t) for t in json.loads((sub / "run.json").read_text(encoding="utf-8"))["tasks"])
    return tasks


def _config_method_args(run_dir: Path) -> dict[str, Any]:
    """``method_args`` of a run's ``config.yaml`` (stores planned before the plan recorded them)."""
    path = run_dir / "config.yaml"
    try:
        data = flat_options(yaml.safe_load(path.read_text(encoding="utf-8"))) if path.is_file() else None
    except (OSError, yaml.YAMLError, ConfigError, AttributeError):  # AttributeError: not a mapping
        return {}
    args = data.get("method_args") if isinstance(data, dict) else None
    return dict(args) if isinstance(args, dict) else {}


def setting_of(meta: dict[str, Any]) -> Setting:
    return (meta["benchmark"], meta["backbone"], float(meta["train_ratio"]))


def load_store(store_root: str | Path, seeds: Sequence[int] | None = None) -> StoreData:
    """Read a store's plan and finished runs; select a grid point per setting, label (and task set).

    ``seeds``: only the planned runs of these seeds count (the others as if not planned), so a
    sweep stopped part-way with ``--order seeds`` is reported over the seeds every row has.

    A run planned with no backbone (``"backbone": null``: a zero-shot LLM baseline, see
    :mod:`infomtl.experiments.baseline_store`) needs no encoder and no training data, so it
    is a row of every setting of its benchmark (each backbone and training ratio), or of
    its own setting ``(benchmark, "zero-shot", 1.0)`` when the store has no other run there.
    """
    store = Store(Path(store_root))
    plan = store.read_plan()
    if not plan:
        raise InfomtlError(f"{store.root}: not a results store (no plan.json; run `infomtl sweep` into it)")
    Points = dict[str, list[tuple[dict, Run | None]]]
    grouped: dict[Setting, dict[str, Points]] = {}
    subsets: dict[Setting, dict[str, dict[tuple[str, ...], Points]]] = {}
    backbone_free: list[tuple[dict, Run | None]] = []
    for rid, meta in plan.items():
        if seeds is not None and int(meta["seed"]) not in seeds:
            continue
        run = None
        meta = dict(meta)
        if store.is_finished(rid):
            folder = store.run_dir(rid)
            results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            run = Run(rid, int(meta["seed"]), results, _tasks_of(folder))
            if meta.get("method_args") is None:
                meta["method_args"] = _config_method_args(folder)
        task_set = meta.get("task_set")
        if meta.get("backbone") is None and not task_set:
            backbone_free.append((meta, run))
            continue
        if task_set:
            by_set = subsets.setdefault(setting_of(meta), {}).setdefault(meta["label"], {})
            points = by_set.setdefault(tuple(task_set), {})
        else:
            points = grouped.setdefault(setting_of(meta), {}).setdefault(meta["label"], {})
        points.setdefault(point_name(meta["point"]), []).append((meta, run))
    for meta, run in backbone_free:
        settings = [s for s in grouped if s[0] == meta["benchmark"]] or [(meta["benchmark"], "zero-shot", 1.0)]
        for setting in settings:
            points = grouped.setdefault(setting, {}).setdefault(meta["label"], {})
            points.setdefault(point_name(meta["point"]), []).append((meta, run))
    return StoreData(
        store.root,
        plan,
        {s: {lbl: select(lbl, pts) for lbl, pts in labels.items()} for s, labels in grouped.items()},
        {s: {lbl: {ts: select(lbl, pts) for ts, pts in sets.items()} for lbl, sets in labels.items()}
         for s, labels in subsets.items()},
    )


def load_cells(store_root: str | Path, seeds: Sequence[int] | None = None) -> dict[Setting, dict[str, Cell]]:
    """Setting (benchmark, backbone, ratio) -> label -> selected :class:`Cell` of the runs on all
    tasks (ablation variants included), in the sweep's order (``seeds``: as :func:`load_store`)."""
    return load_store(store_root, seeds).cells


def select(label: str, points: dict[str, list[tuple[dict, Run | None]]]) -> Cell:
    """The grid point with the highest mean validation Avg among the complete ones."""
    cells = []
    for name, members in sorted(points.items()):
        expected = sorted(int(meta["seed"]) for meta, _ in members)
        runs = sorted((r for _, r in members if r is not None), key=lambda r: r.seed)
        complete = len(runs) == len(expected)
        val = float(np.mean([r.val_avg for r in runs])) if runs else math.nan
        first = members[0][0]
        method, args = str(first.get("method", "")), dict(first.get("method_args") or {})
        cells.append(Cell(label, name, len(points), expected, runs, complete, val, method,
                          first.get("weighting"), args, ablated(method, args)))
    finished = [c for c in cells if c.complete]
    if finished:
        return max(finished, key=lambda c: c.val_avg)  # max keeps the first of equals
    return max(cells, key=lambda c: len(c.runs))  # shown as missing, with how many seeds finished


def method_family(method: str) -> str:
    """``"VIP-MTL"``, ``"vip_mtl"``, ``"vipmtl"`` -> ``"vipmtl"``."""
    return method.strip().lower().replace("-", "").replace("_", "")


def _is_off(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "off"))


def ablations_of(method: str) -> dict[str, str]:
    """The components ``method`` declares it can switch off (:attr:`Objective.ablations`):
    ``method_args`` key -> the papers' name, ``{"simax": "SIMax", "timin": "TIMin"}``."""
    cls = objective_of(method)
    return {a.key: a.name for a in cls.ablations} if cls is not None else {}


def ablated(method: str, method_args: dict[str, Any]) -> tuple[str, ...]:
    """The components of ``method`` that ``method_args`` switches off."""
    return tuple(k for k in ablations_of(method) if _is_off(method_args.get(k)))


def variant_name(cell: Cell) -> str:
    """``"full"`` or ``"w/o SIMax"``, ``"w/o SIMax & TIMin"``..."""
    names = ablations_of(cell.method)
    return "w/o " + " & ".join(names[k] for k in cell.ablation) if cell.ablation else "full"


def find_baseline(store_root: str | Path, baseline: str | None = None) -> str | None:
    """The EW label: ``baseline`` if given, else the first label of a plain ``ew`` run."""
    plan = Store(Path(store_root)).read_plan()
    labels = list(dict.fromkeys(m["label"] for m in plan.values()))
    if baseline is not None:
        if baseline not in labels:
            raise InfomtlError(f"--baseline {baseline!r} is not a label of the store ({', '.join(labels)})")
        return baseline
    for meta in plan.values():
        if meta.get("method") in BASELINE_METHODS and not meta.get("weighting") and not meta.get("point"):
            return meta["label"]
    return None
