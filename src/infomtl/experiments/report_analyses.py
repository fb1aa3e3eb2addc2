"""The analyses found in a results store, as report tables and figure links.

``infomtl analyze robustness|representations|curves|information RUN...`` writes
``NAME.json`` (and PNGs) into ``FIRST_RUN/analysis/`` by default; for runs of a
store that is ``STORE/runs/<id>/analysis/``. ``infomtl report STORE`` reads every
``STORE/runs/*/analysis/*.json`` and ``STORE/analysis/*.json``, maps each result to
its run by the run folder it names, and groups runs by setting, method label and
grid point (a row per group, mean ± std over the seeds analysed; a grid point
other than the label's selected one is shown as ``label [point]``). Where a run
was analysed more than once, the newest file wins.

Tables:

* ``robustness``: per method and perturbation (random, FGM), the test Avg at each
  strength ε, and ``Δ vs EW`` = the mean over ε > 0 of (Avg − EW's Avg), in points;
* ``representations`` (InfoMTL Table 5 layout): uniformity of h (lower = more
  uniform), ARI and silhouette of k-means on each classification task's outputs,
  and their means;
* ``information``: Î(X;Z) and the mean over tasks of Î(Z;Z_t) at each run's
  selected epoch.

Training curves have no table; their PNGs, like every analysis PNG, are linked
from ``report.md``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infomtl.experiments.results import StoreData, setting_of
from infomtl.experiments.store import point_name
from infomtl.tables import Table, mean_std

log = logging.getLogger(__name__)

ANALYSES = ("robustness", "representations", "curves", "information")


@dataclass
class Analysed:
    """One run's result in one analysis file."""

    run_id: str
    meta: dict[str, Any]
    result: dict[str, Any]
    source: Path


@dataclass
class Group:
    """The analysed runs of one (setting, task set, label, grid point), by seed."""

    setting: tuple[str, str, float]
    label: str
    name: str  # as shown: the label, ``label [point]`` or ``label (a+b)``
    selected: bool  # the label's selected grid point, on all tasks
    members: list[Analysed]


def _analysis_files(root: Path) -> list[Path]:
    files = [*root.glob("runs/*/analysis/*.json"), *root.glob("analysis/*.json")]
    return sorted((p for p in files if p.stem in ANALYSES), key=lambda p: (p.stat().st_mtime_ns, str(p)))


def find_analyses(data: StoreData) -> dict[str, dict[str, Analysed]]:
    """Analysis name -> run id -> its result (newest file wins); runs outside the store are ignored."""
    found: dict[str, dict[str, Analysed]] = {name: {} for name in ANALYSES}
    for path in _analysis_files(data.root):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("note: %s: not readable JSON; left out of the report", path)
            continue
        results = content.get("results") if path.stem == "robustness" and isinstance(content, dict) else content
        if not isinstance(results, dict):
            continue
        for result in results.values():
            if not isinstance(result, dict) or not result.get("run"):
                continue
            rid = Path(str(result["run"])).name
            if rid in data.plan:
                found[path.stem][rid] = Analysed(rid, data.plan[rid], result, path)
    return found


def groups(data: StoreData, analysed: dict[str, Analysed]) -> list[Group]:
    """Analysed runs grouped by setting, task set, label and grid point, in the plan's order."""
    grouped: dict[tuple, list[Analysed]] = {}
    for rid, meta in data.plan.items():
        if rid in analysed:
            key = (setting_of(meta), tuple(meta.get("task_set") or ()), meta["label"], point_name(meta["point"]))
            grouped.setdefault(key, []).append(analysed[rid])
    out = []
    for (setting, task_set, label, point), members in grouped.items():
        if task_set:
            cell = data.subsets.get(setting, {}).get(label, {}).get(task_set)
        else:
            cell = data.cells.get(setting, {}).get(label)
        name = label if cell is None or cell.points == 1 or cell.point == point else f"{label} [{point}]"
        if task_set:
            name += f" ({'+'.join(task_set)})"
        selected = not task_set and (cell is None or cell.point == point)
        members.sort(key=lambda a: int(a.meta["seed"]))
        out.append(Group(setting, label, name, selected, members))
    return out


def _lead(group: Group, many: bool) -> list[str]:
    s = group.setting
    return [s[0], s[1], f"{s[2]:g}"] if many else []


def _lead_headers(many: bool) -> list[str]:
    return ["benchmark", "backbone", "ratio"] if many else []


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #


def robustness_table(rows_of: list[Group], baseline: str | None) -> Table | None:
    if not rows_of:
        return None
    kinds = list(dict.fromkeys(k for g in rows_of for a in g.members for k in a.result.get("kinds", {})))
    strengths = sorted({float(e) for g in rows_of for a in g.members
                        for per in a.result.get("kinds", {}).values() for e in per})
    splits = sorted({str(a.result.get("split", "test")) for g in rows_of for a in g.members})
    many = len({g.setting for g in rows_of}) > 1
    bases = {g.setting: g for g in rows_of if g.label == baseline and g.selected}

    def avgs(group: Group, kind: str, eps: float) -> list[float]:
        out = []
        for a in group.members:
            per = {float(k): v for k, v in a.result.get("kinds", {}).get(kind, {}).items()}
            if eps in per:
                out.append(_number(per[eps].get("avg")))
        return out

    headers = [*_lead_headers(many), "method", "perturbation", "seeds", *[f"ε={e:g}" for e in strengths]]
    if baseline:
        headers.append(f"Δ vs {baseline}")
    rows = []
    for group in rows_of:
        for kind in kinds:
            row = [*_lead(group, many), group.name, kind, str(len(group.members))]
            row += [mean_std(avgs(group, kind, e)) for e in strengths]
            if baseline:
                base = bases.get(group.setting)
                if group is base:
                    row.append("0.00 (base)")
                elif base is None:
                    row.append("-")
                else:
                    diffs = [float(np.nanmean(avgs(group, kind, e)) - np.nanmean(avgs(base, kind, e)))
                             for e in strengths if e > 0 and avgs(group, kind, e) and avgs(base, kind, e)]
                    row.append(f"{np.mean(diffs):+.2f}" if diffs else "-")
            rows.append(row)
    notes = [
        f"{'/'.join(splits)} Avg under perturbations of the word embeddings (norm ε per example over its "
        "non-padding tokens; random Gaussian or FGM); mean ± std over the seeds analysed (ddof=1).",
        "from STORE/runs/*/analysis/robustness.json (`infomtl analyze robustness`).",
    ]
    if baseline:
        notes.append(f"Δ vs {baseline}: mean over ε > 0 of the seed-mean Avg minus {baseline}'s, in points.")
    return Table("robustness", "Robustness to embedding perturbations", headers, rows, notes)


def representations_table(rows_of: list[Group]) -> Table | None:
    if not rows_of:
        return None
    tasks = list(dict.fromkeys(t for g in rows_of for a in g.members for t in a.result.get("tasks", {})))
    many = len({g.setting for g in rows_of}) > 1
    headers = [*_lead_headers(many), "method", "seeds", "uniformity ↓"]
    for task in [*tasks, "mean"]:
        headers += [f"{task} ARI ↑", f"{task} Sil. ↑"]
    rows = []
    for group in rows_of:
        results = [a.result for a in group.members]
        row = [*_lead(group, many), group.name, str(len(results)),
               mean_std([_number(r.get("uniformity")) for r in results], 3)]
        for task in tasks:
            for key in ("ari", "silhouette"):
                row.append(mean_std([_number(r.get("tasks", {}).get(task, {}).get(key)) for r in results], 3))
        for key in ("ari", "silhouette"):
            row.append(mean_std([_number(r.get("mean", {}).get(key)) for r in results], 3))
        rows.append(row)
    splits = sorted({str(a.result.get("split", "test")) for g in rows_of for a in g.members})
    notes = [
        f"{'/'.join(splits)} split; uniformity of the normalised shared representation (lower = more uniform); "
        "ARI and silhouette of k-means (k = classes) on each classification task's outputs; mean ± std over "
        "the seeds analysed (ddof=1); '-': no value (regression and multi-label tasks).",
        "from STORE/runs/*/analysis/representations.json (`infomtl analyze representations`).",
    ]
    return Table("representations", "Representation quality", headers, rows, notes)


def information_table(rows_of: list[Group]) -> Table | None:
    if not rows_of:
        return None
    many = len({g.setting for g in rows_of}) > 1
    headers = [*_lead_headers(many), "method", "seeds", "selected epochs", "Î(X;Z)", "Î(Z;Z_t), mean over tasks"]
    rows = []
    for group in rows_of:
        epochs, ixz, izzt = [], [], []
        for a in group.members:
            r = a.result
            index = r["epochs"].index(r["selected_epoch"]) if r.get("selected_epoch") in r.get("epochs", []) else -1
            epochs.append(str(r["epochs"][index]) if r.get("epochs") else "-")
            ixz.append(_number(r["ixz"][index]) if r.get("ixz") else math.nan)
            izzt.append(_number(r["izzt_mean"][index]) if r.get("izzt_mean") else math.nan)
        rows.append([*_lead(group, many), group.name, str(len(group.members)), ", ".join(epochs),
                     mean_std(ixz, 3), mean_std(izzt, 3)])
    notes = [
        "information-plane estimates (validation set) at each run's selected epoch (the last epoch when "
        "none is marked); mean ± std over the seeds analysed (ddof=1).",
        "from STORE/runs/*/analysis/information.json (`infomtl analyze information`; runs trained with "
        "--track-information).",
    ]
    return Table("information", "Information plane at the selected epoch", headers, rows, notes)


def analysis_tables(data: StoreData, baseline: str | None) -> list[Table]:
    """The robustness, representations and information tables of the analyses found in the store."""
    found = find_analyses(data)
    tables = [
        robustness_table(groups(data, found["robustness"]), baseline),
        representations_table(groups(data, found["representations"])),
        information_table(groups(data, found["information"])),
    ]
    return [t for t in tables if t is not None]


def analysis_figures(data: StoreData) -> list[tuple[str, Path]]:
    """``(caption, path)`` of every analysis PNG in the store, in the plan's order of the run folders."""
    order = {rid: i for i, rid in enumerate(data.plan)}
    pngs = [*data.root.glob("runs/*/analysis/*.png"), *data.root.glob("analysis/*.png")]
    pngs.sort(key=lambda p: (order.get(p.parent.parent.name, len(order)), p.name))
    out = []
    for path in pngs:
        rid = path.parent.parent.name
        meta = data.plan.get(rid)
        where = f"runs/{rid}: {meta['label']}, seed {meta['seed']}, and the runs analysed with it" if meta else "store"
        out.append((f"{path.stem} ({where})", path))
    return out
