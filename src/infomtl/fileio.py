"""Files written safely and JSON read strictly: the helpers every layer shares.

JSON is written to a temporary file, then renamed; a folder is filled under a
temporary name, then renamed into place (:func:`write_folder`, undone after a kill by
:func:`recover_folder`). JSON is read with every way it can fail raised as one error
(:class:`JSONError`, or :class:`~infomtl.errors.InfomtlError` naming the file).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infomtl.errors import InfomtlError


class JSONError(ValueError):
    """A JSON text that does not parse: a one-line ``reason`` and, for a syntax error,
    its ``lineno`` and ``colno``."""

    def __init__(self, reason: str, lineno: int | None = None, colno: int | None = None) -> None:
        super().__init__(reason if lineno is None else f"{reason}: line {lineno} column {colno}")
        self.reason, self.lineno, self.colno = reason, lineno, colno


def loads_json(text: str | bytes) -> Any:
    """``json.loads``, with every way it fails raised as :class:`JSONError`: a syntax
    error, bytes that are not UTF-8, nesting past the recursion limit, or an integer
    over Python's digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONError(exc.msg, exc.lineno, exc.colno) from None
    except UnicodeDecodeError:
        raise JSONError("not UTF-8") from None
    except RecursionError:
        raise JSONError("nested too deeply") from None
    except ValueError:  # json's other error: an integer over Python's digit limit
        raise JSONError("a number with too many digits") from None


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """A JSON file's value; a missing or malformed file raises :class:`InfomtlError`."""
    try:
        return loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InfomtlError(f"{path}: file not found") from None
    except (JSONError, UnicodeDecodeError) as exc:
        raise InfomtlError(f"{path}: not valid JSON ({exc})") from None


def write_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Fill a temporary folder with ``write(tmp)``, then rename it to ``folder``.

    A kill at any point leaves ``folder`` (old or new) or, between the two renames,
    ``folder.old``: :func:`recover_folder` puts that back.
    """
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(folder: Path) -> None:
    """Undo a kill during :func:`write_folder`: restore ``folder.old``, drop ``folder.tmp``."""
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and old.is_dir():
        os.replace(old, folder)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + ".tmp"), ignore_errors=True)
