"""What the report's tables share: the cells' comparison with the baseline (Δp, the t-test
over seeds) and the names of settings (see :mod:`infomtl.experiments.report`)."""

from __future__ import annotations

import math

from infomtl.experiments.results import Cell, Setting
from infomtl.metrics import delta_p
from infomtl.significance import significance

SIGNIFICANCE_LEVEL = 0.05


def missing_text(cell: Cell) -> str:
    return f"missing ({cell.seeds} seeds)"


def selected_text(cell: Cell) -> str:
    return cell.point if cell.points == 1 else f"{cell.point} (best of {cell.points})"


def p_value(cell: Cell, base: Cell, task: str = "Avg") -> float:
    """t-test over seeds of ``task``'s test scores (paired by seed when both have the same seeds)."""
    paired = [r.seed for r in cell.runs] == [r.seed for r in base.runs]
    return significance(cell.test_scores(task), base.test_scores(task), paired=paired)


def compare(cell: Cell, base: Cell | None) -> tuple[float, float]:
    """(Δp vs the baseline's mean scores, t-test p-value over seeds); NaN where undefined."""
    if base is None or not (cell.complete and base.complete) or cell is base:
        return math.nan, math.nan
    dp = delta_p(cell.runs[0].tasks, cell.mean_scores(), base.mean_scores())
    return dp, p_value(cell, base)


def main_settings(cells: dict) -> list[Setting]:
    """Per benchmark/backbone, the largest training ratio (the full-data setting)."""
    best: dict[tuple[str, str], float] = {}
    for bench, backbone, ratio in cells:
        best[(bench, backbone)] = max(ratio, best.get((bench, backbone), ratio))
    return [(b, k, r) for (b, k), r in best.items()]


def safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)


def setting_suffix(setting: Setting, many: bool) -> str:
    return f"-{setting[0]}-{safe_name(setting[1])}-r{setting[2]:g}" if many else ""


def setting_text(setting: Setting) -> str:
    return f"{setting[0]}, {setting[1]}, ratio {setting[2]:g}"
