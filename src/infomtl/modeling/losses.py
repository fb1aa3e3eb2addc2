"""Per-task supervised losses, chosen by the task's kind.

* classification: cross-entropy;
* multi-label: binary cross-entropy with logits, averaged over rows and labels;
* regression: mean squared error averaged over rows and outputs.

Losses are computed in fp32 whatever the autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from infomtl.tasks import Task, TaskKind


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ℓ_t: mean loss of task ``task`` over its rows (``output`` ``(N, C)`` or ``(N, D)``)."""
    output = output.float()
    if task.kind is TaskKind.CLASSIFICATION:
        return F.cross_entropy(output, target)
    if task.kind is TaskKind.MULTILABEL:
        return F.binary_cross_entropy_with_logits(output, target.float())
    return F.mse_loss(output, target.float())


def predict(task: Task, output: torch.Tensor) -> torch.Tensor:
    """Predictions from head means: class ids, 0/1 label matrix, or regression values."""
    if task.kind is TaskKind.CLASSIFICATION:
        return output.argmax(dim=-1)
    if task.kind is TaskKind.MULTILABEL:
        return (torch.sigmoid(output.float()) > task.threshold).to(torch.int64)
    return output.float()
