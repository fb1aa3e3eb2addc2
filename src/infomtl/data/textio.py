"""Reading data files as strict UTF-8 lines, with errors that name the file and line."""

from __future__ import annotations

import codecs
from pathlib import Path

from infomtl.errors import DataError


def read_text(path: Path) -> str:
    """The whole file decoded as strict UTF-8 (a leading byte-order mark is dropped).

    Raises:
        DataError: the file is missing or unreadable, or holds invalid UTF-8 (the
            message gives the 1-based line of the first bad byte).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.end]
        raise DataError(
            path, f"invalid UTF-8 (bytes {bad!r}); files must be UTF-8 encoded", line=line
        ) from None


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only, without one final empty element from a trailing newline.

    ``str.splitlines`` is not used on purpose: it also splits on characters such as
    ``\\x0b`` or U+2028 that can occur inside a text and would shift line alignment
    between a text file and its label file.
    """
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def read_lines(path: Path) -> list[str]:
    """The lines of a strict UTF-8 file (see :func:`read_text` and :func:`split_lines`)."""
    return split_lines(read_text(path))
