"""Base classes of the methods.

A training method is an **objective** (what the heads are and which auxiliary
terms are added) composed with a **weighting** (how the per-task losses, or their
gradients, are combined):

    L = combine_t( ℓ_t )  +  aux

* :class:`Objective`: builds the decoder (task heads, possibly a bottleneck), says
  how many encoder views it needs, and turns a model output into per-task losses
  ``ℓ_t`` and an unweighted auxiliary term (InfoMTL: ``ℓ_t = CE_t + β·KL_t``,
  ``aux = α·L_NCE``).
* :class:`LossWeighter`: ``L = (1/P) Σ_t w_t ℓ_t + (1/P) Σ_t a_t + aux`` with weights
  from the losses, P the number of tasks present in the step. **Task balance** (the
  papers' EW, λ_t = 1/|T|, InfoMTL Eq. 2/4/6, VIP-MTL Eq. 6): the rules write their
  weights with mean 1 (``Σ_t w_t = T``) and the default ``normalize="mean"`` divides
  the task part of the total by P, so EW is the *mean* task loss and α, β, γ weigh
  against one task's loss whether a step holds one task (``per-task``) or six
  (``mixed``). ``normalize="sum"`` keeps the plain sum (α then acts T times weaker).
  ``a_t`` are per-task terms that are averaged but never weighted (VIP-MTL's γ·s_t).
* :class:`~infomtl.methods.aggregation.GradientAggregator`: combines per-task
  gradients of the shared parameters (or of the representation); it overrides
  :meth:`Weighting.backward`.

Hyperparameters are a typed dataclass per method (``Hyper``); method-owned
parameters (learnable task scalars) live on the method module and go to their own
optimizer group without weight decay. Non-tensor state (loss history, generator
state) goes through :meth:`Weighting.extra_state` so that checkpoints hold it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from infomtl.data.encoding import Batch
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task


@dataclass
class LossTerms:
    """What an objective computes from one step's model output.

    Attributes:
        task_losses: ``ℓ_t`` per present task index, the quantities a weighting combines.
        aux: an unweighted auxiliary loss of the whole batch, added once (already scaled
            by its coefficient; InfoMTL's α·L_NCE), or ``None``.
        components: named parts for the log, e.g. ``ce`` / ``kl`` per task index
            and ``nce`` as a scalar (key ``(name, task)`` or ``(name, None)``).
        kpis: a detached 0-d KPI in [0, 1] per present task index, computed from the
            head output the loss used (batch accuracy; regression clip(1 − MSE/Var, 0, 1);
            multi-label mean per-label accuracy), for weightings that need one (DTP).
            Objectives fill it with :func:`infomtl.methods.weightings.common.task_kpi`.
        task_aux: per-task unweighted terms (already scaled; VIP-MTL's γ_t·log Σ'_t):
            averaged over the present tasks like the task losses (summed under
            ``normalize="sum"``) but never weighted, since they may be negative.
        representation: the shared representation ``h`` the heads read (``ModelOutput.h``,
            set by :meth:`~infomtl.methods.compose.Method.loss`), for the gradient
            aggregators' ``grad_space=rep``.
        task_graphs: the step was encoded task by task (``ModelOutput.task_graphs``, set by
            :meth:`~infomtl.methods.compose.Method.loss`): each ``ℓ_t``'s graph holds only
            task t's rows and its own head (``grads=split``).
    """

    task_losses: dict[int, torch.Tensor]
    aux: torch.Tensor | None = None
    components: dict[tuple[str, int | None], torch.Tensor] = field(default_factory=dict)
    kpis: dict[int, torch.Tensor] = field(default_factory=dict)
    task_aux: dict[int, torch.Tensor] = field(default_factory=dict)
    representation: torch.Tensor | None = None
    task_graphs: bool = False


@dataclass(frozen=True)
class Ablation:
    """A component of a method that a variant switches off: the boolean hyperparameter
    ``key`` set to False (``--ablate KEY``), the papers' ``name`` of the component (the
    report's "w/o NAME" row) and what the variant trains without it."""

    key: str
    name: str
    help: str


@dataclass
class Hyper:
    """Base of the hyperparameter dataclasses (no fields). ``unhashed`` names the fields
    that choose how, not what, is computed (the same update up to rounding): a run's id
    leaves them out, as it does ``--compile``."""

    unhashed: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Raise ``ValueError`` for an invalid value."""


#: the hyperparameter base under another name, for annotations inside classes whose
#: ``Hyper`` class attribute shadows it
BaseHyper = Hyper


class Component(nn.Module):
    """What objectives and weightings share: a name, hyperparameters, a reference."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""
    Hyper: ClassVar[type[BaseHyper]] = BaseHyper
    hp: BaseHyper

    def __init__(self, hp: BaseHyper) -> None:
        super().__init__()
        self.hp = hp

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self.hp, f.name)!r}" for f in dataclasses.fields(self.hp))

    def extra_state(self) -> dict[str, Any]:
        """JSON-serialisable non-tensor state (override where there is some)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def log_values(self) -> dict[str, Any]:
        """Values for the per-epoch log (task weights, learned scalars...)."""
        return {}

    def write_artifacts(self, folder: Path) -> None:
        """Write method-specific outputs (e.g. a task clustering) into the run folder."""

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        """Called with the epoch's mean training loss per task."""

    def on_step_end(self, terms: LossTerms) -> None:
        """Called after every optimizer step."""


class Objective(Component):
    """A representation objective: heads, views, per-task losses, auxiliary terms."""

    #: encoder views per step (2 = doubled batch for a contrastive term)
    views: int = 1
    #: the weighting this objective runs with when the user names none (MT-VIB: ``uw``)
    default_weighting: ClassVar[str] = "ew"
    #: the objective needs other tasks' rows in every step (VMTL's priors): no ``per-task`` regime
    needs_all_tasks: ClassVar[bool] = False
    #: the decoder reads token states ``(states, attention_mask, rows)`` instead of pooled ``h``
    token_states: ClassVar[bool] = False
    #: the components an ablation switches off (each a boolean hyperparameter)
    ablations: ClassVar[tuple[Ablation, ...]] = ()
    #: the ablation table's name for EW, the variant without everything the method adds
    #: ("w/o SIMax & TIMin (= EW)"); None: no such row
    without_all: ClassVar[str | None] = None
    #: switching every ablation off gives EW's model (so a trained variant replaces that row)
    ablations_reduce_to_ew: ClassVar[bool] = False
    #: the decoder has layers shared by the tasks above ``h`` (a bottleneck)
    shared_decoder: ClassVar[bool] = False
    #: each task's loss reads only its own rows, through its own head of a plain
    #: :class:`~infomtl.modeling.model.TaskHeads` (no term across rows or tasks), so a step
    #: may be encoded task by task (``grads=split`` of the gradient aggregators)
    row_separable: ClassVar[bool] = False

    def __init__(
        self, hp: BaseHyper, tasks: list[Task], hidden_size: int, head_dropout: float, head_hidden: int
    ) -> None:
        super().__init__(hp)
        self.tasks = tasks
        self.hidden_size = hidden_size
        self.head_dropout = head_dropout
        self.head_hidden = head_hidden

    def build_decoder(self) -> nn.Module:
        """The module mapping ``(h, rows)`` to per-task head outputs and extras."""
        raise NotImplementedError

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        raise NotImplementedError


@dataclass
class WeightingHyper(Hyper):
    """Shared by all weightings: ``normalize="mean"`` (default, the papers' balance: the
    task part of the loss is divided by the number of tasks present, Σw = 1 for EW) or
    ``"sum"`` (Σw = T for EW)."""

    normalize: str = "mean"

    def validate(self) -> None:
        if self.normalize not in ("sum", "mean"):
            raise ValueError(f"normalize must be 'sum' or 'mean', got {self.normalize!r}")


class Weighting(Component):
    """Combines the per-task losses (or gradients) of a step into one update."""

    Hyper: ClassVar[type[WeightingHyper]] = WeightingHyper
    hp: WeightingHyper
    #: the method needs every task's loss in every step (no ``per-task`` regime)
    needs_all_tasks: ClassVar[bool] = False
    #: regime the trainer picks when the user does not choose one
    default_regime: ClassVar[str] = "mixed"
    #: the weighting asks for a step encoded task by task (each task's rows in a forward of
    #: their own, so a backward of one task's loss runs over its rows only)
    task_graphs: bool = False

    def __init__(self, hp: WeightingHyper, tasks: list[Task], train_sizes: list[int]) -> None:
        super().__init__(hp)
        self.tasks = tasks
        self.train_sizes = train_sizes

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def no_task_graphs(self, reason: str) -> None:
        """The trainer cannot encode this run's steps task by task (``reason``)."""

    def task_scale(self, present: int) -> float:
        """The factor of the task part of the loss: ``1/P`` (``normalize="mean"``, P tasks
        present) or 1 (``"sum"``)."""
        return 1.0 / max(present, 1) if self.hp.normalize == "mean" else 1.0

    def add_extras(self, total: torch.Tensor, terms: LossTerms) -> torch.Tensor:
        """``total + scale · Σ_t a_t + aux``: the objective's unweighted terms, per-task ones
        balanced like the task losses (see :class:`LossTerms`)."""
        if terms.task_aux:
            extra = torch.stack([terms.task_aux[t].float() for t in sorted(terms.task_aux)]).sum()
            total = total + extra * self.task_scale(len(terms.task_losses))
        if terms.aux is not None:
            total = total + terms.aux
        return total

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        """Total loss of the step and the ``(T,)`` weights used (0 for absent tasks)."""
        raise NotImplementedError

    def backward(self, total: torch.Tensor, terms: LossTerms, ctx: BackwardContext) -> None:
        """Backpropagate the step. Loss weighters backpropagate ``total``."""
        ctx.backward(total)

    @classmethod
    def check_objective(cls, hp: WeightingHyper, objective: type[Objective]) -> None:
        """Raise ``ValueError`` where hyperparameters ``hp`` cannot work with ``objective``
        (checked by :func:`~infomtl.methods.registry.resolve_method`)."""


class LossWeighter(Weighting):
    """``L = scale · Σ_t w_t ℓ_t + extras``, with :meth:`weights` giving ``w`` (mean-1
    convention) and ``scale = 1/P`` by default (:meth:`Weighting.task_scale`)."""

    def weights(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights ``(P,)`` of the present tasks ``present`` (indices) given their losses."""
        raise NotImplementedError

    def combine(self, terms: LossTerms) -> tuple[torch.Tensor, torch.Tensor]:
        present = sorted(terms.task_losses)
        losses = torch.stack([terms.task_losses[t] for t in present])
        index = device_index(present, losses.device)
        w = self.weights(losses, index) * self.task_scale(len(present))
        total = self.add_extras((w * losses).sum(), terms)
        full = torch.zeros(self.num_tasks, device=losses.device, dtype=w.dtype)
        return total, full.index_copy(0, index, w.detach())


def device_index(values: list[int], device: torch.device) -> torch.Tensor:
    """A long tensor of ``values`` on ``device``, copied without blocking the host (a
    blocking host-to-device copy would wait for the queued GPU work every step)."""
    return torch.tensor(values, dtype=torch.long).to(device, non_blocking=True)


def _identity(tensor: torch.Tensor) -> None:
    """One process: nothing to average."""


@dataclass
class BackwardContext:
    """What a weighting's ``backward`` may use: the engine's backward, the parameters, and
    ``reduce_mean`` (in place: the mean of a tensor over the training processes; nothing
    in one process).

    Under several processes the trainer's loss is the same on every process, but each
    encoder gradient holds only that process's share (see :mod:`infomtl.distributed`):
    a weighting that uses gradients itself (PCGrad's per-task gradients) averages them
    with ``reduce_mean`` first; the trainer averages ``.grad`` after ``backward``.
    """

    backward: Any  # callable(loss) -> None: the run's MixedPrecision.backward (loss scaling under fp16)
    shared_parameters: list[nn.Parameter]
    head_parameters: list[list[nn.Parameter]]
    reduce_mean: Any = _identity  # callable(tensor) -> None, in place
