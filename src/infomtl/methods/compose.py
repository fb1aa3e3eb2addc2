"""A training method: one objective composed with one weighting.

``Method`` is what the trainer talks to; it never asks which method it runs.
Regime rules: a weighting that needs every task's loss each step, or an objective
that needs every task's rows (both ``needs_all_tasks``), refuses the
one-task-per-step regimes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.methods.base import BackwardContext, LossTerms
from infomtl.methods.registry import OBJECTIVES, WEIGHTINGS, MethodSpec
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task

SINGLE_TASK_REGIMES = ("per-task", "temperature", "ratios", "autosem")


class Method(nn.Module):
    """Objective + weighting, with the hooks the trainer calls."""

    def __init__(
        self,
        spec: MethodSpec,
        tasks: list[Task],
        hidden_size: int,
        train_sizes: list[int],
        head_dropout: float = 0.0,
        head_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.tasks = tasks
        self.objective = OBJECTIVES[spec.objective](
            spec.objective_hp, tasks, hidden_size, head_dropout, head_hidden
        )
        self.weighting = WEIGHTINGS[spec.weighting](spec.weighting_hp, tasks, train_sizes)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def views(self) -> int:
        return self.objective.views

    def regime(self, requested: str | None) -> str:
        """The batching regime: the user's choice if it can work, else the method's default."""
        if requested in (None, "auto"):
            return self.weighting.default_regime
        if requested in SINGLE_TASK_REGIMES and len(self.tasks) > 1:
            if self.weighting.needs_all_tasks:
                raise ConfigError(
                    f"method {self.name} needs every task's loss in each step; regime "
                    f"{requested!r} holds one task per step (use mixed or uniform)"
                )
            if self.objective.needs_all_tasks:
                raise ConfigError(
                    f"method {self.name}: objective {self.spec.objective} needs every task's rows "
                    f"in each step; regime {requested!r} holds one task per step (use mixed or uniform)"
                )
        return requested

    def build_decoder(self) -> nn.Module:
        return self.objective.build_decoder()

    def loss(self, out: ModelOutput, batch: Batch) -> tuple[torch.Tensor, LossTerms, torch.Tensor]:
        """Total loss, its terms, and the ``(T,)`` task weights of this step."""
        terms = self.objective.loss_terms(out, batch)
        terms.representation = out.h
        terms.task_graphs = out.task_graphs
        total, weights = self.weighting.combine(terms)
        return total, terms, weights

    def backward(self, total: torch.Tensor, terms: LossTerms, ctx: BackwardContext) -> None:
        self.weighting.backward(total, terms, ctx)

    def on_step_end(self, terms: LossTerms) -> None:
        """After every optimizer step (annealing, projections of learned scalars...)."""
        self.objective.on_step_end(terms)
        self.weighting.on_step_end(terms)

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        """After every epoch, with its mean training loss per task."""
        self.objective.on_epoch_end(epoch, mean_losses)
        self.weighting.on_epoch_end(epoch, mean_losses)

    def extra_state(self) -> dict[str, Any]:
        return {"objective": self.objective.extra_state(), "weighting": self.weighting.extra_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.objective.load_extra_state(state.get("objective", {}))
        self.weighting.load_extra_state(state.get("weighting", {}))

    def log_values(self) -> dict[str, Any]:
        return {**self.objective.log_values(), **self.weighting.log_values()}

    def write_artifacts(self, folder: Path) -> None:
        self.objective.write_artifacts(folder)
        self.weighting.write_artifacts(folder)
