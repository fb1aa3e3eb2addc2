"""Prediction and scoring of a trained model on whole splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from infomtl.data.batching import EncodedSplit, collate
from infomtl.losses import predict
from infomtl.methods import Method
from infomtl.metrics import average, score_task, task_score
from infomtl.model import MultiTaskModel
from infomtl.tasks import Task, TaskKind


@torch.no_grad()
def predict_splits(
    model: MultiTaskModel,
    method: Method,
    tasks: list[Task],
    splits: list[EncodedSplit],
    batch_size: int,
    pad_id: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[list[np.ndarray], float]:
    """Predictions of every task on its split (input order) and the mean validation loss.

    Rows are sorted by length and batched per task (little padding); the loss is
    the objective's per-task loss on the head means, averaged over rows, summed
    over tasks.
    """
    was_training = model.training
    model.eval()
    preds: list[np.ndarray] = []
    loss_total = 0.0
    for t, (task, split) in enumerate(zip(tasks, splits, strict=True)):
        order = np.argsort(split.lengths, kind="stable")
        out_rows: list[torch.Tensor] = []
        loss_sum = torch.zeros((), device=device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            step = [idx if s == t else np.zeros(0, dtype=np.int64) for s in range(len(tasks))]
            batch = collate(splits, step, pad_id).to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = model(batch, views=1)
            terms = method.objective.loss_terms(out, batch)
            loss_sum += terms.task_losses[t].float() * len(idx)
            out_rows.append(predict(task, out.heads[t].mean).cpu())
        pred = torch.cat(out_rows).numpy() if out_rows else np.zeros(0)
        restored = np.empty_like(pred)
        restored[order] = pred
        preds.append(restored)
        loss_total += float(loss_sum) / max(1, len(order))
    model.train(was_training)
    return preds, loss_total


def score_predictions(
    tasks: list[Task], golds: list[np.ndarray], preds: list[np.ndarray]
) -> dict[str, object]:
    """``{"tasks": {task: {metric: score}}, "scores": {task: task score}, "avg": Avg}``."""
    per_task = {t.name: score_task(t, g, p) for t, g, p in zip(tasks, golds, preds, strict=True)}
    return {
        "tasks": per_task,
        "scores": {t.name: task_score(t, per_task[t.name]) for t in tasks},
        "avg": average(tasks, per_task),
    }


def write_predictions(folder: Path, tasks: list[Task], preds: list[np.ndarray]) -> None:
    """``folder/{task}.txt``: one prediction per line, aligned with the input file.

    Classification: the label id; multi-label: comma-separated label ids;
    regression: tab-separated values.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for task, pred in zip(tasks, preds, strict=True):
        if task.kind is TaskKind.CLASSIFICATION:
            lines = [str(int(p)) for p in pred]
        elif task.kind is TaskKind.MULTILABEL:
            lines = [",".join(str(i) for i in np.flatnonzero(row)) for row in pred]
        else:
            lines = ["\t".join(f"{v:.6g}" for v in np.atleast_1d(row)) for row in pred]
        path = folder / f"{task.name}.txt"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(path)
