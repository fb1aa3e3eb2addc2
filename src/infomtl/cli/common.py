"""What the command modules share: the argument parser class, the exit status of a user
error, and printing a run's scores."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from infomtl.tables import markdown_table

#: Exit status of a user error (bad flag, missing file, invalid data).
EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def print_results(results: dict[str, Any], splits: Sequence[str] = ("val", "test")) -> None:
    """Each split's per-task metrics as a Markdown table, then its Avg."""
    for split in splits:
        scored = results.get(split)
        if not scored:
            continue
        names = list(scored["tasks"])
        rows = [[n, *[f"{k} {v:.2f}" for k, v in scored["tasks"][n].items()]] for n in names]
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        headers = ["task"] + [f"{split} metric{'s' if width > 2 else ''}"] + [""] * (width - 2)
        print(markdown_table(headers, rows))
        print(f"{split} Avg: {scored['avg']:.2f}\n")
