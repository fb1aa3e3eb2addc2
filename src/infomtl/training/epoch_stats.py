"""The per-epoch training statistics of ``log.jsonl``'s ``train`` entry: epoch means of the
step's total loss, of every named loss component (``ce``, ``kl``, ``nce``... per task or for
the batch) and of the task weights, and each task's mean training loss (what DWA reads).
Sums stay on the device during the epoch; :meth:`EpochStats.summary` reads them once.
A run stopped mid-epoch saves them (:meth:`EpochStats.state`) so that the resumed epoch's
means are those of the uninterrupted one."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from infomtl.methods import LossTerms

#: Name prefix of the saved sums among a training state's tensors.
PREFIX = "epoch_stats."


class EpochStats:
    """Accumulates one epoch's steps (no host synchronisation until :meth:`summary`)."""

    def __init__(self, task_names: list[str], device: torch.device) -> None:
        self.names = task_names
        self.sums: dict[tuple[str, int | None], torch.Tensor] = defaultdict(lambda: torch.zeros((), device=device))
        self.counts: dict[tuple[str, int | None], int] = defaultdict(int)
        self.task_loss_sum = torch.zeros(len(task_names), device=device)
        self.task_loss_count = torch.zeros(len(task_names), device=device)

    def add(self, total: torch.Tensor, terms: LossTerms, weights: torch.Tensor) -> None:
        """Record one step: its total loss, its components, and the present tasks' losses and weights."""
        self._add(("loss", None), total.detach())
        for key, value in terms.components.items():
            self._add(key, value)
        for t, value in terms.task_losses.items():
            self.task_loss_sum[t] += value.detach()
            self.task_loss_count[t] += 1
            self._add(("w", t), weights[t])

    def _add(self, key: tuple[str, int | None], value: torch.Tensor) -> None:
        self.sums[key] += value
        self.counts[key] += 1

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The sums so far as tensors (``epoch_stats.*``, on the CPU) and their keys and counts (JSON)."""
        keys = list(self.sums)
        tensors = {f"{PREFIX}sum.{i}": self.sums[k].detach().cpu() for i, k in enumerate(keys)}
        tensors[f"{PREFIX}task_loss_sum"] = self.task_loss_sum.detach().cpu()
        tensors[f"{PREFIX}task_loss_count"] = self.task_loss_count.detach().cpu()
        meta = {"keys": [[name, t] for name, t in keys], "counts": [self.counts[k] for k in keys]}
        return tensors, meta

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from what :meth:`state` saved."""
        device = self.task_loss_sum.device
        for i, ((name, t), count) in enumerate(zip(meta["keys"], meta["counts"], strict=True)):
            key = (str(name), None if t is None else int(t))
            self.sums[key] = tensors[f"{PREFIX}sum.{i}"].to(device)
            self.counts[key] = int(count)
        self.task_loss_sum = tensors[f"{PREFIX}task_loss_sum"].to(device)
        self.task_loss_count = tensors[f"{PREFIX}task_loss_count"].to(device)

    def mean_task_losses(self) -> torch.Tensor:
        """``(T,)`` mean training loss of each task over the steps that held it (0 if none)."""
        return self.task_loss_sum / self.task_loss_count.clamp_min(1)

    def summary(self) -> dict[str, Any]:
        """``{"loss": ..., "ce": {task: ...}, "weights": {task: ...}, ...}``: the epoch means."""
        out: dict[str, Any] = {}
        for (name, t), total in self.sums.items():
            n = self.counts.get((name, t), 0)
            if n == 0:
                continue
            value = float(total) / n
            if t is None:
                out[name] = value
            else:
                out.setdefault("weights" if name == "w" else name, {})[self.names[t]] = value
        return out
