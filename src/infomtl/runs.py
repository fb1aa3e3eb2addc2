"""Working with finished run folders: re-scoring a saved run on any split.

An STL folder (``--method stl`` / ``stl-cnn``) is scored task by task and combined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from infomtl.checkpoint import load_run
from infomtl.data.batching import encode
from infomtl.errors import InfomtlError
from infomtl.evaluation import predict_splits, score_predictions


def evaluate_run(
    run_dir: str | Path, split: str = "test", data_dir: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Rebuild a run's best checkpoint and score it on ``split`` of its tasks' data.

    The data are read as the run was configured (same tasks, same limits on
    evaluation rows); ``data_dir`` points at a moved data root.
    """
    from infomtl import stl
    from infomtl.training import prepare_data

    if stl.is_single_task_run(run_dir):
        return stl.evaluate_single_task_run(run_dir, split, data_dir, batch_size)

    run = load_run(run_dir)
    config = run.config
    if data_dir is not None:
        config.data_dir = data_dir
    data = prepare_data(config)
    missing = [t.name for t in run.tasks if split not in data.splits.get(t.name, {})]
    if missing:
        raise InfomtlError(f"no {split} split for task(s) {', '.join(missing)}")
    splits = [encode(data.splits[t.name][split], run.backbone.tokenizer, config.max_length) for t in run.tasks]
    pad = run.backbone.tokenizer.pad_token_id or 0
    preds, loss = predict_splits(
        run.model, run.method, run.tasks, splits, batch_size, int(pad), torch.device("cpu")
    )
    groups = [data.splits[t.name][split].groups for t in run.tasks]
    scored = score_predictions(run.tasks, [s.labels for s in splits], preds, groups)
    return {**scored, "loss": loss}
