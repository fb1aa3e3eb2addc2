"""Plain-text tables (Markdown pipe tables) for the terminal and for papers' drafts."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 2) -> str:
    """A Markdown table; floats are printed with ``digits`` decimals, columns aligned."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in body) and body for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line([str(h) for h in headers]), rule, *(line(r) for r in body)])


def _is_number(text: str) -> bool:
    try:
        float(text.replace("+", "", 1))
    except ValueError:
        return False
    return True
