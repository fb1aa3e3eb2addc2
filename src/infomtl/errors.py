"""User-facing errors, and the stop on a signal.

Anything a user can get wrong (a data file, a flag, a config value, a checkpoint)
raises :class:`InfomtlError` with a one-line message. The CLI prints it as
``error: <message>`` and exits with status 2, without a traceback. Training or a sweep
stopped by SIGINT / SIGTERM raises :class:`Interrupted` once its state is saved; the CLI
prints its line (with the command that resumes) and exits with 128 + the signal number.
A misspelt name is reported with the closest valid one (:func:`unknown_names`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InfomtlError(Exception):
    """A user error with a one-line, self-explaining message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataError(InfomtlError):
    """Bad or missing data. The message names the file and, where known, the line."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        if line is None:
            where = f"{path}"
        else:
            where = f"{path} row {line}" if isinstance(path, DatasetSplit) else f"{path}:{line}"
        self.path = str(path)
        self.line = line
        super().__init__(f"{where}: {message}")


class DatasetSplit(str):
    """Where rows of a dataset come from, ``"ID[split]"``: a :class:`DataError` there names the
    row by its index in the split (``ID[train] row 11: ...``) instead of a file line."""


class ConfigError(InfomtlError):
    """An invalid option, hyperparameter, method or backbone name."""


class Interrupted(KeyboardInterrupt):
    """Work stopped by a signal after saving what it had: ``signal_name`` (``SIGTERM``...),
    ``saved`` (what was kept, in words), ``resume`` (the command that continues) and
    ``exit_status`` (128 + the signal number). A :class:`KeyboardInterrupt`, so code that
    catches ``Exception`` lets it through."""

    def __init__(self, signal_name: str, saved: str, resume: str, exit_status: int) -> None:
        super().__init__(f"interrupted by {signal_name}: {saved}; resume with: {resume}")
        self.signal_name, self.saved, self.resume, self.exit_status = signal_name, saved, resume, exit_status

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.signal_name, self.saved, self.resume, self.exit_status)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """What an exception says, for a one-line error: the first line of its message, at most
    ``limit`` characters, or its type's name when it says nothing."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def did_you_mean(name: object, valid: Iterable[object]) -> str:
    """`` (did you mean `epochs`?)`` for the valid name closest to ``name`` (difflib's
    ratio of at least 0.6), or ``""`` when none is that close."""
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean `{match[0]}`?)" if match else ""


def unknown_names(what: str, names: Iterable[str], valid: Iterable[str]) -> str:
    """Every unknown name at once, each with the closest valid one:
    ``unknown options: epoch (did you mean `epochs`?), lrr (did you mean `lr`?)``.

    ``what`` is the singular noun (``option``, ``TweetEval task``); one name keeps it singular.
    """
    names, valid = list(names), list(valid)
    noun = what if len(names) == 1 else f"{what}s"
    return f"unknown {noun}: " + ", ".join(f"{n}{did_you_mean(n, valid)}" for n in names)
