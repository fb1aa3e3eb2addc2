"""Tables for the terminal and for papers' drafts: a :class:`Table` and its Markdown
(pipe table), CSV and LaTeX (booktabs) forms, and the ``mean ± std`` cell format."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: The significance mark of the reports (p < 0.05).
MARK = "†"


@dataclass
class Table:
    """A named table: ``name`` is the file stem of its ``.md``/``.csv``/``.tex``."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``"mean ± std"`` (sample std, ddof = 1); the mean alone for one value; ``"-"`` for none.

    NaN values (a metric that was undefined for a run) are left out.
    """
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{float(np.mean(values)):.{digits}f} ± {float(np.std(values, ddof=1)):.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 2) -> str:
    """A Markdown table; floats are printed with ``digits`` decimals, columns aligned."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(str(h)), *(len(r[i]) for r in body)]) for i, h in enumerate(headers)]
    numeric = [bool(body) and all(_is_number(r[i]) for r in body) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    cells = (("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True))
    rule = "|" + "|".join(cells) + "|"
    return "\n".join([line([str(h) for h in headers]), rule, *(line(r) for r in body)])


def _is_number(text: str) -> bool:
    try:
        float(text.replace("+", "", 1))
    except ValueError:
        return False
    return True


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
          "\\": r"\textbackslash{}", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
          "±": r"$\pm$", MARK: r"$^\dagger$", "Δ": r"$\Delta$", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
          "ε": r"$\epsilon$", "Î": r"$\hat{I}$"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters (``& % _ # $ { } \\ ^ ~``) escaped and the
    tables' symbols (±, †, Δ...) in math mode."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``)."""
    spec = "l" * 1 + "r" * (len(table.headers) - 1)
    lines = [f"% {table.title}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
