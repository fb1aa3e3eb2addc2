"""What the command modules share: the argument parser class, the exit status of a user
error, and printing a run's scores."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from infomtl.options import load_yaml, option_fields
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
    with :func:`infomtl.config.option`), in ``--help`` groups; each help text ends with the
    field's one default, and an option with a fixed set of values lists them. A flag not
    given is left out of the parsed arguments, so the YAML's value or the default holds."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of options; flags given here override it")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for key, f, hint in option_fields(cls):
        group_name = f.metadata["group"]
        title = f"{group_name} options" + (f" (YAML section {group_name}:)" if hasattr(cls, "SECTIONS") else "")
        group = groups.setdefault(group_name, parser.add_argument_group(title))
        flag = "--" + key.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS}
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if bool in (hint, *typing.get_args(hint)):
            kwargs["help"] = f"{f.metadata['help']} (default: {_shown(f, default, on_off=True)})"
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["help"] = f"{f.metadata['help']} (default: {_shown(f, default)})"
        if "flag" in f.metadata:  # repeatable: one list item per use
            group.add_argument("--" + f.metadata["flag"], flag, action="append",
                               metavar=f.metadata.get("metavar", key.upper()), **kwargs)
            continue
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]  # argparse shows them: {cls,mean}
        else:
            kwargs["metavar"] = f.metadata.get("metavar", key.upper())
        group.add_argument(flag, **kwargs)
    shorthands = getattr(cls, "SHORTHANDS", {})
    if shorthands:  # flags that set one entry of a mapping option (TrainConfig's benchmark_args)
        group = parser.add_argument_group("shorthands")
        for name, (_, kind, choices, help_text) in shorthands.items():
            kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": f"the same as {help_text}"}
            if kind is bool:
                group.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, **kwargs)
            else:
                group.add_argument("--" + name.replace("_", "-"), choices=choices,
                                   metavar=None if choices else "VALUE", **kwargs)


def _shown(f: dataclasses.Field, default: Any, on_off: bool = False) -> str:
    """What ``--help`` says after ``default:`` (the field's ``shown`` text, else its value)."""
    if "shown" in f.metadata:
        return f.metadata["shown"]
    if on_off:
        return "on" if default else "off"
    if isinstance(default, dict):
        return ",".join(f"{k}={v}" for k, v in default.items()) or "none"
    if isinstance(default, list):
        return ",".join(default) or "none"
    return "none" if default in ("", None) else str(default)


def config_values(args: argparse.Namespace, cls: type) -> tuple[dict[str, Any], str]:
    """The options of ``--config`` YAML with the flags given over them, and where they came from."""
    values: dict[str, Any] = {}
    source = "command line"
    if getattr(args, "config", None):
        source = args.config
        values = {str(k).replace("-", "_"): v for k, v in load_yaml(args.config).items()}
    names = {key for key, _, _ in option_fields(cls)} | set(getattr(cls, "SHORTHANDS", {}))
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
