"""What the command modules share: the argument parser class, the exit status of a user
error, and printing a run's scores."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from infomtl.config import load_yaml
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


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config YAML`` and one flag per field of the config dataclass ``cls`` (fields made
    with :func:`infomtl.config.option`), in ``--help`` groups; a flag not given is left out of
    the parsed arguments, so the YAML's value or the default holds."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of options; flags given here override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        group_name = f.metadata["group"]
        group = groups.setdefault(group_name, parser.add_argument_group(f"{group_name} options"))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(default) if isinstance(default, list) else default
        if isinstance(default, dict):
            shown = ",".join(f"{k}={v}" for k, v in default.items()) or "none"
        help_text = f"{f.metadata['help']} (default: {shown if shown not in ('', None) else 'none'})"
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            group.add_argument(flag, metavar=f.metadata.get("metavar", f.name.upper()), **kwargs)


def config_values(args: argparse.Namespace, cls: type) -> tuple[dict[str, Any], str]:
    """The options of ``--config`` YAML with the flags given over them, and where they came from."""
    values: dict[str, Any] = {}
    source = "command line"
    if getattr(args, "config", None):
        source = args.config
        values = {str(k).replace("-", "_"): v for k, v in load_yaml(args.config).items()}
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return values, source


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
