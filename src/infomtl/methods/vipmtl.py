"""VIP-MTL (Hu et al., ACL 2025): InfoMTL's probabilistic decoding (Gaussian heads in
the label space, KL to N(0, I)) plus **variance normalisation** of each task's output.

    z_t  = μ_t + exp(log σ_t²/2) ⊙ ε,   ε ~ N(0, I)           (the InfoMTL Gaussian head)
    z'_t = z_t / exp(s_t/2)        (training),   z'_t = μ_t / exp(s_t/2)   (test)
    L    = Σ_t w_t [ loss_t(z'_t, y) + β · KL_t ]  +  Σ_t γ_t · s_t

* ``s_t = log σ'_t`` is one learnable scalar per task (init 0), σ'_t the approximate
  variance of the task's mixture distribution; ``γ_t · s_t`` bounds it from above.
* ``loss_t`` is cross-entropy, BCE (multi-label) or MSE (regression) by task kind, on
  the normalised sample.
* ``KL_t`` = per-row ``KL(N(μ_t, σ_t²) ‖ N(0, I))`` of the head's Gaussian *before* the
  normalisation (InfoMTL's TIMin term, so that ``s_t`` is driven by the task loss and
  ``γ_t s_t`` alone), averaged over the C_t dimensions and reduced as InfoMTL does:
  ``kl_reduction="class_balanced"`` (default) for classification, the plain mean for
  regression and multi-label tasks (there is no class to balance over).
* γ depends on the task kind: ``gamma`` (default 1) for classification and multi-label
  tasks, ``gamma_regression`` (default 0.1) for regression (METHODS.md: γ ∈ {1, 10}
  classification, {0.1, 1} regression). β (``beta``) defaults to 0.01 (RoBERTa/TweetEval).
  Dropout on the mean branch is the model's ``head_dropout`` (0.2 TweetEval, 0 AffectEval
  in the presets); ``head_hidden`` adds InfoMTL's optional hidden layer.

**Prediction.** Classification: ``argmax μ/exp(s/2) = argmax μ``. Regression: the
prediction is ``μ/exp(s/2)``, the **trained output scale** (the MSE is taken on the
normalised output, so that is the quantity fitted to the targets; μ alone is not).

**Where s_t lives.** The evaluation reads ``HeadOutput.mean`` from the decoder, so the
normalisation must happen inside the head: each task's
:class:`~infomtl.heads.VarianceNormalizedGaussianHead` owns its ``s_t`` as a 0-d
parameter of the *model* (not of the method, so it is in exactly one optimizer group).
The trainer gives every parameter with ``ndim < 2`` no weight decay, so ``s_t`` has none,
as a method-owned scalar would. The objective reads ``s_t`` from the head output for the
``γ_t s_t`` term and reaches the built decoder through a plain list for the log.

**The γ·s term is part of the auxiliary loss**, added once and not weighted: ``s_t`` is
unbounded below, so ``γ_t s_t`` can be negative, and weightings assume non-negative task
losses (SI and GLS take their logarithms, UW's optimum needs ℓ_t > 0). With EW this is
the rule above exactly; with another weighting (``--method vipmtl --weighting uw``) the
weighting sees ``ℓ_t = loss_t + β KL_t``, as with InfoMTL.

Ablations (paper): ``variance_norm=False`` is "w/o VI" (s_t frozen at 0, not trainable,
no γ term: InfoMTL's TIMin heads without SIMax); "w/o VIP" (deterministic heads) is EW
(``--method ew``).

Log: components ``("ce", t)``, ``("kl", t)`` and ``("s", t)`` (the current s_t, with
variance normalisation on); :meth:`VIPMTL.log_values` reports ``s`` and ``σ' = e^s``
by task name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from infomtl.data.batching import Batch
from infomtl.heads import NormalizedHeadOutput, VarianceNormalizedGaussianHead
from infomtl.information import KL_REDUCTIONS, gaussian_kl, reduce_kl
from infomtl.losses import task_loss
from infomtl.methods.base import Hyper, LossTerms, Objective
from infomtl.methods.loss_weighting import task_kpi
from infomtl.methods.registry import register_objective
from infomtl.model import ModelOutput, TaskHeads
from infomtl.tasks import Task, TaskKind


@dataclass
class VIPMTLHyper(Hyper):
    """Defaults: β = 0.01 (RoBERTa/TweetEval), γ = 1 (classification and multi-label),
    γ = 0.1 (regression); ``variance_norm=False`` is the "w/o VI" ablation."""

    beta: float = 0.01
    gamma: float = 1.0
    gamma_regression: float = 0.1
    variance_norm: bool = True
    kl_reduction: str = "class_balanced"

    def validate(self) -> None:
        for name in ("beta", "gamma", "gamma_regression"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):  # also rejects NaN
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}")


@register_objective
class VIPMTL(Objective):
    """InfoMTL's Gaussian heads + variance normalisation z' = z / exp(s_t/2), + γ·s_t.

    s_t is one learnable scalar per task (init 0) inside the task's head; prediction
    μ / exp(s_t/2) (see the module docstring for the full rule and the design).
    """

    name = "vipmtl"
    aliases = ("vip-mtl",)
    reference = "Hu et al., ACL 2025 (VIP-MTL)"
    Hyper = VIPMTLHyper

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a plain list, so that the decoder's parameters (s_t among them) are not also
        # the method's: each parameter is in exactly one optimizer group
        self._decoders: list[TaskHeads] = []

    def gamma_of(self, task: Task) -> float:
        """γ_t: ``gamma_regression`` for a regression task, else ``gamma``."""
        return self.hp.gamma_regression if task.kind is TaskKind.REGRESSION else self.hp.gamma

    def build_decoder(self) -> TaskHeads:
        d, p, hidden = self.hidden_size, self.head_dropout, self.head_hidden
        decoder = TaskHeads([
            VarianceNormalizedGaussianHead(d, t.num_outputs, p, hidden, self.hp.variance_norm)
            for t in self.tasks
        ])
        self._decoders[:] = [decoder]
        return decoder

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        losses, parts, kpis = {}, {}, {}
        aux: torch.Tensor | None = None
        for t, o in out.heads.items():
            task, y = self.tasks[t], batch.labels[t]
            ce = task_loss(task, o.train_output, y)
            kpis[t] = task_kpi(task, o.train_output, y)
            parts[("ce", t)] = ce.detach()
            if isinstance(o, NormalizedHeadOutput) and o.raw_mean is not None:
                mu, logvar, s = o.raw_mean, o.raw_logvar, o.log_scale
            else:  # a plain Gaussian head output: no normalisation
                mu, logvar, s = o.mean, o.logvar, None
            loss = ce
            if logvar is not None:
                kl_rows = gaussian_kl(mu, logvar).mean(dim=-1)
                labels = y if task.kind is TaskKind.CLASSIFICATION else None
                kl = reduce_kl(kl_rows, self.hp.kl_reduction, labels, task.num_outputs)
                parts[("kl", t)] = kl.detach()
                loss = loss + self.hp.beta * kl
            losses[t] = loss
            if self.hp.variance_norm and s is not None:
                s = s.float()
                parts[("s", t)] = s.detach()
                term = self.gamma_of(task) * s
                aux = term if aux is None else aux + term
        return LossTerms(losses, aux, parts, kpis)

    def log_scales(self) -> torch.Tensor | None:
        """The ``(T,)`` current s_t of the built decoder (detached, CPU), or ``None``."""
        if not self._decoders:
            return None
        return torch.stack([h.log_scale.detach().float().cpu() for h in self._decoders[0].heads])

    def log_values(self) -> dict[str, Any]:
        s = self.log_scales()
        if s is None:
            return {}
        names = [t.name for t in self.tasks]
        return {
            self.name: {
                "s": dict(zip(names, s.tolist(), strict=True)),
                "sigma": dict(zip(names, s.exp().tolist(), strict=True)),
            }
        }
