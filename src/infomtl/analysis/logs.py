"""Reading a run's per-epoch log (``log.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infomtl.errors import InfomtlError


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The epoch records of ``RUN_DIR/log.jsonl`` (one-line errors for a missing or bad file)."""
    folder = Path(run_dir)
    log = folder / "log.jsonl"
    if not log.is_file():
        raise InfomtlError(f"{folder}: no log.jsonl (is it a run folder written by `infomtl train`?)")
    records = []
    for n, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InfomtlError(f"{log}:{n}: not valid JSON ({exc})") from None
    return records
