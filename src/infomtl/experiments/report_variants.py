"""The report's tables of variants (see :mod:`infomtl.experiments.report`): the ``ablation``
table (InfoMTL Table 4, VIP-MTL's ablation) and the task-subset tables ``pairs`` and
``pair_matrix-LABEL`` (VIP-MTL's pairwise layout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from infomtl.experiments.report_common import (
    SIGNIFICANCE_LEVEL,
    missing_text,
    p_value,
    safe_name,
    setting_suffix,
    setting_text,
)
from infomtl.experiments.results import (
    Cell,
    Setting,
    StoreData,
    ablations_of,
    method_family,
    variant_name,
)
from infomtl.methods import objective_of
from infomtl.tables import MARK, Table, mean_std

# --------------------------------------------------------------------------- #
# Ablations (InfoMTL Table 4, VIP-MTL's ablation)
# --------------------------------------------------------------------------- #


def _full_of(variant: Cell, labels: dict[str, Cell]) -> Cell | None:
    """The full method an ablation variant belongs to: a non-ablated label of the same method and
    weighting; preferring the same other ``method_args``, then a label that prefixes the variant's."""
    family = method_family(variant.method)
    candidates = [c for c in labels.values()
                  if not c.ablation and method_family(c.method) == family and c.weighting == variant.weighting]
    flags = ablations_of(variant.method)

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
        return lead + [missing_text(cell)] * (len(tasks) + 1) + ["", ""]
    scores = [mean_std(cell.test_scores(t)) for t in tasks] + [mean_std(cell.test_avgs())]
    if cell is full:
        return lead + scores + ["0.00 (full)", ""]
    if full is None or not full.complete:
        return lead + scores + ["n/a", ""]
    delta = float(np.mean(cell.test_avgs()) - np.mean(full.test_avgs()))
    p = p_value(cell, full)
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
            objective = objective_of(variants[0].method)
            members = ([(full, "full")] if full is not None else []) + [(v, variant_name(v)) for v in variants]
            everything = frozenset(ablations_of(variants[0].method))
            trained = (objective is not None and objective.ablations_reduce_to_ew
                       and any(frozenset(v.ablation) == everything for v in variants))
            if base is not None and objective is not None and objective.without_all and not trained:
                members.append((base, objective.without_all))
            rows += [_ablation_row(cell, name, full, tasks) for cell, name in members]
        headers = ["method", "ablation", "seeds", *tasks, "Avg", "Δ Avg vs full", "p"]
        notes = [
            "task columns: each task's test score (mean over its official metrics); mean ± std over seeds (ddof=1).",
            f"Δ Avg vs full: seed-mean test Avg minus the full method's, in points; {MARK}: t-test over seeds "
            f"vs the full method (paired by seed) p < {SIGNIFICANCE_LEVEL}.",
            "each row is its label's selected grid point (highest mean validation Avg).",
        ]
        name = "ablation" + setting_suffix(setting, len(settings) > 1)
        tables.append(Table(name, f"Ablation (test; {setting_text(setting)})", headers, rows, notes))
    return tables


# --------------------------------------------------------------------------- #
# Task subsets: pairs (VIP-MTL's pairwise layout) and the task x partner matrix
# --------------------------------------------------------------------------- #


def _subset_value(cell: Cell | None, task: str) -> str:
    if cell is None:
        return "not planned"
    if not cell.complete:
        return missing_text(cell)
    return mean_std(cell.test_scores(task))


def _subset_delta(cell: Cell | None, base: Cell | None, task: str) -> str:
    if cell is None or base is None or not (cell.complete and base.complete):
        return ""
    delta = float(np.nanmean(cell.test_scores(task)) - np.nanmean(base.test_scores(task)))
    try:
        p = p_value(cell, base, task)
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
        base_cells = labels[base] if base else {}
        if sets:
            headers = ["tasks", "task", *order, *[f"Δ {lbl}" for lbl in others]]
            rows = []
            for ts in sets:
                for task in [*ts, "Avg"]:
                    rows.append(["+".join(ts), task,
                                 *[_subset_value(labels[lbl].get(ts), task) for lbl in order],
                                 *[_subset_delta(labels[lbl].get(ts), base_cells.get(ts), task) for lbl in others]])
            notes = [
                "each task's test score (mean over its official metrics) when trained only with the other "
                "task(s) of its set; Avg: the set's test Avg; mean ± std over seeds (ddof=1).",
                "each cell is its label's grid point selected on that task set's validation Avg.",
            ]
            if base:
                notes.append(f"Δ: seed-mean score minus {base}'s on the same task set, in points; {MARK}: "
                             f"t-test over seeds (paired by seed) p < {SIGNIFICANCE_LEVEL}.")
            tables.append(Table("pairs" + setting_suffix(setting, many),
                                f"Task subsets (test; {setting_text(setting)})", headers, rows, notes))
        for label in order:
            matrix = _pair_matrix(label, labels[label], data.cells.get(setting, {}).get(label))
            if matrix is not None:
                matrix.name += setting_suffix(setting, many)
                matrix.title += f" ({setting_text(setting)})"
                tables.append(matrix)
    return tables


def _mean_text(cell: Cell | None, task: str) -> tuple[str, float]:
    if cell is None:
        return "-", math.nan
    if not cell.complete:
        return missing_text(cell), math.nan
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
    return Table(f"pair_matrix-{safe_name(label)}", f"{label}: score of each task by training partner",
                 headers, rows, notes)


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #
