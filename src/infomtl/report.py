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
holds more than one training ratio. Plots (PNG, needs matplotlib): Δp per method,
test Avg vs training ratio.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infomtl.errors import InfomtlError
from infomtl.experiments import Store, point_name
from infomtl.metrics import delta_p, significance
from infomtl.tables import markdown_table
from infomtl.tasks import Task

SIGNIFICANCE_LEVEL = 0.05
MARK = "†"
BASELINE_METHODS = ("ew", "equal")


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

    @property
    def seeds(self) -> str:
        return f"{len(self.runs)}/{len(self.expected_seeds)}"

    def test_avgs(self) -> list[float]:
        return [r.test_avg for r in self.runs]

    def mean_scores(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Per task and metric, the mean over seeds."""
        first = self.runs[0].results[split]["tasks"]
        return {
            task: {m: float(np.mean([r.results[split]["tasks"][task][m] for r in self.runs])) for m in metrics}
            for task, metrics in first.items()
        }


@dataclass
class Table:
    name: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def mean_std(values: Sequence[float]) -> str:
    """``"mean ± std"`` (sample std, ddof = 1); the mean alone for one value."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{float(np.mean(values)):.2f} ± {float(np.std(values, ddof=1)):.2f}"


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


def load_cells(store_root: str | Path) -> dict[tuple[str, str, float], dict[str, Cell]]:
    """Setting (benchmark, backbone, ratio) -> label -> selected :class:`Cell`, in the sweep's order."""
    store = Store(Path(store_root))
    plan = store.read_plan()
    if not plan:
        raise InfomtlError(f"{store.root}: not a results store (no plan.json; run `infomtl sweep` into it)")
    grouped: dict[tuple[str, str, float], dict[str, dict[str, list[tuple[dict, Run | None]]]]] = {}
    for rid, meta in plan.items():
        setting = (meta["benchmark"], meta["backbone"], float(meta["train_ratio"]))
        run = None
        if store.is_finished(rid):
            folder = store.run_dir(rid)
            results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            run = Run(rid, int(meta["seed"]), results, _tasks_of(folder))
        points = grouped.setdefault(setting, {}).setdefault(meta["label"], {})
        points.setdefault(point_name(meta["point"]), []).append((meta, run))
    return {
        setting: {label: select(label, points) for label, points in labels.items()}
        for setting, labels in grouped.items()
    }


def select(label: str, points: dict[str, list[tuple[dict, Run | None]]]) -> Cell:
    """The grid point with the highest mean validation Avg among the complete ones."""
    cells = []
    for name, members in sorted(points.items()):
        expected = sorted(int(meta["seed"]) for meta, _ in members)
        runs = sorted((r for _, r in members if r is not None), key=lambda r: r.seed)
        complete = len(runs) == len(expected)
        val = float(np.mean([r.val_avg for r in runs])) if runs else math.nan
        cells.append(Cell(label, name, len(points), expected, runs, complete, val))
    complete = [c for c in cells if c.complete]
    if complete:
        return max(complete, key=lambda c: c.val_avg)  # max keeps the first of equals
    return max(cells, key=lambda c: len(c.runs))  # shown as missing, with how many seeds finished


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
# Tables
# --------------------------------------------------------------------------- #


def _missing(cell: Cell) -> str:
    return f"missing ({cell.seeds} seeds)"


def _selected(cell: Cell) -> str:
    return cell.point if cell.points == 1 else f"{cell.point} (best of {cell.points})"


def compare(cell: Cell, base: Cell | None) -> tuple[float, float]:
    """(Δp vs the baseline's mean scores, t-test p-value over seeds); NaN where undefined."""
    if base is None or not (cell.complete and base.complete) or cell is base:
        return math.nan, math.nan
    dp = delta_p(cell.runs[0].tasks, cell.mean_scores(), base.mean_scores())
    paired = [r.seed for r in cell.runs] == [r.seed for r in base.runs]
    return dp, significance(cell.test_avgs(), base.test_avgs(), paired=paired)


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


def _main_settings(cells: dict) -> list[tuple[str, str, float]]:
    """Per benchmark/backbone, the largest training ratio (the full-data setting)."""
    best: dict[tuple[str, str], float] = {}
    for bench, backbone, ratio in cells:
        best[(bench, backbone)] = max(ratio, best.get((bench, backbone), ratio))
    return [(b, k, r) for (b, k), r in best.items()]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


def to_markdown(table: Table) -> str:
    parts = [f"## {table.title}", "", markdown_table(table.headers, table.rows)]
    if table.notes:
        parts += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(parts) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.headers)
    writer.writerows(table.rows)
    return buf.getvalue()


_LATEX = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
          "±": r"$\pm$", MARK: r"$^\dagger$", "Δ": r"$\Delta$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``)."""
    spec = "l" * 1 + "r" * (len(table.headers) - 1)
    lines = [f"% {table.title}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def build_tables(store_root: str | Path, baseline: str | None = None) -> list[Table]:
    """Every table of a store's report."""
    return _tables(load_cells(store_root), find_baseline(store_root, baseline))


def _tables(cells: dict, baseline: str | None) -> list[Table]:
    tables = [overall_table(cells, baseline), *fine_grained_tables(cells)]
    ratios = ratio_table(cells)
    if ratios is not None:
        tables.append(ratios)
    return tables


def write_report(
    store_root: str | Path, out: str | Path | None = None, baseline: str | None = None, plots: bool = True
) -> tuple[str, list[Path]]:
    """Write every table as .md/.csv/.tex (and PNG plots) into ``out`` (default STORE/report).

    Returns the Markdown of all tables and the files written.
    """
    cells = load_cells(store_root)
    base = find_baseline(store_root, baseline)
    tables = _tables(cells, base)
    folder = Path(out) if out is not None else Path(store_root) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        for ext, writer in (("md", to_markdown), ("csv", to_csv), ("tex", to_latex)):
            path = folder / f"{table.name}.{ext}"
            path.write_text(writer(table), encoding="utf-8")
            written.append(path)
    if plots:
        written += write_plots(cells, base, folder)
    return "\n".join(to_markdown(t) for t in tables), written


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
