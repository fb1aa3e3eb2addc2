"""Files written safely and JSON read strictly: the helpers every layer shares.

Every file is written to a temporary name, then renamed (:func:`write_text`,
:func:`write_json`); a folder is filled under a temporary name, then renamed into place
(:func:`write_folder`, undone after a kill by :func:`recover_folder`); a log line is
appended whole or not at all (:func:`append_line`). A write that fails (disk full, a
file-size limit, a read-only folder) raises :class:`WriteError`, one line naming the file
and the cause, after removing what it half wrote: the previous version stays readable.
Files get the permissions of an ordinary file under the process's umask
(:func:`match_umask`), also those written by libraries that make them owner-only.
JSON is read with every way it can fail raised as one error (:class:`JSONError`, or
:class:`~infomtl.errors.InfomtlError` naming the file).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infomtl.errors import InfomtlError

#: What a failed write's errno means, in words a user acts on.
WRITE_FAILURES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file-size limit (ulimit -f)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (the folder is not writable)",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}

#: How libraries written in Rust (safetensors, tokenizers) report an OS error in their message.
_RUST_OS_ERROR = re.compile(r"os error (\d+)")


class WriteError(InfomtlError):
    """A file that could not be written: ``path``, ``reason`` (e.g. "disk full"), ``errno``
    and an optional ``hint`` (what to do next, e.g. the command that resumes)."""

    def __init__(self, path: str | Path, reason: str, code: int | None = None, hint: str = "") -> None:
        super().__init__(f"{path}: cannot write ({reason})" + (f"; {hint}" if hint else ""))
        self.path, self.reason, self.errno, self.hint = str(path), reason, code, hint

    def with_hint(self, hint: str) -> WriteError:
        """The same error with ``hint`` (replacing any earlier one)."""
        return WriteError(self.path, self.reason, self.errno, hint)

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.reason, self.errno, self.hint)


def os_error_code(exc: BaseException) -> int | None:
    """The errno of a failed write: an :class:`OSError`'s own, or the ``os error N`` that
    safetensors and tokenizers put in their messages; None for any other error."""
    if isinstance(exc, OSError):
        return exc.errno
    found = _RUST_OS_ERROR.search(str(exc))
    return int(found.group(1)) if found else None


def describe_os_error(code: int | None) -> str:
    """A failed write's cause in words (:data:`WRITE_FAILURES`, else the system's message)."""
    if code in WRITE_FAILURES:
        return WRITE_FAILURES[code]
    return os.strerror(code).lower() if code else "unknown error"


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Within the block, an OS error (also one reported by safetensors or tokenizers)
    becomes a :class:`WriteError` naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except Exception as exc:
        code = os_error_code(exc)
        if code is None:
            raise
        raise WriteError(path, describe_os_error(code), code) from None


def _umask() -> int:
    try:  # Linux: read it without changing it (no race with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def match_umask(path: Path) -> None:
    """Give ``path`` (a file, or every file and folder under it) the mode an ordinary file
    (0666) or folder (0777) gets under the umask: safetensors writes its files owner-only."""
    mask = _umask()
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if item.is_symlink():
            continue
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically: a temporary file, flushed to disk, then renamed.
    On failure the temporary file is removed and :class:`WriteError` raised; ``path``
    keeps its previous content."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` (flushed to disk). A failed write is cut off again, so the
    file keeps only whole lines, and raises :class:`WriteError`."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


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
    """Write JSON atomically (:func:`write_text`)."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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
    ``folder.old``: :func:`recover_folder` puts that back. A write that fails removes the
    temporary folder and raises :class:`WriteError` naming the file under ``folder``
    (``write`` raises it: its writes go through :func:`writing` or the writers here).
    Files written owner-only by a library get the umask's mode (:func:`match_umask`).
    """
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    try:
        with writing(folder):
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        try:
            write(tmp)
        except WriteError as exc:  # name the file where it will live, not its temporary name
            raise WriteError(exc.path.replace(str(tmp), str(folder), 1), exc.reason, exc.errno, exc.hint) from None
        with writing(folder):
            match_umask(tmp)
            if folder.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
            os.replace(tmp, folder)
    except BaseException:
        with contextlib.suppress(OSError):  # drop the temporary folder; put the old one back if it was moved
            recover_folder(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(folder: Path) -> None:
    """Undo a kill during :func:`write_folder`: restore ``folder.old``, drop ``folder.tmp``."""
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and old.is_dir():
        os.replace(old, folder)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + ".tmp"), ignore_errors=True)
