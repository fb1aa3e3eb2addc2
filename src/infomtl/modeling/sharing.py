"""Learning to share (the MTL survey's second family): what each task's head reads.

By default every head reads the same shared representation ``h = pool(layer L)``. A
sharing module gives each task t its own representation ``h_t`` instead, built from
several *sources* of the encoder, and learns how much each task takes of each:

* :class:`LayerSharing` — the sources are the pooled states of every layer,
  ``f_0`` (embeddings) … ``f_L`` (last layer), ``S = L + 1``:

  - *layer mixture per task* (``--share layer-mix``; ELMo's scalar mix, the layer
    weights β of sluice networks, Ruder et al. 2019): ``h_t = γ_t Σ_l softmax(w_t)_l f_l``,
    ``w_t`` initialised to 0 (a uniform mixture), ``γ_t`` to 1;
  - *task at a layer* (``--head-layer task=k``; JMT, Hashimoto et al. 2017; LISA,
    Strubell et al. 2018: lower-level tasks supervised at lower layers): ``h_t = f_k``.

* :class:`CrossStitch` — *cross-stitch units* (Misra et al., CVPR 2016; the α of sluice
  networks) over the top ``K`` transformer layers (``--share cross-stitch
  --share-layers K``): the lower ``L − K`` layers are shared; each task has its own copy
  of each of the top ``K`` layers, initialised from the pretrained layer, and after each
  of them the copies' outputs are mixed per token by a learned ``T × T`` matrix,

      x_t^{(j+1)} = Σ_s α^{(j)}_{ts} · layer_s^{(j)}(x_s^{(j)}),   α_tt = 0.9 at init,
      α_ts = 0.1 / (T − 1) for s ≠ t,

  so every copy runs on every row (the mix needs all of them): the top K layers cost T
  times theirs. Task t's sources row is the pooled output of its own copy, ``h_t``.

The model encodes a batch into ``sources`` ``(B, S, d)`` (:meth:`MultiTaskModel.represent`)
and :func:`gather` turns them into one row per (task, row) pair, ``h_t`` of that row, with
the heads' row indices renumbered, so every objective and weighting runs unchanged on it
(InfoMTL's InfoNCE pairs the two dropout views of the same (task, row) pairs).

Successive regularisation (JMT, ``--successive-reg δ``, with ``--head-layer``): while a
step trains task t, the parameters that the tasks placed below t read — the embeddings
and the layers up to the highest head layer ``k_s < k_t`` — are pulled towards their
values at the start of the epoch, ``δ · ‖θ_{≤k_s} − θ'_{≤k_s}‖²`` (averaged over the
step's tasks), so that training the higher tasks does not undo what the lower ones learned.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
from torch import nn

from infomtl.errors import ConfigError

#: Initial weight of a task's own copy in a cross-stitch unit (Misra et al. 2016).
STITCH_SELF = 0.9


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's list of transformer layers: the ``nn.ModuleList`` with
    ``config.num_hidden_layers`` entries (``encoder.layer`` in BERT, RoBERTa, MiniLM...)."""
    count = int(getattr(getattr(encoder, "config", None), "num_hidden_layers", 0) or 0)
    found = [m for m in encoder.modules() if isinstance(m, nn.ModuleList) and len(m) == count and count > 0]
    if not found:
        raise ConfigError(f"cannot find the transformer layers of {type(encoder).__name__} "
                          "(an nn.ModuleList of config.num_hidden_layers layers)")
    return found[0]


def num_layers(encoder: nn.Module) -> int:
    """``L``: the encoder's number of transformer layers."""
    return len(encoder_layers(encoder))


class LayerSharing(nn.Module):
    """Per-task readers of the pooled states of every layer (module docstring).

    Args:
        num_tasks: T.
        num_sources: S = L + 1 (embeddings and L layers).
        mix: learn a softmax mixture of the layers for the tasks without a head layer.
        head_layers: ``{task index: k}``, ``1 ≤ k ≤ L``: task t reads layer k alone.
    """

    def __init__(self, num_tasks: int, num_sources: int, mix: bool, head_layers: dict[int, int]) -> None:
        super().__init__()
        self.num_tasks, self.num_sources = num_tasks, num_sources
        self.head_layers = dict(head_layers)
        self.mix = mix
        self.weights = nn.Parameter(torch.zeros(num_tasks, num_sources)) if mix else None
        self.scale = nn.Parameter(torch.ones(num_tasks)) if mix else None

    def unit_parameters(self) -> list[nn.Parameter]:
        """The mixing parameters (the optimizer's sharing group): ``w`` and ``γ``."""
        return [p for p in (self.weights, self.scale) if p is not None]

    def mixture(self, t: int) -> torch.Tensor:
        """``(S,)`` the weights task t gives the layers: ``softmax(w_t)``, one-hot at its head
        layer, or one-hot at the last layer."""
        if t in self.head_layers or self.weights is None:
            k = self.head_layers.get(t, self.num_sources - 1)
            return torch.nn.functional.one_hot(torch.tensor(k), self.num_sources).float()
        return torch.softmax(self.weights[t], dim=0)

    def task_representation(self, sources: torch.Tensor, t: int) -> torch.Tensor:
        """``h_t`` ``(m, d)`` of rows whose sources are ``(m, S, d)``."""
        if t in self.head_layers:
            return sources[:, self.head_layers[t]]
        if self.weights is None or self.scale is None:
            return sources[:, -1]
        w = torch.softmax(self.weights[t], dim=0).to(sources.dtype)
        return self.scale[t].to(sources.dtype) * torch.einsum("msd,s->md", sources, w)

    def log_values(self, task_names: list[str]) -> dict[str, Any]:
        """What the epoch log records: each task's layer weights (and scale γ_t)."""
        out: dict[str, Any] = {"layers": {}, "scale": {}}
        with torch.no_grad():
            for t, name in enumerate(task_names):
                out["layers"][name] = [round(float(v), 6) for v in self.mixture(t)]
                if self.scale is not None and t not in self.head_layers:
                    out["scale"][name] = round(float(self.scale[t]), 6)
        if not out["scale"]:
            del out["scale"]
        return out


class _Stitch(nn.Module):
    """Stands in the encoder's layer list for the ``j``-th of the top K layers and runs the
    owning :class:`CrossStitch` there (it has no parameters of its own: the copies and the
    α belong to the cross-stitch module, outside the encoder)."""

    def __init__(self, owner: CrossStitch, j: int) -> None:
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not a submodule: its parameters live once, in the model
        self.j = j

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        owner: CrossStitch = object.__getattribute__(self, "_owner")
        return owner.stitched_layer(self.j, hidden_states, args, kwargs)


class CrossStitch(nn.Module):
    """Per-task copies of the encoder's top ``k`` layers joined by cross-stitch units
    (module docstring). Building it replaces those layers in ``encoder`` by stand-ins that
    call it; inside the top layers the hidden states of the T copies travel stacked along
    the batch, ``(T·b, len, d)``, and the encoder's output is that stack."""

    def __init__(self, encoder: nn.Module, num_tasks: int, k: int) -> None:
        super().__init__()
        layers = encoder_layers(encoder)
        total = len(layers)
        if num_tasks < 2:
            raise ConfigError("--share cross-stitch needs at least two tasks")
        if not 1 <= k < total:
            raise ConfigError(f"--share-layers must be in [1, {total - 1}] for this {total}-layer encoder, got {k}")
        self.num_tasks, self.k = num_tasks, k
        top = [layers[total - k + j] for j in range(k)]
        self.copies = nn.ModuleList(
            nn.ModuleList(top[j] if t == 0 else copy.deepcopy(top[j]) for j in range(k)) for t in range(num_tasks)
        )
        other = (1.0 - STITCH_SELF) / (num_tasks - 1)
        alpha = torch.full((k, num_tasks, num_tasks), other)
        alpha[:, range(num_tasks), range(num_tasks)] = STITCH_SELF
        self.alpha = nn.Parameter(alpha)
        for j in range(k):
            layers[total - k + j] = _Stitch(self, j)

    def unit_parameters(self) -> list[nn.Parameter]:
        """The mixing parameters (the optimizer's sharing group): the α of every unit."""
        return [self.alpha]

    def stitched_layer(self, j: int, hidden: torch.Tensor, args: tuple, kwargs: dict[str, Any]) -> Any:
        """The ``j``-th top layer: run each task's copy on its stream, then mix the streams."""
        streams = [hidden] * self.num_tasks if j == 0 else list(hidden.chunk(self.num_tasks))
        outs = [cast(nn.ModuleList, self.copies[t])[j](x, *args, **kwargs) for t, x in enumerate(streams)]
        tupled = isinstance(outs[0], tuple)
        ys = torch.stack([o[0] if tupled else o for o in outs])  # (T, b, len, d)
        mixed = torch.einsum("ts,sbld->tbld", self.alpha[j].to(ys.dtype), ys).flatten(0, 1)
        return (mixed,) if tupled else mixed

    def task_representation(self, sources: torch.Tensor, t: int) -> torch.Tensor:
        """``h_t`` ``(m, d)``: the pooled output of task t's copy (sources ``(m, T, d)``)."""
        return sources[:, t]

    def log_values(self, task_names: list[str]) -> dict[str, Any]:
        """What the epoch log records: ``alpha[j][task] = {source task: α}`` per stitched layer."""
        with torch.no_grad():
            return {"alpha": [
                {name: {src: round(float(self.alpha[j, t, s]), 6) for s, src in enumerate(task_names)}
                 for t, name in enumerate(task_names)}
                for j in range(self.k)
            ]}


Sharing = LayerSharing | CrossStitch


def gather(sharing: Sharing, sources: torch.Tensor, rows: dict[int, torch.Tensor],
           views: int) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """One row per (task, row) pair: ``h_t`` of each row of ``rows[t]``, tasks in the order
    of ``rows``, for each of the ``views`` stacked views of ``sources`` ``(views·n, S, d)``;
    and the heads' row indices into it (the first view's block)."""
    n = sources.shape[0] // views
    new_rows: dict[int, torch.Tensor] = {}
    start = 0
    for t, r in rows.items():
        new_rows[t] = torch.arange(start, start + len(r), device=sources.device)
        start += len(r)
    parts = [sharing.task_representation(sources.index_select(0, r + v * n), t)
             for v in range(views) for t, r in rows.items()]
    if not parts:
        return sources.new_zeros(0, sources.shape[-1]), new_rows
    return torch.cat(parts), new_rows


class SuccessiveRegularizer(nn.Module):
    """JMT's successive regularisation over layer groups (module docstring).

    Group 0 is the embeddings, group j the j-th layer. ``limits[t]`` is the last group task
    t's term covers (``-1``: none). The anchors θ' are buffers (saved with the training
    state, so a resumed epoch regularises towards the same values); :meth:`anchor` sets them.
    """

    def __init__(self, groups: list[list[nn.Parameter]], limits: list[int], delta: float) -> None:
        super().__init__()
        self.delta, self.limits = delta, limits
        top = max(limits, default=-1)
        self._groups: list[list[nn.Parameter]] = []
        object.__setattr__(self, "_groups", groups[: top + 1])  # the encoder's own: not registered twice
        for g, params in enumerate(self._groups):
            self.register_buffer(f"anchor_{g}", torch.cat([p.detach().flatten() for p in params]).clone())

    def anchor(self) -> None:
        """θ' ← θ (the start of an epoch)."""
        for g, params in enumerate(self._groups):
            getattr(self, f"anchor_{g}").copy_(torch.cat([p.detach().flatten() for p in params]))

    def forward(self, tasks: list[int]) -> torch.Tensor | None:
        """``δ · mean_{t ∈ tasks} Σ_{g ≤ limits[t]} ‖θ_g − θ'_g‖²``, or ``None`` if no task has a term."""
        covered = [self.limits[t] for t in tasks]
        if max(covered, default=-1) < 0:
            return None
        dist = [((torch.cat([p.flatten() for p in params]) - getattr(self, f"anchor_{g}")) ** 2).sum()
                for g, params in enumerate(self._groups)]
        zero = dist[0].new_zeros(())
        total = sum((sum(dist[: c + 1], zero) for c in covered), zero)
        return self.delta * total / len(tasks)


def layer_groups(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The encoder's parameters by layer group: ``[embeddings, layer 1, ..., layer L]``
    (the embeddings group: every parameter outside the layers, before them)."""
    layers = encoder_layers(encoder)
    in_layers = {id(p) for p in layers.parameters()}
    embeddings = [p for name, p in encoder.named_parameters()
                  if id(p) not in in_layers and "pooler" not in name]
    return [embeddings, *[list(layer.parameters()) for layer in layers]]


def successive_limits(head_layers: dict[int, int], num_tasks: int, top: int) -> list[int]:
    """Per task, the last layer group its successive term covers: the highest head layer
    of the tasks placed strictly below it (tasks without a head layer sit at ``top``)."""
    at = [head_layers.get(t, top) for t in range(num_tasks)]
    return [max((k for k in at if k < at[t]), default=-1) for t in range(num_tasks)]
