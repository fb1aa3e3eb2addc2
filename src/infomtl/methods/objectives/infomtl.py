"""InfoMTL (Hu et al., "Towards Robust Multi-Task Learning ... Information-Theoretic",
AAAI 2025): shared information maximisation + task-specific information minimisation.

    L = Σ_t w_t [ CE(z_t, y) + β · KL_t ] + α · L_NCE

* **SIMax**: the encoder runs once on the doubled batch ``[x; x]`` (train mode), the
  halves ``h``, ``h⁺`` differing only by dropout; ``L_NCE = CE(q kᵀ/τ, arange(B))``
  with ``q, k`` the normalised views. ``log B − L_NCE`` lower-bounds I(X; Z).
* **TIMin**: a Gaussian head per task in the label space,
  ``z_t = μ + σ ⊙ ε``; ``KL_t`` = per-row ``KL(N(μ, σ²) ‖ N(0, I))`` averaged over the
  C_t dimensions, reduced class-balanced by default (mean within each class present
  in the batch, summed over classes, as the authors' code); prediction = argmax μ.

Log (``log.jsonl``, ``train``, epoch means): ``ce`` and ``kl`` per task, ``task_loss`` (the
mean over tasks of ``ℓ_t = CE_t + β·KL_t``), ``nce`` (L_NCE) and ``alpha_nce`` (α·L_NCE, the
term added once to the mean task loss): the balance of SIMax against the tasks.

Ablations: ``simax=False`` (α = 0, one view: w/o SIMax), ``timin=False`` (linear
heads: w/o TIMin); both off is EW.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from infomtl.data.encoding import Batch
from infomtl.methods.base import Ablation, Hyper, LossTerms, Objective
from infomtl.methods.registry import register_objective
from infomtl.methods.weightings.common import task_kpi
from infomtl.modeling.bounds import KL_REDUCTIONS, gaussian_kl, info_nce, reduce_kl
from infomtl.modeling.heads import GaussianHead, LinearHead
from infomtl.modeling.losses import task_loss
from infomtl.modeling.model import ModelOutput, TaskHeads
from infomtl.tasks import TaskKind


@dataclass
class InfoMTLHyper(Hyper):
    """Defaults: the paper's RoBERTa setting (BERT: beta=1, alpha=0.01, tau=0.1)."""

    alpha: float = 0.1
    beta: float = 0.01
    tau: float = 1.0
    simax: bool = True
    timin: bool = True
    kl_reduction: str = "class_balanced"

    def validate(self) -> None:
        if not (self.alpha >= 0 and self.beta >= 0):  # also rejects NaN
            raise ValueError("alpha and beta must be >= 0")
        if not self.tau > 0:
            raise ValueError("tau must be > 0")
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}")


@register_objective
class InfoMTL(Objective):
    """SIMax (InfoNCE over two dropout views) + TIMin (Gaussian heads, KL to N(0, I))."""

    name = "infomtl"
    reference = "Hu et al., AAAI 2025 (InfoMTL)"
    Hyper = InfoMTLHyper
    ablations = (
        Ablation("simax", "SIMax", "without shared information maximisation (alpha = 0, one view)"),
        Ablation("timin", "TIMin", "without task-specific information minimisation (linear heads)"),
    )
    without_all = "w/o SIMax & TIMin (= EW)"
    ablations_reduce_to_ew = True
    hp: InfoMTLHyper

    @property
    def views(self) -> int:  # type: ignore[override]
        return 2 if self.hp.simax and self.hp.alpha > 0 else 1

    def build_decoder(self) -> TaskHeads:
        d, p, hidden = self.hidden_size, self.head_dropout, self.head_hidden
        heads: list[nn.Module]
        if self.hp.timin:
            heads = [GaussianHead(d, t.num_outputs, p, hidden) for t in self.tasks]
        else:
            heads = [LinearHead(d, t.num_outputs, p) for t in self.tasks]
        return TaskHeads(heads)

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        losses, kpis = {}, {}
        parts: dict[tuple[str, int | None], torch.Tensor] = {}
        for t, o in out.heads.items():
            task, y = self.tasks[t], batch.labels[t]
            ce = task_loss(task, o.train_output, y)
            kpis[t] = task_kpi(task, o.train_output, y)
            parts[("ce", t)] = ce.detach()
            loss = ce
            if o.logvar is not None:
                kl_rows = gaussian_kl(o.mean, o.logvar).mean(dim=-1)
                labels = y if task.kind is TaskKind.CLASSIFICATION else None
                kl = reduce_kl(kl_rows, self.hp.kl_reduction, labels, task.num_outputs)
                parts[("kl", t)] = kl.detach()
                loss = loss + self.hp.beta * kl
            losses[t] = loss
        aux = None
        parts[("task_loss", None)] = torch.stack([v.detach() for v in losses.values()]).mean()
        if out.h_views is not None:
            nce = info_nce(out.h, out.h_views, self.hp.tau)
            parts[("nce", None)] = nce.detach()
            aux = self.hp.alpha * nce
            parts[("alpha_nce", None)] = aux.detach()
        return LossTerms(losses, aux, parts, kpis)
