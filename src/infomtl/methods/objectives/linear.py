"""The deterministic objective of the weighting baselines: linear heads, task losses only.

``ℓ_t = loss_t(W_t · Dropout(h) + b_t, y)`` (cross-entropy, BCE or MSE by task kind).
"""

from __future__ import annotations

from infomtl.data.encoding import Batch
from infomtl.methods.base import LossTerms, Objective
from infomtl.methods.registry import register_objective
from infomtl.methods.weightings.common import task_kpi
from infomtl.modeling.heads import LinearHead
from infomtl.modeling.losses import task_loss
from infomtl.modeling.model import ModelOutput, TaskHeads


@register_objective
class LinearObjective(Objective):
    """Linear task heads on the shared representation (the MTL baselines' architecture)."""

    name = "linear"
    reference = "Caruana 1997 (hard parameter sharing)"
    row_separable = True

    def build_decoder(self) -> TaskHeads:
        return TaskHeads(
            [LinearHead(self.hidden_size, t.num_outputs, self.head_dropout) for t in self.tasks]
        )

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        losses = {
            t: task_loss(self.tasks[t], o.train_output, batch.labels[t]) for t, o in out.heads.items()
        }
        kpis = {
            t: task_kpi(self.tasks[t], o.train_output, batch.labels[t]) for t, o in out.heads.items()
        }
        return LossTerms(losses, None, {("ce", t): v.detach() for t, v in losses.items()}, kpis)
