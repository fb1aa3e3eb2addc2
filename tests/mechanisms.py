"""A designed synthetic multi-task set of precomputed features and a small training loop,
for the mechanism tests: each method's mechanism must do what its paper says on data
whose structure is known (a task with noisy labels, a task that is a copy of another,
a task whose targets are scaled, a harder task...).

Features ``x ~ N(0, I_d)`` stand in for frozen encoder features; the shared encoder is
the fast mode's :class:`~infomtl.modeling.model.SharedMLP` (two dropout views for InfoMTL) inside
a real :class:`~infomtl.modeling.model.MultiTaskModel`, and the training step is the trainer's:
``Method.loss`` → ``Method.backward`` → clip → optimizer step → ``Method.on_step_end``,
with ``Method.on_epoch_end`` after each epoch. Everything is seeded and runs in seconds.

* Classification task: ``y = argmax(x W_t + b)`` over C classes (W_t Gaussian), with a
  fraction ``noise`` of the training labels replaced by random classes.
* Regression task: ``y = scale · (x w_t) + noise``.
* ``copy_of=s`` reuses task s's projection (the same function of x, fresh rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.methods import BackwardContext, Method, resolve_method
from infomtl.metrics import score_task, task_score
from infomtl.modeling.model import MultiTaskModel, SharedMLP
from infomtl.tasks import Task, TaskKind
from infomtl.training.optim import build_optimizer, clipped_parameters


@dataclass
class TaskSpec:
    """One synthetic task: ``kind`` (``"classification"`` or ``"regression"``), classes,
    label noise (fraction of training labels replaced at random), target scale, target
    noise std, training rows, and the index of the task it copies (same projection)."""

    name: str
    kind: str = "classification"
    classes: int = 3
    noise: float = 0.0
    scale: float = 1.0
    target_noise: float = 0.1
    rows: int = 400
    copy_of: int | None = None


@dataclass
class SynthTask:
    task: Task
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def make_tasks(specs: list[TaskSpec], dim: int = 16, val_rows: int = 300, seed: int = 0) -> list[SynthTask]:
    """Draw the tasks of ``specs`` (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    projections: list[torch.Tensor] = []
    out = []
    for spec in specs:
        width = spec.classes if spec.kind == "classification" else 1
        if spec.copy_of is not None:
            proj = projections[spec.copy_of]
        else:
            proj = torch.randn(dim, width, generator=gen) / dim**0.5 * 3
        projections.append(proj)
        x = torch.randn(spec.rows, dim, generator=gen)
        x_val = torch.randn(val_rows, dim, generator=gen)
        if spec.kind == "classification":
            task = Task(spec.name, TaskKind.CLASSIFICATION, labels=tuple(f"c{i}" for i in range(spec.classes)))
            y, y_val = (x @ proj).argmax(-1), (x_val @ proj).argmax(-1)
            flip = torch.rand(spec.rows, generator=gen) < spec.noise
            y = torch.where(flip, torch.randint(0, spec.classes, (spec.rows,), generator=gen), y)
        else:
            task = Task(spec.name, TaskKind.REGRESSION, targets=(spec.name,))
            y = spec.scale * (x @ proj) + spec.target_noise * torch.randn(spec.rows, 1, generator=gen)
            y_val = spec.scale * (x_val @ proj)
        out.append(SynthTask(task, x, y, x_val, y_val))
    return out


@dataclass
class Fit:
    """What :func:`fit` returns: the model and method, and per-epoch logs."""

    model: MultiTaskModel
    method: Method
    tasks: list[SynthTask]
    weights: list[list[float]] = field(default_factory=list)  # per epoch, mean task weights
    logs: list[dict[str, Any]] = field(default_factory=list)  # per epoch, method.log_values()
    components: list[dict[tuple[str, int | None], float]] = field(default_factory=list)

    def outputs(self, split: str = "val") -> dict[int, Any]:
        """Head outputs (eval mode) on every task's validation (or training) rows."""
        self.model.eval()
        with torch.no_grad():
            xs = [t.x_val if split == "val" else t.x for t in self.tasks]
            batch = _batch(xs, [None] * len(xs))
            return self.model(batch).heads

    def scores(self) -> list[float]:
        """Each task's official score on its validation rows (macro-F1; Pearson r), in %."""
        heads = self.outputs()
        values = []
        for t, synth in enumerate(self.tasks):
            mean = heads[t].mean
            kind = synth.task.kind
            pred = mean.argmax(-1).numpy() if kind is TaskKind.CLASSIFICATION else mean.numpy()
            scores = score_task(synth.task, synth.y_val.numpy(), pred)
            values.append(task_score(synth.task, scores))
        return values


def _batch(xs: list[torch.Tensor], ys: list[torch.Tensor | None]) -> Batch:
    rows, labels, start = {}, {}, 0
    for t, (x, y) in enumerate(zip(xs, ys, strict=True)):
        rows[t] = torch.arange(start, start + len(x))
        if y is not None:
            labels[t] = y
        start += len(x)
    features = torch.cat(xs)
    ids = torch.zeros(start, 0, dtype=torch.long)
    return Batch(ids, ids, None, rows, labels, features=features)


def fit(
    tasks: list[SynthTask],
    method: str,
    method_args: dict[str, Any] | None = None,
    weighting: str | None = None,
    epochs: int = 8,
    rows_per_step: int = 32,
    lr: float = 3e-3,
    width: int = 32,
    dropout: float = 0.1,
    head_dropout: float = 0.0,
    grad_clip: float = 1.0,
    seed: int = 0,
) -> Fit:
    """Train ``method`` on ``tasks`` (the ``uniform`` regime: ``rows_per_step`` rows of every
    task per step, drawn with replacement; an epoch = as many steps as one pass over the
    largest task) with Adam; log per epoch."""
    torch.manual_seed(seed)
    spec = resolve_method(method, weighting, dict(method_args or {}))
    sizes = [len(t.x) for t in tasks]
    dim = tasks[0].x.shape[1]
    m = Method(spec, [t.task for t in tasks], width, sizes, head_dropout=head_dropout)
    model = MultiTaskModel(torch.nn.Identity(), m.build_decoder(), freeze_encoder=True,
                           shared_mlp=SharedMLP(dim, width, dropout))
    # the trainer's optimizer groups (learned task scalars apart, outside the clipped norm);
    # AdamW without weight decay is Adam
    optimizer = build_optimizer(TrainConfig(optimizer="adamw", lr=lr, weight_decay=0.0), model, m)
    params = clipped_parameters(optimizer)
    shared = list(model.shared_mlp.parameters()) + list(getattr(model.decoder, "shared_parameters", list)())
    heads = [list(h.parameters()) for h in getattr(model.decoder, "heads", [])]
    ctx = BackwardContext(lambda loss: loss.backward(), shared, heads)
    gen = torch.Generator().manual_seed(seed)
    result = Fit(model, m, tasks)
    steps = max(sizes) // rows_per_step
    for epoch in range(1, epochs + 1):
        model.train()
        m.train()
        loss_sum = torch.zeros(len(tasks))
        weight_sum = torch.zeros(len(tasks))
        comp_sum: dict[tuple[str, int | None], float] = {}
        for _ in range(steps):
            idx = [torch.randint(0, n, (rows_per_step,), generator=gen) for n in sizes]
            batch = _batch([t.x[i] for t, i in zip(tasks, idx, strict=True)],
                           [t.y[i] for t, i in zip(tasks, idx, strict=True)])
            out = model(batch, views=m.views)
            total, terms, w = m.loss(out, batch)
            optimizer.zero_grad(set_to_none=True)
            m.backward(total, terms, ctx)
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            m.on_step_end(terms)
            for t, value in terms.task_losses.items():
                loss_sum[t] += float(value.detach())
            weight_sum += w.detach().float().cpu()
            for key, value in terms.components.items():
                comp_sum[key] = comp_sum.get(key, 0.0) + float(value)
        m.on_epoch_end(epoch, loss_sum / steps)
        result.weights.append((weight_sum / steps).tolist())
        result.logs.append(m.log_values())
        result.components.append({k: v / steps for k, v in comp_sum.items()})
    model.eval()
    m.eval()
    return result
