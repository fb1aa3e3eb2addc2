"""The papers' tables from a results store (:mod:`infomtl.experiments.store`), as Markdown, CSV and LaTeX.

For every setting (benchmark, backbone, training ratio) and method label:

* **Selection** (as the papers): among the label's grid points whose planned
  seeds have all finished, the one with the highest mean *validation* Avg over
  seeds; ties go to the first point name in sort order. Test numbers are that
  point's. A label with no complete point shows ``missing (k/n seeds)`` instead
  of numbers averaged over fewer seeds.
* **mean ± std** over seeds; std is the sample standard deviation (ddof = 1).
* **Δp** vs the EW baseline: :func:`infomtl.metrics.delta_p` of the method's
  per-metric test scores averaged over seeds against EW's, per docs/methods.md.
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
``information`` tables (see :mod:`infomtl.experiments.report_analyses`), and their PNGs are
embedded in ``report.md``. Plots (PNG, needs matplotlib): Δp per method, test Avg
vs training ratio.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from infomtl.experiments.report_analyses import analysis_figures, analysis_tables
from infomtl.experiments.results import (
    ABLATIONS,
    ALL_REMOVED,
    SAME_AS_EW,
    Cell,
    Run,
    Setting,
    StoreData,
    find_baseline,
    load_cells,
    load_store,
    method_family,
    variant_name,
)
from infomtl.metrics import delta_p, significance
from infomtl.tables import MARK, Table, latex_escape, mean_std, to_csv, to_latex, to_markdown

log = logging.getLogger(__name__)

__all__ = [
    "MARK", "Cell", "Run", "StoreData", "Table", "build_tables", "latex_escape", "load_cells", "load_store",
    "mean_std", "to_csv", "to_latex", "to_markdown", "write_report",
]

SIGNIFICANCE_LEVEL = 0.05
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
    family = method_family(variant.method)
    candidates = [c for c in labels.values()
                  if not c.ablation and method_family(c.method) == family and c.weighting == variant.weighting]
    flags = ABLATIONS.get(method_family(variant.method), {})

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
                key = full.label if full is not None else f"({method_family(cell.method)})"
                blocks.setdefault(key, (full, []))[1].append(cell)
        complete = [c for c in labels.values() if c.complete]
        tasks = [t.name for t in complete[0].runs[0].tasks] if complete else []
        base = labels.get(baseline) if baseline else None
        rows = []
        for full, variants in blocks.values():
            family = method_family(variants[0].method)
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
        log.warning("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return []
    written = []
    for setting in _main_settings(cells):
        base = cells[setting].get(baseline) if baseline else None
        bars = [(label, compare(cell, base)[0]) for label, cell in cells[setting].items() if cell is not base]
        bars = [(lbl, dp) for lbl, dp in bars if not math.isnan(dp)]
        if not bars:
            continue
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(bars) + 2), 3.5))
        colours = ["tab:green" if b[1] >= 0 else "tab:red" for b in bars]
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color=colours)
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
