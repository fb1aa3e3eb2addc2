"""The inputs and outputs of ``infomtl predict``: texts (and pairs) read from plain
text, JSONL or TSV; predictions written as JSONL or TSV.

Importing this module is cheap (no torch): the CLI reads its choices when it builds
its parser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from infomtl.data.textio import read_text, split_lines
from infomtl.errors import DataError, InfomtlError
from infomtl.fileio import JSONError, loads_json
from infomtl.tasks import Task, TaskKind

INPUT_FORMATS = ("text", "jsonl", "tsv")
OUTPUT_FORMATS = ("jsonl", "tsv")


def detect_format(path: str, given: str | None) -> str:
    """The input format: ``given``, else by extension (``.jsonl``/``.json``, ``.tsv``), else text."""
    if given:
        return given
    suffix = Path(path).suffix.lower() if path != "-" else ""
    return {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv"}.get(suffix, "text")


def read_inputs(path: str, fmt: str | None = None, stdin: TextIO | None = None
                ) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs, if the input has any) from a file or ``-`` (stdin).

    * ``text``: one text per line;
    * ``jsonl``: one object per line with ``"text"`` and optional ``"text_pair"``;
    * ``tsv``: text in the first column, optional pair in the second; an optional
      header line whose first column is ``text``.

    Every line counts: an empty text is an error naming the line (outputs stay
    aligned with input lines), as is bad JSON or a missing ``"text"``.
    """
    fmt = detect_format(path, fmt)
    if fmt not in INPUT_FORMATS:
        raise InfomtlError(f"unknown input format {fmt!r}; expected one of {', '.join(INPUT_FORMATS)}")
    if path == "-":
        where = "<stdin>"
        stream = stdin if stdin is not None else sys.stdin
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        if isinstance(raw, bytes):
            try:
                content = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                bad_line = raw.count(b"\n", 0, exc.start) + 1
                raise DataError(where, "invalid UTF-8 on standard input", line=bad_line) from None
        else:
            content = raw
    else:
        where = path
        content = read_text(Path(path))
    lines = [line[:-1] if line.endswith("\r") else line for line in split_lines(content)]
    texts: list[str] = []
    pairs: list[str | None] = []
    start = 0
    if fmt == "tsv" and lines and lines[0].split("\t")[0].strip().lower() == "text":
        start = 1
    for lineno, line in enumerate(lines[start:], start + 1):
        pair: str | None = None
        if fmt == "jsonl":
            if not line.strip():
                raise DataError(where, "empty line (expected a JSON object with a \"text\" field)", line=lineno)
            try:
                row = loads_json(line)
            except JSONError as exc:
                raise DataError(where, f"not valid JSON ({exc.reason})", line=lineno) from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise DataError(where, "expected a JSON object with a string \"text\" field", line=lineno)
            text = row["text"]
            if row.get("text_pair") is not None:
                if not isinstance(row["text_pair"], str):
                    raise DataError(where, "\"text_pair\" must be a string", line=lineno)
                pair = row["text_pair"]
        elif fmt == "tsv":
            cols = line.split("\t")
            if len(cols) > 2:
                raise DataError(where, f"{len(cols)} columns; expected text and an optional pair", line=lineno)
            text = cols[0]
            pair = cols[1] if len(cols) == 2 else None
        else:
            text = line
        if not text.strip():
            raise DataError(where, "empty text (every line must hold one text)", line=lineno)
        texts.append(text)
        pairs.append(pair)
    if not texts:
        raise DataError(where, "no texts")
    if all(p is None for p in pairs):
        return texts, None
    return texts, [p or "" for p in pairs]


def write_outputs(out: TextIO, fmt: str, tasks: list[Task], texts: list[str],
                  pairs: list[str] | None, predictions: list[dict[str, dict[str, Any]]]) -> None:
    """JSONL (``{"text", ["text_pair"], "predictions": {task: ...}}`` per line) or TSV
    (a header, then the text and each task's label/score columns)."""
    if fmt == "jsonl":
        for i, (text, pred) in enumerate(zip(texts, predictions, strict=True)):
            row: dict[str, Any] = {"text": text}
            if pairs is not None:
                row["text_pair"] = pairs[i]
            row["predictions"] = pred
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    if fmt != "tsv":
        raise InfomtlError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
    names = set(predictions[0]) if predictions else set()
    chosen = [t for t in tasks if t.name in names]
    header = ["text"]
    for task in chosen:
        if task.kind is TaskKind.CLASSIFICATION:
            header += [task.name, f"{task.name}_probability"]
        elif task.kind is TaskKind.MULTILABEL:
            header += [task.name]
        elif len(task.targets) == 1:
            header += [task.name]
        else:
            header += [f"{task.name}_{target}" for target in task.targets]
    out.write("\t".join(header) + "\n")
    for text, pred in zip(texts, predictions, strict=True):
        cells = [" ".join(text.split())]
        for task in chosen:
            p = pred[task.name]
            if task.kind is TaskKind.CLASSIFICATION:
                cells += [p["label"], f"{p['probability']:.6f}"]
            elif task.kind is TaskKind.MULTILABEL:
                cells += [",".join(p["labels"])]
            elif "value" in p:
                cells += [f"{p['value']:.6g}"]
            else:
                cells += [f"{v:.6g}" for v in p["values"].values()]
        out.write("\t".join(cells) + "\n")
