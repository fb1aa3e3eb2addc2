"""The answer cache: every reply on disk as soon as it arrives, so nothing is asked twice.

One JSONL file per task (``CACHE/{task}.jsonl``), one line per answer::

    {"key": "<sha256 of backend, model, generation settings and messages>", "reply": "..."}

A line is appended with one write, then flushed and fsynced, so a killed run keeps
every answer it had received; the next run (``--resume``, or any run sharing the
cache folder) reads them back and asks only for the rest. A torn last line (a kill in
the middle of a write, so never a whole answer) is skipped when the file is read and
cut off before the next append; any other line that is not a cache entry is an error
naming the file and line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from infomtl.errors import DataError
from infomtl.fileio import JSONError, loads_json


def answer_key(backend: str, model: str, settings: dict[str, Any], messages: list[dict[str, str]]) -> str:
    """The cache key of one question: SHA-256 of the canonical JSON of what decides its answer."""
    data = {"backend": backend, "model": model, "settings": settings, "messages": messages}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AnswerCache:
    """The cache folder (see the module docstring): read once per task, appended to after."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._files: dict[str, Any] = {}

    def path(self, task: str) -> Path:
        return self.folder / f"{task}.jsonl"

    def load(self, task: str) -> dict[str, str]:
        """``{key: reply}`` of every complete line of the task's file (none if there is no file)."""
        path = self.path(task)
        if not path.is_file():
            return {}
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DataError(path, "not UTF-8; not an answer cache") from None
        lines = text.split("\n")
        replies: dict[str, str] = {}
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            torn = lineno == len(lines)  # no newline after it: the write was cut short
            try:
                entry = loads_json(line)
            except JSONError:
                if torn:
                    break
                raise DataError(path, "not a line of an answer cache (expected JSON with 'key' and 'reply')",
                                line=lineno) from None
            if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("reply"), str)):
                if torn:
                    break
                raise DataError(path, "expected an object with a string 'key' and 'reply'", line=lineno)
            replies.setdefault(entry["key"], entry["reply"])
        return replies

    def append(self, task: str, key: str, reply: str) -> None:
        """Write one answer for good: one line, flushed and fsynced."""
        handle = self._files.get(task)
        if handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path(task)
            _drop_torn_line(path)
            handle = open(path, "ab")  # noqa: SIM115 - kept open for the run, closed by close()
            self._files[task] = handle
        line = json.dumps({"key": key, "reply": reply}, ensure_ascii=False) + "\n"
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_line(path: Path) -> None:
    """Cut a last line that has no newline (a write cut short by a kill) off the file."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        size = fh.seek(0, os.SEEK_END)
        block = 4096
        end = size
        while end > 0:  # find the last newline, reading backwards
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                break
            end = start
        else:
            fh.truncate(0)
        fh.flush()
        os.fsync(fh.fileno())
