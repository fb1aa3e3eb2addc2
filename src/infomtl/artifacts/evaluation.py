"""Prediction and scoring of a trained model on whole splits, and re-scoring a saved run.

:func:`predict_splits` and :func:`score_predictions` score a model in memory (the
trainer's validation and test); :func:`evaluate_run` rebuilds a run folder's best
checkpoint and scores it on any split (an STL folder task by task, combined).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from infomtl.artifacts.run_folder import RunFolder, load_run
from infomtl.data.encoding import EncodedSplit, collate, encode
from infomtl.data.loading import prepare_data
from infomtl.distributed import all_gather_object
from infomtl.errors import InfomtlError
from infomtl.fileio import read_json, write_text, writing
from infomtl.methods import Method
from infomtl.methods.single_task import combine_scores
from infomtl.metrics import average, score_task, task_score
from infomtl.modeling.losses import predict
from infomtl.modeling.model import MultiTaskModel
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
    rank: int = 0,
    world_size: int = 1,
    progress: str | None = None,
) -> tuple[list[np.ndarray], float]:
    """Predictions of every task on its split (input order) and the mean validation loss.

    ``progress``: the description of a progress bar over this process's batches (on
    stderr), or None for no bar.

    Rows are sorted by length and batched per task (little padding); the loss is
    the objective's per-task loss on the head means, averaged over rows, summed
    over tasks.

    With ``world_size`` > 1 (every training process calls it, with its ``rank``), the
    same batches are dealt out in turn (batch k of a task to process ``k mod
    world_size``) and every process receives all predictions and per-batch losses,
    summed in the one-process order: each process returns the one-process result.
    """
    was_training = model.training
    model.eval()
    done: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    orders = [np.argsort(split.lengths, kind="stable") for split in splits]
    mine = [(t, k, start) for t, order in enumerate(orders)
            for k, start in enumerate(range(0, len(order), batch_size)) if k % world_size == rank]
    for t, k, start in tqdm(mine, desc=progress, disable=progress is None, leave=False, dynamic_ncols=True,
                            unit="batch"):
        idx = orders[t][start : start + batch_size]
        step = [idx if s == t else np.zeros(0, dtype=np.int64) for s in range(len(tasks))]
        batch = collate(splits, step, pad_id).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(batch, views=1)
        terms = method.objective.loss_terms(out, batch)
        done[(t, k)] = (predict(tasks[t], out.heads[t].mean).cpu(), terms.task_losses[t].float() * len(idx))
    if world_size > 1:
        done = {
            key: (pred, loss.to(device))
            for part in all_gather_object({key: (p, v.cpu()) for key, (p, v) in done.items()})
            for key, (pred, loss) in part.items()
        }
    preds: list[np.ndarray] = []
    loss_total = 0.0
    for t, order in enumerate(orders):
        batches = range(math.ceil(len(order) / batch_size))
        loss_sum = torch.zeros((), device=device)
        for k in batches:
            loss_sum += done[(t, k)][1]
        out_rows = [done[(t, k)][0] for k in batches]
        pred = torch.cat(out_rows).numpy() if out_rows else np.zeros(0)
        restored = np.empty_like(pred)
        restored[order] = pred
        preds.append(restored)
        loss_total += float(loss_sum) / max(1, len(order))
    model.train(was_training)
    return preds, loss_total


def score_predictions(
    tasks: list[Task],
    golds: list[np.ndarray],
    preds: list[np.ndarray],
    groups: Sequence[Sequence[str] | None] | None = None,
) -> dict[str, Any]:
    """``{"tasks": {task: {metric: score}}, "scores": {task: task score}, "avg": Avg}``.

    With ``groups`` (per task, a group name per row, or None), the result also holds
    ``"groups": {task: {group: {metric: score}}}`` for the tasks that have groups
    (stance targets, EI-reg emotions): every metric of the task on that group's
    rows alone, groups in order of first appearance. These are reported only; Avg
    is always over the whole split.
    """
    per_task = {t.name: score_task(t, g, p) for t, g, p in zip(tasks, golds, preds, strict=True)}
    out: dict[str, Any] = {
        "tasks": per_task,
        "scores": {t.name: task_score(t, per_task[t.name]) for t in tasks},
        "avg": average(tasks, per_task),
    }
    if groups is not None:
        per_group = {
            t.name: score_groups(t, g, p, rows)
            for t, g, p, rows in zip(tasks, golds, preds, groups, strict=True)
            if rows is not None
        }
        if per_group:
            out["groups"] = per_group
    return out


def score_groups(
    task: Task, gold: np.ndarray, pred: np.ndarray, groups: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``{group: {metric: score}}``: :func:`~infomtl.metrics.score_task` on each group's rows.

    A group too small or too uniform for a metric gets that metric's degenerate
    value (0 for a correlation of a constant or a single row), never an error.
    """
    names = np.asarray(groups, dtype=object)
    if len(names) != len(gold):
        raise ValueError(f"task {task.name!r}: {len(names)} groups but {len(gold)} rows")
    gold, pred = np.asarray(gold), np.asarray(pred)
    return {
        str(name): score_task(task, gold[names == name], pred[names == name])
        for name in dict.fromkeys(groups)
    }


def write_predictions(folder: Path, tasks: list[Task], preds: list[np.ndarray]) -> None:
    """``folder/{task}.txt``: one prediction per line, aligned with the input file.

    Classification: the label id; multi-label: comma-separated label ids;
    regression: tab-separated values with 9 significant digits (float32 precision, so that
    scores recomputed from the file match the run's even for nearly constant predictions).
    """
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    for task, pred in zip(tasks, preds, strict=True):
        if task.kind is TaskKind.CLASSIFICATION:
            lines = [str(int(p)) for p in pred]
        elif task.kind is TaskKind.MULTILABEL:
            lines = [",".join(str(i) for i in np.flatnonzero(row)) for row in pred]
        else:
            lines = ["\t".join(f"{v:.9g}" for v in np.atleast_1d(row)) for row in pred]
        write_text(folder / f"{task.name}.txt", "".join(line + "\n" for line in lines))


def evaluate_run(
    run_dir: str | Path, split: str = "test", data_dir: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Rebuild a run's best checkpoint and score it on ``split`` of its tasks' data.

    The data are read as the run was configured (same tasks, same limits on
    evaluation rows); ``data_dir`` points at a moved data root.
    """
    if RunFolder(Path(run_dir)).single_task:
        return evaluate_single_task_run(run_dir, split, data_dir, batch_size)

    run = load_run(run_dir)
    config = run.config
    if data_dir is not None:
        config.data.data_dir = data_dir
    data = prepare_data(config)
    missing = [t.name for t in run.tasks if split not in data.splits.get(t.name, {})]
    if missing:
        raise InfomtlError(f"no {split} split for task(s) {', '.join(missing)}")
    splits = [encode(data.splits[t.name][split], run.backbone.tokenizer, config.model.max_length) for t in run.tasks]
    pad = run.backbone.tokenizer.pad_token_id or 0
    preds, loss = predict_splits(
        run.model, run.method, run.tasks, splits, batch_size, int(pad), torch.device("cpu")
    )
    groups = [data.splits[t.name][split].groups for t in run.tasks]
    scored = score_predictions(run.tasks, [s.labels for s in splits], preds, groups)
    return {**scored, "loss": loss}


def evaluate_single_task_run(
    folder: str | Path, split: str = "test", data_dir: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Re-score every task's run of an STL folder on ``split`` and combine (Avg over tasks)."""
    parts = RunFolder(Path(folder)).parts()
    tasks: list[Task] = []
    scored: dict[str, dict[str, Any]] = {}
    for name, sub in parts.items():
        meta_path = sub / "run.json"
        try:
            task = Task.from_dict(read_json(meta_path)["tasks"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InfomtlError(f"{meta_path}: malformed ({exc})") from None
        if task.name != name:
            raise InfomtlError(f"{meta_path}: holds task {task.name!r}, expected {name!r}")
        tasks.append(task)
        scored[name] = evaluate_run(sub, split, data_dir=data_dir, batch_size=batch_size)
    return combine_scores(tasks, scored)
