"""The optimisation step of the trainer: set up the optimizer and schedule on ``accelerate``,
then forward, backward, clip and step.

One step: encode the mixed batch once (twice stacked for two-view objectives),
run each head on its task's rows, let the method turn the outputs into one loss
(or one set of gradients), clip the gradient norm, step.

**Several processes** (``torchrun`` / ``accelerate launch``): one step on W processes
equals one step on one process with the same global batch; see
:mod:`infomtl.training.sharded`.

**Gradient accumulation** (``--grad-accumulation N``): the encoder runs each step in
micro-batches of ⌈B/N⌉ rows under activation checkpointing (see :mod:`infomtl.modeling.model`),
so only one micro-batch's activations are alive at a time; the backward recomputes each
micro-batch and sums its gradient. The heads, objective and weighting still see the
whole step, so the update is exactly that of one step on the whole batch for every
method (weightings that need the step's losses, PCGrad's per-task gradients, InfoMTL's
InfoNCE and class-balanced KL included); only the encoder's dropout masks differ, since
micro-batches draw them separately. The price is one more encoder forward per step
(per backward pass with PCGrad: T + 1). In the frozen-backbone fast mode there are no
encoder activations to save, and the option has no effect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from infomtl import distributed
from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch, EncodedSplit, collate
from infomtl.methods import BackwardContext, Method
from infomtl.modeling.building import compile_encoder
from infomtl.modeling.feature_cache import FeatureCache
from infomtl.modeling.model import ModelOutput, MultiTaskModel, TaskHeads
from infomtl.training.amp import MixedPrecision
from infomtl.training.optim import build_optimizer, build_scheduler, clipped_parameters
from infomtl.training.sharded import forward_sharded


class Steps:
    """The step half of :class:`~infomtl.training.trainer.Trainer` (which sets the attributes below)."""

    config: TrainConfig
    accelerator: Any
    model: MultiTaskModel
    method: Method
    feature_cache: FeatureCache | None
    encoded: dict[str, list[EncodedSplit]]
    pad_id: int

    amp: MixedPrecision

    # -- one step --------------------------------------------------------------------------

    def setup(self, total_steps: int) -> None:
        """Build the optimizer and schedule and hand everything to ``accelerate``.

        Under several processes the model is placed on the device but not wrapped in
        ``DistributedDataParallel``: the step averages the gradients itself (module
        docstring), and every process starts from process 0's parameters.
        """
        acc, cfg = self.accelerator, self.config
        self.model.micro_batches = cfg.optim.grad_accumulation
        if cfg.run.compile and self.feature_cache is None:
            compile_encoder(self.model)
        optimizer = build_optimizer(cfg, self.model, self.method)
        scheduler = build_scheduler(cfg, optimizer, total_steps)
        if acc.num_processes > 1:
            self.model.to(acc.device)
            self.optimizer, self.scheduler = acc.prepare(optimizer, scheduler)
        else:
            self.model, self.optimizer, self.scheduler = acc.prepare(self.model, optimizer, scheduler)
        self.method.to(acc.device)
        inner = acc.unwrap_model(self.model)
        if self.method.weighting.task_graphs:
            problem = self._task_graphs_problem(inner)
            inner.task_graphs = problem is None
            if problem is not None:
                self.method.weighting.no_task_graphs(problem)
        distributed.broadcast_tensors(
            [*inner.parameters(), *inner.buffers(), *self.method.parameters(), *self.method.buffers()]
        )
        # shared = the encoder (or the MLP above a frozen one) plus any layer the decoder
        # shares between tasks (a bottleneck)
        shared = [p for p in inner.encoder.parameters() if p.requires_grad]
        if inner.shared_mlp is not None:
            shared += list(inner.shared_mlp.parameters())
        shared += [p for p in getattr(inner.decoder, "shared_parameters", list)() if p.requires_grad]
        heads = [list(h.parameters()) for h in getattr(inner.decoder, "heads", [])]
        self.ctx = BackwardContext(self.amp.backward, shared, heads, distributed.all_reduce_mean)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.clipped = clipped_parameters(self.optimizer)

    def _task_graphs_problem(self, model: MultiTaskModel) -> str | None:
        """Why this run's steps cannot be encoded task by task (``grads=split``), or None."""
        if not self.method.objective.row_separable:
            return f"objective {self.method.spec.objective} has terms across rows or a shared decoder"
        if self.accelerator.num_processes > 1:
            return "several processes gather one representation"
        if model.micro_batches > 1:
            return "--grad-accumulation encodes in micro-batches"
        if model.sharing is not None or model.token_states or type(model.decoder) is not TaskHeads:
            return "the heads do not read one pooled h per task"
        if model.regularizer is not None:
            return "the successive regularisation is a term of every task's parameters"
        return None

    def train_step(self, plan: list[np.ndarray], step: int = 0) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """One optimisation step on the global step ``plan`` (the ``step``-th of the run)."""
        total, terms, weights = self.backward_step(plan, step)
        if self.config.optim.grad_clip > 0:
            self.amp.unscale(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.clipped, self.config.optim.grad_clip)
        self.amp.step(self.optimizer)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.on_step_end(terms)
        return total, terms, weights

    def backward_step(self, plan: list[np.ndarray], step: int = 0) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Forward and backward of the global step ``plan``: leaves in ``.grad`` the
        gradient of the step's loss on the whole global batch (the same on every process);
        returns the loss, its terms and the task weights. No host synchronisation."""
        out, batch = self._forward(plan, step)
        total, terms, weights = self.method.loss(out, batch)
        regularizer = self.accelerator.unwrap_model(self.model).regularizer
        if regularizer is not None and (term := regularizer(sorted(terms.task_losses))) is not None:
            total = total + term  # JMT's successive regularisation (infomtl.modeling.sharing)
            terms.components[("successive_reg", None)] = term.detach()
        self.method.backward(total, terms, self.ctx)
        distributed.all_reduce_gradients(self.params)
        return total, terms, weights

    def _forward(self, plan: list[np.ndarray], step: int) -> tuple[ModelOutput, Batch]:
        acc, views = self.accelerator, self.method.views
        if acc.num_processes == 1:
            batch = collate(self.encoded["train"], plan, self.pad_id).to(acc.device)
            with self.amp.autocast():
                return self.model(batch, views=views), batch
        return forward_sharded(
            self.model, self.encoded["train"], plan, self.pad_id, acc, self.config.run.seed, step, views,
            self.amp.autocast,
        )
