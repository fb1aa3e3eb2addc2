"""The optimizer and learning-rate schedule of a run."""

from __future__ import annotations

import torch
from torch import nn

from infomtl.config import TrainConfig
from infomtl.methods import Method
from infomtl.modeling.heads import TASK_SCALAR_NAMES
from infomtl.modeling.model import MultiTaskModel


def build_optimizer(cfg: TrainConfig, model: MultiTaskModel, method: Method) -> torch.optim.Optimizer:
    """Three groups: model weights (weight decay), biases/LayerNorm/0-d parameters (none),
    and the **learned task scalars** (UW's and IMTL-L's ``s_t``, VIP-MTL's learned
    ``log Σ'_t``): no weight decay, ``--scalar-lr`` (default ``--lr``), and outside the
    clipped gradient norm (the group is marked ``task_scalars``): their gradients (γ or ½
    per task) would otherwise take up the norm and shrink every other gradient.

    A fourth group holds the **sharing units** of learning to share (layer-mixture weights
    and scales, cross-stitch α): no weight decay, ``--sharing-lr`` (default 5e-3, whatever
    ``--lr``: a few scalars that must move far; Misra et al. 2016 likewise give their units a
    learning rate 10²–10³ times the network's).

    The update runs as few passes over memory as torch offers on every device (left to
    itself, torch takes the per-tensor loop on a CPU): AdamW ``fused``, Adamax ``foreach``
    (it has no fused kernel). On MiniLM's 22.6M parameters on 2 CPU cores: AdamW 70 → 10 ms
    a step, Adamax 92 → 56 ms (``benchmarks/RESULTS.md``)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    scalars = [p for p in method.parameters() if p.requires_grad]
    sharing = model.sharing.unit_parameters() if model.sharing is not None else []
    units = {id(p) for p in sharing}
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in units:
            continue
        if name.rsplit(".", 1)[-1] in TASK_SCALAR_NAMES:
            scalars.append(param)
        else:
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if scalars:
        lr = cfg.optim.lr if cfg.optim.scalar_lr is None else cfg.optim.scalar_lr
        groups.append({"params": scalars, "weight_decay": 0.0, "lr": lr, "task_scalars": True})
    if sharing:
        groups.append({"params": sharing, "weight_decay": 0.0, "lr": cfg.optim.sharing_lr})
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr, fused=True)
    return torch.optim.Adamax(groups, lr=cfg.optim.lr, foreach=True)


def clipped_parameters(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    """The parameters whose gradient norm is clipped: all but the task-scalar group's."""
    return [p for g in optimizer.param_groups if not g.get("task_scalars") for p in g["params"]]


def build_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``--warmup-ratio`` of the steps, then constant or linear decay."""
    warmup = int(cfg.optim.warmup_ratio * total_steps)
    linear = cfg.optim.lr_schedule == "linear"

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if linear:
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
