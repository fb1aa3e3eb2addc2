"""User-facing errors.

Anything a user can get wrong (a data file, a flag, a config value, a checkpoint)
raises :class:`InfomtlError` with a one-line message. The CLI prints it as
``error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


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


def did_you_mean(name: object, valid: object) -> str:
    """``" (did you mean 'x'?)"`` for the valid name closest to ``name``, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
