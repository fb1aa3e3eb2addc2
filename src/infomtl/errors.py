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
        where = f"{path}:{line}" if line is not None else f"{path}"
        self.path = str(path)
        self.line = line
        super().__init__(f"{where}: {message}")


class ConfigError(InfomtlError):
    """An invalid option, hyperparameter, method or backbone name."""
