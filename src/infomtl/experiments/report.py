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
  Avgs (:func:`infomtl.significance.significance`, paired by seed where both have the
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from infomtl.experiments.report_analyses import analysis_figures, analysis_tables
from infomtl.experiments.report_common import (
    SIGNIFICANCE_LEVEL,
    compare,
    main_settings,
    missing_text,
    safe_name,
    selected_text,
)
from infomtl.experiments.report_variants import ablation_tables, pair_tables
from infomtl.experiments.results import (
    Cell,
    Run,
    StoreData,
    find_baseline,
    load_cells,
    load_store,
)
from infomtl.tables import MARK, Table, latex_escape, mean_std, to_csv, to_latex, to_markdown

log = logging.getLogger(__name__)

__all__ = [
    "MARK", "Cell", "Run", "StoreData", "Table", "build_tables", "latex_escape", "load_cells", "load_store",
    "mean_std", "to_csv", "to_latex", "to_markdown", "write_report",
]

# --------------------------------------------------------------------------- #
# Comparison tables
# --------------------------------------------------------------------------- #


def overall_table(cells: dict, baseline: str | None) -> Table:
    settings = main_settings(cells)
    many = len(settings) > 1
    headers = (["benchmark", "backbone"] if many else []) + [
        "method", "selected", "seeds", "val Avg", "test Avg", "Δp vs EW", "p"]
    rows = []
    for setting in settings:
        base = cells[setting].get(baseline) if baseline else None
        for label, cell in cells[setting].items():
            lead = [setting[0], setting[1]] if many else []
            if not cell.complete:
                missing = missing_text(cell)
                rows.append(lead + [label, selected_text(cell), cell.seeds, missing, missing, "", ""])
                continue
            dp, p = compare(cell, base)
            mark = MARK if p < SIGNIFICANCE_LEVEL else ""
            dp_text = "0.00 (base)" if cell is base else ("n/a" if math.isnan(dp) else f"{dp:+.2f}")
            rows.append(lead + [label, selected_text(cell), cell.seeds, f"{cell.val_avg:.2f}",
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
    settings = main_settings(cells)
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
                rows.append([label, cell.seeds] + [missing_text(cell)] * (len(columns) + 1))
                continue
            values = [mean_std([r.results["test"]["tasks"][t][m] for r in cell.runs]) for t, m in columns]
            rows.append([label, cell.seeds, *values, mean_std(cell.test_avgs())])
        name = "fine_grained" if len(settings) == 1 else f"fine_grained-{setting[0]}-{safe_name(setting[1])}"
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
                    row.append(missing_text(cell))
                else:
                    row.append(mean_std(cell.test_avgs()))
            rows.append(row)
    return Table("ratios", "Test Avg vs training ratio", headers, rows,
                 ["each cell: the grid point selected at that ratio; mean ± std over seeds (ddof=1)."])


def build_tables(store_root: str | Path, baseline: str | None = None,
                 seeds: Sequence[int] | None = None) -> list[Table]:
    """Every table of a store's report (``seeds``: only the runs of these seeds, see
    :func:`~infomtl.experiments.results.load_store`)."""
    return _tables(load_store(store_root, seeds), find_baseline(store_root, baseline))


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
    store_root: str | Path, out: str | Path | None = None, baseline: str | None = None, plots: bool = True,
    seeds: Sequence[int] | None = None,
) -> tuple[str, list[Path]]:
    """Write every table as .md/.csv/.tex, PNG plots, and ``report.md`` (every table, the plots
    and the analyses' PNGs found in the store) into ``out`` (default STORE/report); with
    ``seeds``, over the runs of those seeds only (said in ``report.md``).

    Returns the Markdown of all tables (and figure links) and the files written.
    """
    data = load_store(store_root, seeds)
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
    scope = f"Seeds {', '.join(map(str, seeds))} only (`--seeds`).\n\n" if seeds is not None else ""
    (folder / "report.md").write_text(f"# Report of {data.root}\n\n{scope}{markdown}", encoding="utf-8")
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
    for setting in main_settings(cells):
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
        name = "delta_p.png" if len(main_settings(cells)) == 1 else f"delta_p-{setting[0]}-{safe_name(setting[1])}.png"
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
