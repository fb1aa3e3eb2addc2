"""Loss-balancing baselines: TW, SI, UW, GLS, DWA, IMTL-L, RLW, DTP.

Conventions (METHODS.md, "Loss weighters"):

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

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from infomtl.methods.base import LossTerms, LossWeighter, WeightingHyper, device_index
from infomtl.methods.registry import register_weighting
from infomtl.tasks import Task, TaskKind

#: ε of METHODS.md (ratios, logarithms, projections)
EPS = 1e-8
#: SI's floor on a task loss before its logarithm
SI_FLOOR = 1e-4


# -- the per-task KPI (DTP) ------------------------------------------------------------


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


# -- pure rules (tested on numbers) ----------------------------------------------------


def tw_weights(train_sizes: list[int] | torch.Tensor) -> torch.Tensor:
    """TW: ``w_t = T · N_t / Σ_s N_s`` (mean 1)."""
    n = torch.as_tensor(train_sizes, dtype=torch.float32)
    if n.ndim != 1 or len(n) == 0 or bool((n <= 0).any()):
        raise ValueError(f"TW needs a positive training size per task, got {train_sizes!r}")
    return len(n) * n / n.sum()


def si_loss(losses: torch.Tensor) -> torch.Tensor:
    """SI: ``L = Σ_t log max(ℓ_t, 1e-4)``."""
    return losses.float().clamp_min(SI_FLOOR).log().sum()


def uw_loss(losses: torch.Tensor, s: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
    """UW: ``Σ_t c_t e^{−s_t} ℓ_t + ½ s_t`` with ``c_t = ½`` for regression, else 1."""
    c = torch.where(regression, 0.5, 1.0).to(s.dtype)
    return (c * torch.exp(-s) * losses.float() + 0.5 * s).sum()


def gls_loss(losses: torch.Tensor) -> torch.Tensor:
    """GLS: ``L = exp(mean_t log(ℓ_t + ε))`` in fp32 (the geometric mean, no underflow)."""
    return torch.exp(torch.log(losses.float() + EPS).mean())


def dwa_weights(prev: torch.Tensor, prev2: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """DWA: ``w = T · softmax(r / temperature)``, ``r_t = L̄_t(e−1) / (L̄_t(e−2) + ε)``."""
    r = prev.float() / (prev2.float() + EPS)
    return len(r) * torch.softmax(r / temperature, dim=0)


def imtl_l_loss(losses: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """IMTL-L: ``L = Σ_t (e^{s_t} ℓ_t − s_t)``."""
    return (torch.exp(s) * losses.float() - s).sum()


def rlw_weights(noise: torch.Tensor) -> torch.Tensor:
    """RLW: ``w = T · softmax(ε)`` (so that ``Σ_t w_t ℓ_t = T · Σ_t λ_t ℓ_t``)."""
    return len(noise) * torch.softmax(noise.float(), dim=0)


def dtp_update(kbar: torch.Tensor, kpi: torch.Tensor, ema: float = 0.1) -> torch.Tensor:
    """DTP's KPI average: ``κ̄ ← clip((1 − α) κ̄ + α κ, 0.01, 0.99)``."""
    return ((1 - ema) * kbar + ema * kpi.float()).clamp(0.01, 0.99)


def dtp_weights(kbar: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """DTP's focal weights ``w_t = −(1 − κ̄_t)^γ log κ̄_t`` (κ̄ clipped to [0.01, 0.99])."""
    k = kbar.float().clamp(0.01, 0.99)
    return -((1 - k) ** gamma) * torch.log(k)


# -- shared machinery ------------------------------------------------------------------


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


def _by_task(tasks: list[Task], values: torch.Tensor) -> dict[str, float]:
    return {t.name: float(v) for t, v in zip(tasks, values.detach().cpu().tolist(), strict=True)}


class _LoggedWeighter(LossWeighter):
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
            {self.name: {"weights": _by_task(self.tasks, self._last)}}
            if self._last is not None
            else {}
        )


class _DirectLoss(LossWeighter):
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
            {self.name: {"weights": _by_task(self.tasks, self._last)}}
            if self._last is not None
            else {}
        )


# -- TW --------------------------------------------------------------------------------


@register_weighting
class TaskSizeWeighting(_LoggedWeighter):
    """TW: ``w_t = T · N_t / Σ_s N_s`` with ``N_t`` the task's training examples.

    Fixed weights in proportion to task size; ``normalize="mean"`` gives the
    sum-to-1 proportions ``N_t / ΣN`` (TweetEval: 0.606 sentiment … 0.035 stance).
    Runs in any regime (a task absent from a step simply has no term).
    """

    name = "tw"
    reference = "task weighting by training-set size (e.g. Sanh et al. 2019 proportional mixing)"

    def __init__(self, hp: WeightingHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        if len(train_sizes) != len(tasks):
            raise ValueError(
                f"TW needs one training size per task, got {len(train_sizes)} for {len(tasks)}"
            )
        self.register_buffer("_weights", tw_weights(train_sizes), persistent=False)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self._weights.to(losses.device)[present].to(losses.dtype)

    def log_values(self) -> dict[str, Any]:
        w = self._weights / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"weights": _by_task(self.tasks, w)}}


# -- SI --------------------------------------------------------------------------------


@register_weighting
class ScaleInvariant(_DirectLoss):
    """SI: ``L = Σ_t log max(ℓ_t, 1e-4)``.

    Gradient ``Σ_t ∇ℓ_t / ℓ_t``: the effective weights are ``1/ℓ_t`` (0 where the loss
    is below the floor, whose gradient the clamp stops).
    """

    name = "si"
    reference = (
        "scale-invariant loss (log of each task loss), e.g. Lin et al. 2022 / Navon et al. 2022"
    )
    needs_all_tasks = True

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return si_loss(losses)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.where(losses > SI_FLOOR, 1 / losses.clamp_min(SI_FLOOR), 0.0)


# -- UW --------------------------------------------------------------------------------


@dataclass
class UWHyper(WeightingHyper):
    """``s_min``: lower bound of the learned ``s_t = log σ_t²``."""

    s_min: float = -5.0

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.s_min):
            raise ValueError("s_min must be a finite number")


@register_weighting
class UncertaintyWeighting(_DirectLoss):
    """UW: ``L = Σ_t c_t e^{−s_t} ℓ_t + ½ s_t``, ``c_t = 1`` (classification and
    multi-label: likelihoods of a categorical / Bernoulli), ``½`` (regression: a
    Gaussian likelihood), ``s_t = log σ_t²`` learnable, init 0, no weight decay.

    The bound ``s ≥ s_min`` (−5) is a projection: :meth:`on_step_end` clamps ``s`` in
    place after each optimizer step, so the loss and its gradient are those of the
    rule exactly (a clamp inside the loss would zero the gradient and could trap s).
    Effective weights ``c_t e^{−s_t}``.
    """

    name = "uw"
    aliases = ("uncertainty",)
    reference = "Kendall, Gal & Cipolla, CVPR 2018 (homoscedastic uncertainty weighting)"
    Hyper = UWHyper
    needs_all_tasks = True

    def __init__(self, hp: UWHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.s = nn.Parameter(torch.zeros(len(tasks)))
        regression = torch.tensor([t.kind is TaskKind.REGRESSION for t in tasks], dtype=torch.bool)
        self.register_buffer("_regression", regression, persistent=False)

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return uw_loss(losses, self.s[present], self._regression[present])

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        c = torch.where(self._regression[present], 0.5, 1.0)
        return c * torch.exp(-self.s.detach()[present])

    def on_step_end(self, terms: LossTerms) -> None:
        with torch.no_grad():
            self.s.clamp_(min=self.hp.s_min)

    def log_values(self) -> dict[str, Any]:
        c = torch.where(self._regression, 0.5, 1.0) / (
            self.num_tasks if self.hp.normalize == "mean" else 1
        )
        s = self.s.detach()
        return {
            self.name: {
                "s": _by_task(self.tasks, s),
                "weights": _by_task(self.tasks, c * torch.exp(-s)),
            }
        }


# -- GLS -------------------------------------------------------------------------------


@register_weighting
class GeometricLossStrategy(_DirectLoss):
    """GLS: ``L = (Π_t ℓ_t)^{1/T} = exp(mean_t log(ℓ_t + ε))``, computed in fp32.

    Effective weights ``∂L/∂ℓ_t = L / (T (ℓ_t + ε))`` (sum to 1 at equal losses): the
    geometric mean already is a mean over tasks, so ``normalize`` leaves it unchanged.
    """

    name = "gls"
    reference = "Chennupati et al., CVPR Workshops 2019 (MultiNet++, geometric loss strategy)"
    needs_all_tasks = True

    def task_scale(self, present: int) -> float:
        return 1.0

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return gls_loss(losses)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return gls_loss(losses) / (len(losses) * (losses + EPS))


# -- DWA -------------------------------------------------------------------------------


@dataclass
class DWAHyper(WeightingHyper):
    """``temperature`` of the softmax (2); ``window`` = 0: the paper's epoch rule; > 0:
    the step-window variant (loss means over consecutive windows of that many steps)."""

    temperature: float = 2.0
    window: int = 0

    def validate(self) -> None:
        super().validate()
        if not self.temperature > 0:  # also rejects NaN
            raise ValueError("temperature must be > 0")
        if self.window < 0:
            raise ValueError("window must be >= 0 (0 = epoch rule)")


@register_weighting
class DynamicWeightAverage(_LoggedWeighter):
    """DWA: ``w = T · softmax(r / 2)``, ``r_t = L̄_t(e−1) / (L̄_t(e−2) + ε)``.

    ``L̄_t`` are mean training losses: per epoch (from ``on_epoch_end``, ``window=0``,
    the paper's rule), or per window of ``window`` consecutive optimizer steps
    (``on_step_end``; windows run across epoch boundaries; for short fine-tuning).
    ``w = 1`` until two means exist (the first two epochs / windows). The last two
    means and a window in progress are kept in :meth:`extra_state`.
    """

    name = "dwa"
    reference = "Liu, Johns & Davison, CVPR 2019 (MTAN, dynamic weight average)"
    Hyper = DWAHyper
    needs_all_tasks = True

    def __init__(self, hp: DWAHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        t = len(tasks)
        # rows: L̄(e−2), L̄(e−1); `_filled` of them are real
        self.register_buffer("_history", torch.zeros(2, t), persistent=False)
        self.register_buffer("_window_sum", torch.zeros(t), persistent=False)
        self._filled = 0
        self._window_count = [0] * t
        self._window_steps = 0

    def _push(self, means: torch.Tensor) -> None:
        with torch.no_grad():
            self._history[0].copy_(self._history[1])
            self._history[1].copy_(means.detach().float())
        self._filled = min(self._filled + 1, 2)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self._filled < 2:
            return torch.ones_like(losses)
        history = self._history.to(losses.device)
        w = dwa_weights(history[1][present], history[0][present], self.hp.temperature)
        return w.to(losses.dtype)

    def current_weights(self) -> torch.Tensor:
        """The ``(T,)`` weights the next step uses (mean 1, before ``normalize``)."""
        if self._filled < 2:
            return torch.ones(self.num_tasks, device=self._history.device)
        return dwa_weights(self._history[1], self._history[0], self.hp.temperature)

    def on_step_end(self, terms: LossTerms) -> None:
        if self.hp.window <= 0:
            return
        with torch.no_grad():
            for t, value in terms.task_losses.items():
                self._window_sum[t] += value.detach().float().to(self._window_sum.device)
                self._window_count[t] += 1
        self._window_steps += 1
        if self._window_steps >= self.hp.window:
            means = torch.stack(
                [self._window_sum[t] / max(1, c) for t, c in enumerate(self._window_count)]
            )
            self._push(means)
            self._window_sum.zero_()
            self._window_count = [0] * self.num_tasks
            self._window_steps = 0

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        if self.hp.window <= 0:
            self._push(mean_losses.to(self._history.device))

    def extra_state(self) -> dict[str, Any]:
        return {
            "history": self._history[2 - self._filled :].tolist(),
            "window_sum": self._window_sum.tolist(),
            "window_count": list(self._window_count),
            "window_steps": self._window_steps,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if not state:
            return
        history = state.get("history", [])[-2:]
        with torch.no_grad():
            self._history.zero_()
            for row, values in zip(range(2 - len(history), 2), history, strict=True):
                self._history[row].copy_(torch.tensor(values, dtype=torch.float32))
            self._window_sum.copy_(torch.tensor(state.get("window_sum", [0.0] * self.num_tasks)))
        self._filled = len(history)
        self._window_count = [int(c) for c in state.get("window_count", [0] * self.num_tasks)]
        self._window_steps = int(state.get("window_steps", 0))

    def log_values(self) -> dict[str, Any]:
        w = self.current_weights() / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"weights": _by_task(self.tasks, w)}}


# -- IMTL-L ----------------------------------------------------------------------------


@dataclass
class IMTLLHyper(WeightingHyper):
    """``s_max``: upper bound of the learned loss scales ``s_t``."""

    s_max: float = 10.0

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.s_max):
            raise ValueError("s_max must be a finite number")


@register_weighting
class IMTLL(_DirectLoss):
    """IMTL-L (loss part of IMTL): ``L = Σ_t (e^{s_t} ℓ_t − s_t)``, ``s_t`` learnable,
    init 0, no weight decay; at the optimum ``e^{s_t} ℓ_t = 1`` (scale-balanced losses).

    The bound ``s ≤ s_max`` (10) is a projection applied in place after each
    optimizer step (:meth:`on_step_end`), so the gradient is the rule's exactly.
    Effective weights ``e^{s_t}``.
    """

    name = "imtl-l"
    aliases = ("imtl_l", "imtll")
    reference = "Liu et al., ICLR 2021 (Towards Impartial Multi-task Learning), loss balance part"
    Hyper = IMTLLHyper
    needs_all_tasks = True

    def __init__(self, hp: IMTLLHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.s = nn.Parameter(torch.zeros(len(tasks)))

    def task_loss(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return imtl_l_loss(losses, self.s[present])

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.s.detach()[present])

    def on_step_end(self, terms: LossTerms) -> None:
        with torch.no_grad():
            self.s.clamp_(max=self.hp.s_max)

    def log_values(self) -> dict[str, Any]:
        s = self.s.detach()
        w = torch.exp(s) / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {self.name: {"s": _by_task(self.tasks, s), "weights": _by_task(self.tasks, w)}}


# -- RLW -------------------------------------------------------------------------------


@dataclass
class SeedHyper(WeightingHyper):
    """``seed`` of the method's own generator; −1 = the run's seed (``torch.initial_seed()``
    when the method is built, which the trainer has just set)."""

    seed: int = -1


@register_weighting
class RandomLossWeighting(_LoggedWeighter):
    """RLW (normal): ``λ = softmax(ε)``, ``ε ~ N(0, I_T)`` drawn each training step from
    the method's own generator, ``L = T · Σ_t λ_t ℓ_t`` (weights ``T·λ``, mean 1).

    The generator (seed ``seed``) lives on the loss device; its state is kept in
    :meth:`extra_state`, so a resumed run draws the same sequence. Outside training
    mode (``.eval()``) no noise is drawn and ``w = 1`` (the expected weights).
    """

    name = "rlw"
    reference = "Lin et al., TMLR 2022 (Reasonable Effectiveness of Random Weighting)"
    Hyper = SeedHyper
    needs_all_tasks = True

    def __init__(self, hp: SeedHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.random = SeededRandom(hp.seed)

    def draw(self, device: torch.device) -> torch.Tensor:
        """ε ~ N(0, I_T), one value per task (the same draw whatever tasks are present)."""
        return torch.randn(self.num_tasks, generator=self.random.get(device), device=device)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return torch.ones_like(losses)
        return rlw_weights(self.draw(losses.device)[present]).to(losses.dtype)

    def extra_state(self) -> dict[str, Any]:
        return {"generator": self.random.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.random.load(state.get("generator", {}))


# -- DTP -------------------------------------------------------------------------------


@dataclass
class DTPHyper(WeightingHyper):
    """``kpi_ema``: EMA rate α of the KPI (0.1); ``focal_gamma``: γ (1, ours);
    ``kpi_init``: the KPI average before any step (0.5, ours)."""

    kpi_ema: float = 0.1
    focal_gamma: float = 1.0
    kpi_init: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not 0 < self.kpi_ema <= 1:
            raise ValueError("kpi_ema must be in (0, 1]")
        if not self.focal_gamma >= 0:  # also rejects NaN
            raise ValueError("focal_gamma must be >= 0")
        if not 0 < self.kpi_init < 1:
            raise ValueError("kpi_init must be in (0, 1)")


@register_weighting
class DynamicTaskPrioritization(_LoggedWeighter):
    """DTP: ``w_t = sg[−(1 − κ̄_t)^γ log κ̄_t]`` (focal weights: harder tasks weigh more).

    ``κ̄_t ← clip((1 − α) κ̄_t + α κ_t, 0.01, 0.99)`` with ``κ_t`` the batch KPI of the
    task in ``LossTerms.kpis`` (accuracy; regression clip(1 − MSE/Var, 0, 1);
    multi-label mean per-label accuracy; see :func:`task_kpi`), α = 0.1, γ = 1, and
    ``κ̄ = 0.5`` before the first step. The average is updated in :meth:`combine`
    (training mode only) *before* the step's weights are computed, so the step uses
    its own KPI. ``κ̄`` is a persistent buffer (checkpointed with the method's tensors).
    The weights are the rule's, not rescaled to mean 1.
    """

    name = "dtp"
    reference = "Guo et al., ECCV 2018 (Dynamic Task Prioritization); rule as in the MTL survey"
    Hyper = DTPHyper
    needs_all_tasks = True

    def __init__(self, hp: DTPHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp, tasks, train_sizes)
        self.register_buffer("kpi", torch.full((len(tasks),), float(hp.kpi_init)))

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [self.tasks[t].name for t in sorted(terms.task_losses) if t not in terms.kpis]
        if missing:
            raise ValueError(
                f"DTP needs a per-task KPI (LossTerms.kpis) but the objective gave none for "
                f"{', '.join(missing)}; fill it with infomtl.methods.loss_weighting.task_kpi"
            )
        if self.training:
            with torch.no_grad():
                for t in sorted(terms.task_losses):
                    kpi = terms.kpis[t].detach().to(self.kpi.device)
                    self.kpi[t] = dtp_update(self.kpi[t], kpi, self.hp.kpi_ema)
        return super().combine(terms)

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return dtp_weights(self.kpi.to(losses.device)[present], self.hp.focal_gamma).to(
            losses.dtype
        )

    def log_values(self) -> dict[str, Any]:
        w = dtp_weights(self.kpi, self.hp.focal_gamma)
        w = w / (self.num_tasks if self.hp.normalize == "mean" else 1)
        return {
            self.name: {"kpi": _by_task(self.tasks, self.kpi), "weights": _by_task(self.tasks, w)}
        }


__all__ = [
    "DTPHyper",
    "DWAHyper",
    "DynamicTaskPrioritization",
    "DynamicWeightAverage",
    "GeometricLossStrategy",
    "IMTLL",
    "IMTLLHyper",
    "RandomLossWeighting",
    "ScaleInvariant",
    "SeedHyper",
    "SeededRandom",
    "TaskSizeWeighting",
    "UWHyper",
    "UncertaintyWeighting",
    "dtp_update",
    "dtp_weights",
    "dwa_weights",
    "gls_loss",
    "imtl_l_loss",
    "rlw_weights",
    "si_loss",
    "task_kpi",
    "tw_weights",
    "uw_loss",
]
