"""The papers' tables from a results store (:mod:`infomtl.experiments`), as Markdown, CSV and LaTeX.

For every setting (benchmark, backbone, training ratio) and method label:

* **Selection** (as the papers): among the label's grid points whose planned
  seeds have all finished, the one with the highest mean *validation* Avg over
  seeds; ties go to the first point name in sort order. Test numbers are that
  point's. A label with no complete point shows ``missing (k/n seeds)`` instead
  of numbers averaged over fewer seeds.
* **mean ± std** over seeds; std is the sample standard deviation (ddof = 1).
* **Δp** vs the EW baseline: :func:`infomtl.metrics.delta_p` of the method's
  per-metric test scores averaged over seeds against EW's, per METHODS.md.
* **†** marks a test Avg whose two-sided t-test over seeds against EW's test
  Avgs (:func:`infomtl.metrics.significance`, paired by seed where both have the
  same seeds, else Welch) gives p < 0.05.

Tables: ``overall`` (largest training ratio of each benchmark/backbone),
``fine_grained`` (each task's official metrics), and ``ratios`` when the store
holds more than one training ratio. These compare methods, so they leave out:

* **ablation variants** (InfoMTL with ``simax``/``timin`` false, VIP-MTL with
  ``variance_norm`` false in ``method_args``): they get the ``ablation`` table
  (InfoMTL Table 4 layout: the full method, each "w/o X" row, and EW as "every
  component removed"; per-task scores, Avg, Δ Avg vs the full method);
* **runs on a subset of the tasks** (the sweep's ``task_sets``): they get the
  ``pairs`` table (per task set, each task's score and the set's Avg per method,
  and Δ vs EW: VIP-MTL's pairwise layout) and one ``pair_matrix-LABEL`` per method
  (task × partner, the task alone on the diagonal, its best partner, and its
  score trained with all tasks).

Analyses found in the store's run folders (``infomtl analyze ... --out`` default,
``RUN/analysis/*.json``) become the ``robustness``, ``representations`` and
``information`` tables (see :mod:`infomtl.report_analyses`), and their PNGs are
embedded in ``report.md``. Plots (PNG, needs matplotlib): Δp per method, test Avg
vs training ratio.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from infomtl.errors import InfomtlError
from infomtl.experiments import Store, point_name
from infomtl.metrics import delta_p, significance
from infomtl.tables import MARK, Table, latex_escape, mean_std, to_csv, to_latex, to_markdown
from infomtl.tasks import Task

__all__ = [
    "MARK", "Cell", "Run", "StoreData", "Table", "build_tables", "latex_escape", "load_cells", "load_store",
    "mean_std", "to_csv", "to_latex", "to_markdown", "write_report",
]

SIGNIFICANCE_LEVEL = 0.05
BASELINE_METHODS = ("ew", "equal")
#: Components an ablation can switch off, per method: ``method_args`` key -> the papers' name.
ABLATIONS: dict[str, dict[str, str]] = {
    "infomtl": {"simax": "SIMax", "timin": "TIMin"},
    "vipmtl": {"variance_norm": "VI"},
}
#: The row shown for "every component removed", which is EW (METHODS.md) ...
ALL_REMOVED: dict[str, str] = {"infomtl": "w/o SIMax & TIMin (= EW)", "vipmtl": "w/o VIP (= EW)"}
#: ... unless the store holds the variant that switches these off (the same model as EW).
SAME_AS_EW: dict[str, frozenset[str]] = {"infomtl": frozenset({"simax", "timin"})}

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
    meta = run_dir / "run.json"
    if meta.is_file():
        return [Task.from_dict(t) for t in json.loads(meta.read_text(encoding="utf-8"))["tasks"]]
    tasks = []  # an STL run: one sub-run per task
    for sub in sorted(p for p in run_dir.iterdir() if (p / "run.json").is_file()):
        tasks.extend(Task.from_dict(t) for t in json.loads((sub / "run.json").read_text(encoding="utf-8"))["tasks"])
    return tasks


def _config_method_args(run_dir: Path) -> dict[str, Any]:
    """``method_args`` of a run's ``config.yaml`` (stores planned before the plan recorded them)."""
    path = run_dir / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    args = data.get("method_args") if isinstance(data, dict) else None
    return dict(args) if isinstance(args, dict) else {}


def setting_of(meta: dict[str, Any]) -> Setting:
    return (meta["benchmark"], meta["backbone"], float(meta["train_ratio"]))


def load_store(store_root: str | Path) -> StoreData:
    """Read a store's plan and finished runs; select a grid point per setting, label (and task set)."""
    store = Store(Path(store_root))
    plan = store.read_plan()
    if not plan:
        raise InfomtlError(f"{store.root}: not a results store (no plan.json; run `infomtl sweep` into it)")
    Points = dict[str, list[tuple[dict, Run | None]]]
    grouped: dict[Setting, dict[str, Points]] = {}
    subsets: dict[Setting, dict[str, dict[tuple[str, ...], Points]]] = {}
    for rid, meta in plan.items():
        run = None
        meta = dict(meta)
        if store.is_finished(rid):
            folder = store.run_dir(rid)
            results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            run = Run(rid, int(meta["seed"]), results, _tasks_of(folder))
            if meta.get("method_args") is None:
                meta["method_args"] = _config_method_args(folder)
        task_set = meta.get("task_set")
        if task_set:
            by_set = subsets.setdefault(setting_of(meta), {}).setdefault(meta["label"], {})
            points = by_set.setdefault(tuple(task_set), {})
        else:
            points = grouped.setdefault(setting_of(meta), {}).setdefault(meta["label"], {})
        points.setdefault(point_name(meta["point"]), []).append((meta, run))
    return StoreData(
        store.root,
        plan,
        {s: {lbl: select(lbl, pts) for lbl, pts in labels.items()} for s, labels in grouped.items()},
        {s: {lbl: {ts: select(lbl, pts) for ts, pts in sets.items()} for lbl, sets in labels.items()}
         for s, labels in subsets.items()},
    )


def load_cells(store_root: str | Path) -> dict[Setting, dict[str, Cell]]:
    """Setting (benchmark, backbone, ratio) -> label -> selected :class:`Cell` of the runs on all
    tasks (ablation variants included), in the sweep's order."""
    return load_store(store_root).cells


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
    complete = [c for c in cells if c.complete]
    if complete:
        return max(complete, key=lambda c: c.val_avg)  # max keeps the first of equals
    return max(cells, key=lambda c: len(c.runs))  # shown as missing, with how many seeds finished


def _family(method: str) -> str:
    """``"VIP-MTL"``, ``"vip_mtl"``, ``"vipmtl"`` -> ``"vipmtl"``."""
    return method.strip().lower().replace("-", "").replace("_", "")


def _is_off(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "off"))


def ablated(method: str, method_args: dict[str, Any]) -> tuple[str, ...]:
    """The components of ``method`` that ``method_args`` switches off (see :data:`ABLATIONS`)."""
    return tuple(k for k in ABLATIONS.get(_family(method), {}) if _is_off(method_args.get(k)))


def variant_name(cell: Cell) -> str:
    """``"full"`` or ``"w/o SIMax"``, ``"w/o SIMax & TIMin"``..."""
    names = ABLATIONS.get(_family(cell.method), {})
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


# --------------------------------------------------------------------------- #
# Comparison tables
# --------------------------------------------------------------------------- #


def _missing(cell: Cell) -> str:
    return f"missing ({cell.seeds} seeds)"


def _selected(cell: Cell) -> str:
    return cell.point if cell.points == 1 else f"{cell.point} (best of {cell.points})"


def _p_value(cell: Cell, base: Cell, task: str = "Avg") -> float:
    """t-test over seeds of ``task``'s test scores (paired by seed when both have the same seeds)."""
    paired = [r.seed for r in cell.runs] == [r.seed for r in base.runs]
    return significance(cell.test_scores(task), base.test_scores(task), paired=paired)


def compare(cell: Cell, base: Cell | None) -> tuple[float, float]:
    """(Δp vs the baseline's mean scores, t-test p-value over seeds); NaN where undefined."""
    if base is None or not (cell.complete and base.complete) or cell is base:
        return math.nan, math.nan
    dp = delta_p(cell.runs[0].tasks, cell.mean_scores(), base.mean_scores())
    return dp, _p_value(cell, base)


def overall_table(cells: dict, baseline: str | None) -> Table:
    settings = _main_settings(cells)
    many = len(settings) > 1
    headers = (["benchmark", "backbone"] if many else []) + [
        "method", "selected", "seeds", "val Avg", "test Avg", "Δp vs EW", "p"]
    rows = []
    for setting in settings:
        base = cells[setting].get(baseline) if baseline else None
        for label, cell in cells[setting].items():
            lead = [setting[0], setting[1]] if many else []
            if not cell.complete:
                rows.append(lead + [label, _selected(cell), cell.seeds, _missing(cell), _missing(cell), "", ""])
                continue
            dp, p = compare(cell, base)
            mark = MARK if p < SIGNIFICANCE_LEVEL else ""
            dp_text = "0.00 (base)" if cell is base else ("n/a" if math.isnan(dp) else f"{dp:+.2f}")
            rows.append(lead + [label, _selected(cell), cell.seeds, f"{cell.val_avg:.2f}",
                                mean_std(cell.test_avgs()) + mark, dp_text,
                                "" if math.isnan(p) else f"{p:.3f}"])
    notes = [
        "selected: the grid point with the highest mean validation Avg over seeds; test columns are its runs.",
        "mean ± std over seeds (sample std, ddof=1); seeds: finished/planned.",
        f"Δp vs {baseline or 'EW (none in the store)'} from the seed-mean task metrics; "
        f"{MARK}: t-test over seeds vs {baseline or 'EW'} (paired by seed) p < {SIGNIFICANCE_LEVEL}.",
    ]
    return Table("overall", "Overall results (test)", headers, rows, notes)


def fine_grained_tables(cells: dict) -> list[Table]:
    settings = _main_settings(cells)
    tables = []
    for setting in settings:
        complete = [c for c in cells[setting].values() if c.complete]
        if not complete:
            continue
        tasks = complete[0].runs[0].tasks
        columns = [(t.name, m.name) for t in tasks for m in t.official_metrics]
        headers = ["method", "seeds"] + [f"{t} {m}" for t, m in columns] + ["Avg"]
        rows = []
        for label, cell in cells[setting].items():
            if not cell.complete:
                rows.append([label, cell.seeds] + [_missing(cell)] * (len(columns) + 1))
                continue
            values = [mean_std([r.results["test"]["tasks"][t][m] for r in cell.runs]) for t, m in columns]
            rows.append([label, cell.seeds, *values, mean_std(cell.test_avgs())])
        name = "fine_grained" if len(settings) == 1 else f"fine_grained-{setting[0]}-{_safe(setting[1])}"
        tables.append(Table(name, f"Per-task test metrics ({setting[0]}, {setting[1]}, ratio {setting[2]:g})",
                            headers, rows, ["mean ± std over seeds (ddof=1) of the selected grid point."]))
    return tables


def ratio_table(cells: dict) -> Table | None:
    ratios = sorted({s[2] for s in cells})
    if len(ratios) < 2:
        return None
    groups = list(dict.fromkeys((s[0], s[1]) for s in cells))
    many = len(groups) > 1
    headers = (["benchmark", "backbone"] if many else []) + ["method"] + [f"ratio {r:g}" for r in ratios]
    rows = []
    for bench, backbone in groups:
        labels = list(dict.fromkeys(lbl for s in cells if s[:2] == (bench, backbone) for lbl in cells[s]))
        for label in labels:
            row = ([bench, backbone] if many else []) + [label]
            for ratio in ratios:
                cell = cells.get((bench, backbone, ratio), {}).get(label)
                if cell is None:
                    row.append("not planned")
                elif not cell.complete:
                    row.append(_missing(cell))
                else:
                    row.append(mean_std(cell.test_avgs()))
            rows.append(row)
    return Table("ratios", "Test Avg vs training ratio", headers, rows,
                 ["each cell: the grid point selected at that ratio; mean ± std over seeds (ddof=1)."])


def _main_settings(cells: dict) -> list[Setting]:
    """Per benchmark/backbone, the largest training ratio (the full-data setting)."""
    best: dict[tuple[str, str], float] = {}
    for bench, backbone, ratio in cells:
        best[(bench, backbone)] = max(ratio, best.get((bench, backbone), ratio))
    return [(b, k, r) for (b, k), r in best.items()]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)


def _suffix(setting: Setting, many: bool) -> str:
    return f"-{setting[0]}-{_safe(setting[1])}-r{setting[2]:g}" if many else ""


def _where(setting: Setting) -> str:
    return f"{setting[0]}, {setting[1]}, ratio {setting[2]:g}"


# --------------------------------------------------------------------------- #
# Ablations (InfoMTL Table 4, VIP-MTL's ablation)
# --------------------------------------------------------------------------- #


def _full_of(variant: Cell, labels: dict[str, Cell]) -> Cell | None:
    """The full method an ablation variant belongs to: a non-ablated label of the same method and
    weighting; preferring the same other ``method_args``, then a label that prefixes the variant's."""
    candidates = [c for c in labels.values() if not c.ablation and _family(c.method) == _family(variant.method)
                  and c.weighting == variant.weighting]
    flags = ABLATIONS.get(_family(variant.method), {})

    def others(cell: Cell) -> dict[str, Any]:
        return {k: v for k, v in cell.method_args.items() if k not in flags}

    for match in (lambda c: others(c) == others(variant), lambda c: variant.label.startswith(c.label),
                  lambda c: True):
        found = [c for c in candidates if match(c)]
        if found:
            return found[0]
    return None


def _ablation_row(cell: Cell, name: str, full: Cell | None, tasks: list[str]) -> list[str]:
    lead = [cell.label, name, cell.seeds]
    if not cell.complete:
        return lead + [_missing(cell)] * (len(tasks) + 1) + ["", ""]
    scores = [mean_std(cell.test_scores(t)) for t in tasks] + [mean_std(cell.test_avgs())]
    if cell is full:
        return lead + scores + ["0.00 (full)", ""]
    if full is None or not full.complete:
        return lead + scores + ["n/a", ""]
    delta = float(np.mean(cell.test_avgs()) - np.mean(full.test_avgs()))
    p = _p_value(cell, full)
    mark = MARK if p < SIGNIFICANCE_LEVEL else ""
    return lead + scores + [f"{delta:+.2f}{mark}", "" if math.isnan(p) else f"{p:.3f}"]


def ablation_tables(cells: dict[Setting, dict[str, Cell]], baseline: str | None) -> list[Table]:
    """One table per setting that holds ablation variants: per full method, its row, each "w/o X"
    row, and EW as "every component removed" (unless that variant was itself trained)."""
    settings = [s for s, labels in cells.items() if any(c.ablation for c in labels.values())]
    tables = []
    for setting in settings:
        labels = cells[setting]
        blocks: dict[str, tuple[Cell | None, list[Cell]]] = {}
        for cell in labels.values():
            if cell.ablation:
                full = _full_of(cell, labels)
                key = full.label if full is not None else f"({_family(cell.method)})"
                blocks.setdefault(key, (full, []))[1].append(cell)
        complete = [c for c in labels.values() if c.complete]
        tasks = [t.name for t in complete[0].runs[0].tasks] if complete else []
        base = labels.get(baseline) if baseline else None
        rows = []
        for full, variants in blocks.values():
            family = _family(variants[0].method)
            members = ([(full, "full")] if full is not None else []) + [(v, variant_name(v)) for v in variants]
            trained = any(frozenset(v.ablation) == SAME_AS_EW.get(family) for v in variants)
            if base is not None and family in ALL_REMOVED and not trained:
                members.append((base, ALL_REMOVED[family]))
            rows += [_ablation_row(cell, name, full, tasks) for cell, name in members]
        headers = ["method", "ablation", "seeds", *tasks, "Avg", "Δ Avg vs full", "p"]
        notes = [
            "task columns: each task's test score (mean over its official metrics); mean ± std over seeds (ddof=1).",
            f"Δ Avg vs full: seed-mean test Avg minus the full method's, in points; {MARK}: t-test over seeds "
            f"vs the full method (paired by seed) p < {SIGNIFICANCE_LEVEL}.",
            "each row is its label's selected grid point (highest mean validation Avg).",
        ]
        tables.append(Table("ablation" + _suffix(setting, len(settings) > 1), f"Ablation (test; {_where(setting)})",
                            headers, rows, notes))
    return tables


# --------------------------------------------------------------------------- #
# Task subsets: pairs (VIP-MTL's pairwise layout) and the task x partner matrix
# --------------------------------------------------------------------------- #


def _subset_value(cell: Cell | None, task: str) -> str:
    if cell is None:
        return "not planned"
    if not cell.complete:
        return _missing(cell)
    return mean_std(cell.test_scores(task))


def _subset_delta(cell: Cell | None, base: Cell | None, task: str) -> str:
    if cell is None or base is None or not (cell.complete and base.complete):
        return ""
    delta = float(np.nanmean(cell.test_scores(task)) - np.nanmean(base.test_scores(task)))
    try:
        p = _p_value(cell, base, task)
    except ValueError:  # a NaN score
        p = math.nan
    return f"{delta:+.2f}{MARK if p < SIGNIFICANCE_LEVEL else ''}"


def pair_tables(data: StoreData, baseline: str | None) -> list[Table]:
    """Per setting with runs on task subsets: the ``pairs`` table and a ``pair_matrix-LABEL`` per label."""
    tables = []
    many = len(data.subsets) > 1
    for setting, labels in data.subsets.items():
        sets = list(dict.fromkeys(ts for per in labels.values() for ts in per if len(ts) > 1))
        base = baseline if baseline in labels else None
        order = ([base] if base else []) + [lbl for lbl in labels if lbl != base]
        others = order[1:] if base else []
        if sets:
            headers = ["tasks", "task", *order, *[f"Δ {lbl}" for lbl in others]]
            rows = []
            for ts in sets:
                for task in [*ts, "Avg"]:
                    rows.append(["+".join(ts), task,
                                 *[_subset_value(labels[lbl].get(ts), task) for lbl in order],
                                 *[_subset_delta(labels[lbl].get(ts), labels[base].get(ts), task) for lbl in others]])
            notes = [
                "each task's test score (mean over its official metrics) when trained only with the other "
                "task(s) of its set; Avg: the set's test Avg; mean ± std over seeds (ddof=1).",
                "each cell is its label's grid point selected on that task set's validation Avg.",
            ]
            if base:
                notes.append(f"Δ: seed-mean score minus {base}'s on the same task set, in points; {MARK}: "
                             f"t-test over seeds (paired by seed) p < {SIGNIFICANCE_LEVEL}.")
            tables.append(Table("pairs" + _suffix(setting, many),
                                f"Task subsets (test; {_where(setting)})", headers, rows, notes))
        for label in order:
            matrix = _pair_matrix(label, labels[label], data.cells.get(setting, {}).get(label))
            if matrix is not None:
                matrix.name += _suffix(setting, many)
                matrix.title += f" ({_where(setting)})"
                tables.append(matrix)
    return tables


def _mean_text(cell: Cell | None, task: str) -> tuple[str, float]:
    if cell is None:
        return "-", math.nan
    if not cell.complete:
        return _missing(cell), math.nan
    value = float(np.nanmean(cell.test_scores(task)))
    return f"{value:.2f}", value


def _pair_matrix(label: str, per_set: dict[tuple[str, ...], Cell], full: Cell | None) -> Table | None:
    pairs = {frozenset(ts): c for ts, c in per_set.items() if len(ts) == 2}
    if not pairs:
        return None
    alone = {ts[0]: c for ts, c in per_set.items() if len(ts) == 1}
    tasks = list(dict.fromkeys(t for ts in per_set if len(ts) == 2 for t in ts))
    with_all = full is not None and full.complete
    headers = ["task", *[f"with {p}" for p in tasks], "best partner", *(["all tasks"] if with_all else [])]
    rows = []
    for task in tasks:
        row, best = [task], ("", -math.inf)
        for partner in tasks:
            if partner == task:
                row.append(_mean_text(alone.get(task), task)[0] + (" (alone)" if task in alone else ""))
                continue
            text, value = _mean_text(pairs.get(frozenset((task, partner))), task)
            row.append(text)
            if value > best[1]:
                best = (partner, value)
        row.append(f"{best[0]} ({best[1]:.2f})" if best[0] else "-")
        if with_all:
            row.append(_mean_text(full, task)[0])
        rows.append(row)
    notes = [
        "row task's test score (mean over its official metrics, mean over seeds) when trained with only the "
        "column task; diagonal: the task trained alone (task_sets: singles), '-' when not run.",
        "best partner: the partner giving the highest score (the 'best auxiliary task' number, e.g. InfoMTL*).",
    ]
    if with_all:
        notes.append("all tasks: the same label trained on every task (same store and setting).")
    return Table(f"pair_matrix-{_safe(label)}", f"{label}: score of each task by training partner",
                 headers, rows, notes)


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


def build_tables(store_root: str | Path, baseline: str | None = None) -> list[Table]:
    """Every table of a store's report."""
    return _tables(load_store(store_root), find_baseline(store_root, baseline))


def _tables(data: StoreData, baseline: str | None) -> list[Table]:
    from infomtl.report_analyses import analysis_tables

    tables: list[Table] = []
    cells = data.comparison()
    if cells:
        tables += [overall_table(cells, baseline), *fine_grained_tables(cells)]
        ratios = ratio_table(cells)
        if ratios is not None:
            tables.append(ratios)
    tables += ablation_tables(data.cells, baseline)
    tables += pair_tables(data, baseline)
    tables += analysis_tables(data, baseline)
    return tables


def write_report(
    store_root: str | Path, out: str | Path | None = None, baseline: str | None = None, plots: bool = True
) -> tuple[str, list[Path]]:
    """Write every table as .md/.csv/.tex, PNG plots, and ``report.md`` (every table, the plots
    and the analyses' PNGs found in the store) into ``out`` (default STORE/report).

    Returns the Markdown of all tables (and figure links) and the files written.
    """
    from infomtl.report_analyses import analysis_figures

    data = load_store(store_root)
    base = find_baseline(store_root, baseline)
    tables = _tables(data, base)
    folder = Path(out) if out is not None else Path(store_root) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        for ext, writer in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
            path = folder / f"{table.name}.{ext}"
            path.write_text(writer(table), encoding="utf-8")
            written.append(path)
    pngs = write_plots(data.comparison(), base, folder) if plots else []
    markdown = "\n".join(to_markdown(t) for t in tables)
    figures = [(p.stem, p.name) for p in pngs]
    figures += [(caption, Path(os.path.relpath(path, folder)).as_posix()) for caption, path in analysis_figures(data)]
    if figures:
        markdown += "\n## Figures\n\n" + "\n\n".join(f"**{caption}**\n\n![{caption}]({link})"
                                                      for caption, link in figures) + "\n"
    (folder / "report.md").write_text(f"# Report of {data.root}\n\n{markdown}", encoding="utf-8")
    written += [*pngs, folder / "report.md"]
    return markdown, written


def write_plots(cells: dict, baseline: str | None, folder: Path) -> list[Path]:
    """``delta_p.png`` (Δp per method) and ``ratios.png`` (test Avg vs ratio); skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return []
    written = []
    for setting in _main_settings(cells):
        base = cells[setting].get(baseline) if baseline else None
        bars = [(label, compare(cell, base)[0]) for label, cell in cells[setting].items() if cell is not base]
        bars = [(lbl, dp) for lbl, dp in bars if not math.isnan(dp)]
        if not bars:
            continue
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(bars) + 2), 3.5))
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color=["tab:green" if b[1] >= 0 else "tab:red" for b in bars])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel(f"Δp vs {baseline} (%)")
        ax.set_title(f"{setting[0]}, {setting[1]}")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        name = "delta_p.png" if len(_main_settings(cells)) == 1 else f"delta_p-{setting[0]}-{_safe(setting[1])}.png"
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)
        written.append(folder / name)
    ratios = sorted({s[2] for s in cells})
    if len(ratios) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for bench, backbone in dict.fromkeys((s[0], s[1]) for s in cells):
            labels = dict.fromkeys(lbl for s in cells if s[:2] == (bench, backbone) for lbl in cells[s])
            for label in labels:
                xs, ys = [], []
                for ratio in ratios:
                    cell = cells.get((bench, backbone, ratio), {}).get(label)
                    if cell is not None and cell.complete:
                        xs.append(ratio)
                        ys.append(float(np.mean(cell.test_avgs())))
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel("training ratio")
        ax.set_ylabel("test Avg")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(folder / "ratios.png", dpi=120)
        plt.close(fig)
        written.append(folder / "ratios.png")
    return written
