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
    """argparse with one-line errors and exit status 2; in a parser with ``--ablate``, an
    undeclared ``--no-NAME`` is shorthand for ``--ablate NAME`` (the method checks NAME)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if any(action.dest == "ablate" for action in self._actions):
            shorthand = [a for a in extras if a.startswith("--no-") and "=" not in a]
            if shorthand:
                given = [n for n in str(getattr(parsed, "ablate", "")).split(",") if n]
                parsed.ablate = ",".join(given + [a[len("--no-"):] for a in shorthand])
                extras = [a for a in extras if a not in shorthand]
        return parsed, extras


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
