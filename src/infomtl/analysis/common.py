"""Shared helpers of the analyses: rebuilding a run's evaluation split, writing
CSV, importing matplotlib lazily."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infomtl.artifacts.run_folder import LoadedRun
from infomtl.data.encoding import Batch, EncodedSplit, collate, encode
from infomtl.data.loading import prepare_data
from infomtl.errors import InfomtlError

log = logging.getLogger(__name__)


def load_eval_split(run: LoadedRun, split: str = "test", max_examples: int | None = None) -> list[EncodedSplit]:
    """Each task's ``split`` as the run was configured (as ``infomtl evaluate`` rebuilds
    it), tokenized; with ``max_examples``, only the first rows of each task."""
    data = prepare_data(run.config)
    missing = [t.name for t in run.tasks if split not in data.splits.get(t.name, {})]
    if missing:
        raise InfomtlError(f"no {split} split for task(s) {', '.join(missing)}")
    length = run.config.model.max_length
    splits = [encode(data.splits[t.name][split], run.backbone.tokenizer, length) for t in run.tasks]
    if max_examples is not None:
        if max_examples < 1:
            raise InfomtlError("--max-examples must be at least 1")
        splits = [
            EncodedSplit(
                s.input_ids[:max_examples],
                None if s.token_type_ids is None else s.token_type_ids[:max_examples],
                s.labels[:max_examples],
            )
            for s in splits
        ]
    return splits


def task_batches(
    splits: list[EncodedSplit], t: int, batch_size: int, pad_id: int, device: torch.device
) -> Iterator[tuple[np.ndarray, Batch]]:
    """Length-sorted batches of task ``t``'s rows: ``(row indices, batch)``."""
    order = np.argsort(splits[t].lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        step = [idx if s == t else np.zeros(0, dtype=np.int64) for s in range(len(splits))]
        yield idx, collate(splits, step, pad_id).to(device)


def pad_id(run: LoadedRun) -> int:
    return int(run.backbone.tokenizer.pad_token_id or 0)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A CSV file (floats as written by ``repr``, NaN as empty)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the Agg backend, or ``None`` (and one line said) without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("plot skipped: matplotlib is not installed (pip install 'infomtl[plots]')")
        return None
    return plt


def nan_to_none(value: Any) -> Any:
    """JSON-safe copy: NaN floats become ``null``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return value


def out_folder(out: str | Path | None, default: Path) -> Path:
    folder = Path(out) if out else default
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InfomtlError(f"{folder}: cannot create output folder ({exc.strerror or exc})") from None
    return folder
