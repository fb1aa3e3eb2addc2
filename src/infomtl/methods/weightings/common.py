"""What the loss-balancing weightings share: TW, SI, UW, GLS, DWA, IMTL-L, RLW, DTP
(one module each, beside this one), and the per-task KPI the objectives report.

Conventions (docs/methods.md, "Loss weighters"):

* Methods that *weight* the losses, ``L = Σ_t w_t ℓ_t + aux`` (TW, DWA, RLW), write
  their rule in the mean-1 convention ``Σ_t w_t = T``; the default ``normalize="mean"``
  divides the weights by the number of tasks present P (``Σ_t w_t = 1``: the papers'
  task balance), ``normalize="sum"`` keeps them (EW is then the plain sum). DTP's weights are its focal weights
  ``−(1−κ̄)^γ log κ̄`` as the rule defines them (each in (0, 4.6]), not rescaled.
* Methods that *define the total loss* directly (SI, UW, GLS, IMTL-L) override
  :meth:`~infomtl.methods.base.Weighting.combine`; the ``(T,)`` weights they return
  (for the log only) are the **effective weights** ``w_t = ∂L/∂ℓ_t`` (detached), so
  that the step's gradient is ``Σ_t w_t ∇ℓ_t`` in every case. ``normalize="mean"``
  divides their task part of the loss (and these weights) by P, except GLS, whose
  geometric mean already is a mean over tasks (``normalize`` has no effect on it).
* Tasks absent from a step get weight 0. All rules run on the device, in fp32, with
  no host synchronisation; state that must survive a checkpoint is either a
  parameter/persistent buffer (UW and IMTL-L ``s``, DTP ``κ̄``) or JSON through
  :meth:`extra_state` (DWA's loss history, RLW's generator).
* ``log_values()`` reports, under the method's name, the current weights by task name
  (and learned scalars / KPIs where the method has them), as plain floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from infomtl.methods.base import LossTerms, LossWeighter, WeightingHyper, device_index
from infomtl.tasks import Task, TaskKind

#: ε of docs/methods.md (ratios, logarithms, projections)
EPS = 1e-8


def task_kpi(task: Task, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A 0-d KPI in [0, 1] of one task's batch rows (no gradient, no host sync).

    * classification: batch accuracy of ``argmax output``;
    * multi-label: mean per-label accuracy of ``sigmoid(output) > task.threshold``
      (= accuracy over all row × label cells);
    * regression: ``clip(1 − MSE/Var, 0, 1)`` per output (the batch R², Var the
      population variance of the batch targets, + ε), averaged over outputs. A batch
      with one row (Var = 0) scores 0 unless its error is 0.
    """
    with torch.no_grad():
        output = output.detach().float()
        if task.kind is TaskKind.CLASSIFICATION:
            return (output.argmax(dim=-1) == target).float().mean()
        if task.kind is TaskKind.MULTILABEL:
            pred = torch.sigmoid(output) > task.threshold
            return (pred == (target > 0.5)).float().mean()
        y = target.detach().float().reshape(output.shape)
        if output.ndim == 1:
            output, y = output.unsqueeze(-1), y.unsqueeze(-1)
        mse = (output - y).pow(2).mean(dim=0)
        var = y.var(dim=0, unbiased=False)
        return (1 - mse / (var + EPS)).clamp(0, 1).mean()


class SeededRandom:
    """A method's own ``torch.Generator``, created on the device where it draws.

    The generator lives on the device of the draws (a CUDA generator on a GPU), so a
    draw costs no host-to-device copy or synchronisation. It is seeded with ``seed``
    on first use; :meth:`state` / :meth:`load` carry its state through JSON as a list
    of ints (``Generator.get_state()``). A state saved on one device type and loaded on
    another cannot be restored (the generators differ): it restarts from ``seed``.
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:  # the run's seed: the trainer seeds torch before building the method
            seed = torch.initial_seed() % (2**63)
        self.seed = int(seed)
        self._gen: torch.Generator | None = None
        self._pending: dict[str, Any] | None = None

    def get(self, device: torch.device | str) -> torch.Generator:
        device = torch.device(device)
        if self._gen is None or self._gen.device != device:
            gen = torch.Generator(device=device)
            pending = self._pending
            if (
                pending is not None
                and pending.get("device") == device.type
                and pending.get("state")
            ):
                gen.set_state(torch.tensor(pending["state"], dtype=torch.uint8))
            else:
                gen.manual_seed(self.seed)
            self._gen, self._pending = gen, None
        return self._gen

    def state(self) -> dict[str, Any]:
        if self._gen is not None:
            return {
                "seed": self.seed,
                "device": self._gen.device.type,
                "state": self._gen.get_state().tolist(),
            }
        return {"seed": self.seed, **(self._pending or {"device": None, "state": None})}

    def load(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.seed = int(state.get("seed", self.seed))
        self._pending = {"device": state.get("device"), "state": state.get("state")}
        self._gen = None


@dataclass
class SeedHyper(WeightingHyper):
    """``seed`` of the method's own generator; −1 = the run's seed (``torch.initial_seed()``
    when the method is built, which the trainer has just set)."""

    seed: int = -1


def by_task(tasks: list[Task], values: torch.Tensor) -> dict[str, float]:
    """``values`` (one per task) as plain floats by task name."""
    return {t.name: float(v) for t, v in zip(tasks, values.detach().cpu().tolist(), strict=True)}


class LoggedWeighter(LossWeighter):
    """A ``Σ w ℓ`` weighter that remembers its last ``(T,)`` weights for the log."""

    def __init__(self, hp: WeightingHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self._last: torch.Tensor | None = None

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        total, w = super().combine(terms)
        self._last = w
        return total, w

    def log_values(self) -> dict[str, Any]:
        return (
            {self.name: {"weights": by_task(self.tasks, self._last)}}
            if self._last is not None
            else {}
        )


class DirectLoss(LossWeighter):
    """A method that defines its total loss directly from the present tasks' losses.

    Subclasses implement :meth:`task_loss` (the loss of the present tasks) and
    :meth:`weights` (the detached effective weights ``∂L/∂ℓ_t``).
    """

    def __init__(self, hp: WeightingHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self._last: torch.Tensor | None = None

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        present = sorted(terms.task_losses)
        losses = torch.stack([terms.task_losses[t] for t in present]).float()
        index = device_index(present, losses.device)
        total = self.task_loss(losses, index)
        with torch.no_grad():
            w = self.weights(losses.detach(), index)
        scale = self.task_scale(len(present))
        total = self.add_extras(total * scale, terms)
        w = w * scale
        full = torch.zeros(self.num_tasks, device=losses.device, dtype=w.dtype)
        self._last = full.index_copy(0, index, w)
        return total, self._last

    def log_values(self) -> dict[str, Any]:
        return (
            {self.name: {"weights": by_task(self.tasks, self._last)}}
            if self._last is not None
            else {}
        )
