"""Training on ``accelerate``: the papers' recipe, on a laptop CPU or a GPU cluster.

One step: encode the mixed batch once (twice stacked for two-view objectives),
run each head on its task's rows, let the method turn the outputs into one loss
(or one set of gradients), clip the gradient norm, step. After each epoch the
model is scored on the validation split; the best epoch (by validation Avg, or
loss) is checkpointed; training stops after ``patience`` epochs without
improvement; the best checkpoint is then scored on val and test.

**Several processes** (``torchrun --nproc-per-node W -m infomtl train ...`` or
``accelerate launch --multi_gpu --num_processes W -m infomtl train ...``; NCCL on GPUs,
gloo on a machine without one). Every process plans the same global steps of ``--batch-size`` rows and the
step's rows are dealt out in turn (:func:`~infomtl.data.batching.shard`: ⌊B/W⌋ or
⌈B/W⌉ rows each). The rule that makes a step exactly the one-process step on the
global batch, for every objective and weighting:

1. each process encodes only its shard (its own dropout stream,
   :func:`~infomtl.distributed.process_rng`);
2. the pooled representations (token states for token-state heads) of all shards are
   all-gathered into the global batch, in batch order; a process's own rows stay live,
   with their gradient multiplied by W (:func:`~infomtl.distributed.scale_grad`);
3. every process runs the heads, the objective and the weighting on the **whole global
   batch**: per-task means over the task's global rows, InfoNCE negatives, class-balanced
   KLs, DTP's KPIs, DWA's and GLS's losses, UW/IMTL-L's ``s_t`` terms are all the
   one-process values, identical on every process (draws after the encoder — head
   dropout, Gaussian samples, Gumbel noise — come from the global random stream, which
   stays identical across processes);
4. after the backward every gradient — model and method parameters — is averaged over
   the processes (:func:`~infomtl.distributed.all_reduce_gradients`). The encoder gets
   ``(1/W) Σ_r W Σ_{i ∈ shard r} ∂L/∂h_i ∂h_i/∂θ``, the one-process gradient; heads,
   bottlenecks and the method's own parameters get the one-process gradient that every
   process computed identically. PCGrad averages its per-task gradients the same way
   before projecting (``BackwardContext.reduce_mean``): projection is not linear.

So one step on W processes equals one step on one process with the same global batch,
up to float rounding and the encoder's dropout masks (drawn per process). Clipping and
the optimizer then run identically everywhere. A step with fewer rows than processes
leaves a process without rows: it encodes a stand-in row whose gradient is multiplied
by 0 (so every process has gradients for the same parameters). Validation and test
batches are dealt out the same way and the predictions gathered (same batches as one
process, so the same scores); only the main process writes files, and the run folder
name is the main process's. Multi-node runs need the run folder on a shared file system
(the final weights and ``--resume`` are read from it by every process).

**Gradient accumulation** (``--grad-accumulation N``): the encoder runs each step in
micro-batches of ⌈B/N⌉ rows under activation checkpointing (see :mod:`infomtl.model`),
so only one micro-batch's activations are alive at a time; the backward recomputes each
micro-batch and sums its gradient. The heads, objective and weighting still see the
whole step, so the update is exactly that of one step on the whole batch for every
method (weightings that need the step's losses, PCGrad's per-task gradients, InfoMTL's
InfoNCE and class-balanced KL included); only the encoder's dropout masks differ, since
micro-batches draw them separately. The price is one more encoder forward per step
(per backward pass with PCGrad: T + 1). In the frozen-backbone fast mode there are no
encoder activations to save, and the option has no effect.

A run folder holds ``config.yaml`` (the resolved config), ``run.json`` (tasks,
method, sizes), ``log.jsonl`` (one line per epoch), ``checkpoint/`` (best),
``last/`` (the full training state after the last complete epoch, for
``--resume``), ``results.json`` and ``predictions/{split}/{task}.txt``.

Per epoch the writes are: the log line, then ``checkpoint/`` (if improved), then
``last/`` (atomically). A resume continues after ``last/``'s epoch, dropping log lines
of later epochs; a kill between ``checkpoint/`` and ``last/`` just retrains that epoch,
which (same state, same data order) rewrites the same best checkpoint.
``results.json`` is written last and marks a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from infomtl import data as data_mod
from infomtl import distributed, features
from infomtl.backbones import Backbone, load_backbone
from infomtl.checkpoint import (
    load_training_state,
    load_weights,
    recover_folder,
    save_checkpoint,
    save_training_state,
    write_json,
)
from infomtl.config import TrainConfig, load_yaml
from infomtl.data.batching import (
    Batch,
    Batcher,
    EncodedSplit,
    collate,
    collate_targets,
    encode,
    shard,
    shard_order,
)
from infomtl.errors import ConfigError, InfomtlError
from infomtl.evaluation import predict_splits, score_predictions, write_predictions
from infomtl.heads import TASK_SCALAR_NAMES
from infomtl.methods import BackwardContext, Method, MethodSpec, resolve_method
from infomtl.model import ModelOutput, MultiTaskModel, Representation
from infomtl.tasks import Task, TaskKind


def resolve_spec(config: TrainConfig) -> MethodSpec:
    """The validated method of a config (fails before anything is loaded)."""
    return resolve_method(config.method, config.weighting, config.method_args)


def prepare_data(config: TrainConfig) -> data_mod.MultiTaskData:
    """Load the configured tasks and apply the data-constrained / smoke-run limits."""
    return limit_data(config, load_data(config))


def load_data(config: TrainConfig) -> data_mod.MultiTaskData:
    """The configured tasks with their whole splits (no limits applied)."""
    if config.task_dirs:
        data = data_mod.load_task_folders([Path(p) for p in config.task_dirs])
        data = data_mod.select_tasks(data, config.tasks or None, benchmark="task-folder")
    else:
        data = data_mod.load_benchmark(
            config.benchmark, config.data_dir, config.tasks or None,
            goemotions_multilabel=config.goemotions_multilabel, ei_reg_pair=config.ei_reg_pair,
        )
    if config.multilabel_threshold is not None:
        data = with_multilabel_threshold(data, config.multilabel_threshold)
    return data


def limit_data(config: TrainConfig, full: data_mod.MultiTaskData) -> data_mod.MultiTaskData:
    """``full`` with the data-constrained / smoke-run limits applied (``full`` is not changed)."""
    data = data_mod.MultiTaskData(tasks=list(full.tasks), splits={k: dict(v) for k, v in full.splits.items()})
    for task in data.tasks:
        splits = data.splits[task.name]
        for required in ("train", "val"):
            if required not in splits:
                raise InfomtlError(f"task {task.name}: no {required} split")
        train = splits["train"]
        if config.train_ratio < 1:
            train = data_mod.subsample(train, ratio=config.train_ratio, seed=config.seed)
        if config.max_train_examples is not None and len(train) > config.max_train_examples:
            train = data_mod.subsample(train, count=config.max_train_examples, seed=config.seed)
        splits["train"] = train
        if config.max_eval_examples is not None:
            for split in ("val", "test"):
                if split in splits:
                    splits[split] = data_mod.head(splits[split], config.max_eval_examples)
    return data


def with_multilabel_threshold(data: data_mod.MultiTaskData, threshold: float) -> data_mod.MultiTaskData:
    """``data`` with every multi-label task's decision threshold set to ``threshold``."""
    tasks = [
        dataclasses.replace(t, threshold=threshold) if t.kind is TaskKind.MULTILABEL else t
        for t in data.tasks
    ]
    splits = {
        task.name: {
            split: dataclasses.replace(part, task=task) for split, part in data.splits[task.name].items()
        }
        for task in tasks
    }
    return data_mod.MultiTaskData(tasks=tasks, splits=splits)


def check_output_dir(output_dir: str | None) -> None:
    """Refuse, before anything is loaded, an output folder that already holds files."""
    if output_dir is not None:
        path = Path(output_dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"--output-dir {path} already holds files; choose a new folder")


def new_run_dir(output_dir: str | None) -> Path:
    """The run folder: ``output_dir`` (must be empty or new), or a fresh one under ``runs/``."""
    if output_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / stamp
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{stamp}-{n}"
    else:
        check_output_dir(output_dir)
        path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The config of an interrupted run folder, set up to resume it in place.

    Raises :class:`InfomtlError` for a folder that is not a run or already finished.
    """
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise InfomtlError(f"--resume {folder}: not a run folder (no config.yaml)")
    if (folder / "results.json").is_file():
        raise InfomtlError(f"--resume {folder}: the run already finished (results.json exists); nothing to resume")
    config = TrainConfig.from_dict(load_yaml(folder / "config.yaml"), str(folder / "config.yaml"))
    config.output_dir = str(folder)
    config.resume = str(folder)
    return config.validate()


def compile_encoder(model: MultiTaskModel, backend: str = "inductor") -> None:
    """``torch.compile`` the model's encoder in place (``nn.Module.compile``: parameter
    names, checkpoints and the ``encoder`` attribute stay as they are). Steps are padded
    to their own longest row, so the first few shapes compile, then dynamic shapes.

    Inductor draws dropout masks with the eager random generator (``fallback_random``),
    so a compiled run gives the results of an uncompiled one up to float rounding.
    """
    if not hasattr(torch.nn.Module, "compile"):
        raise ConfigError("--compile needs torch >= 2.2 (nn.Module.compile)")
    if backend == "inductor":
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True
    model.encoder.compile(backend=backend)


def _silent(*args: Any, **kwargs: Any) -> None:
    """The echo of a process other than the main one."""


def _truncate_log(path: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs <= ``last_epoch`` (drops a torn last line too)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record.get("epoch", 0) > last_epoch:
            break
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
    tmp.replace(path)


def _clear_run_dir(folder: Path) -> None:
    """Remove everything of an interrupted run except its ``config.yaml``."""
    for child in folder.iterdir():
        if child.name == "config.yaml":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@dataclass
class TrainResult:
    run_dir: Path
    results: dict[str, Any]


class Trainer:
    """Runs one configured training job end to end (see the module docstring)."""

    def __init__(self, config: TrainConfig, echo: Any = print) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DataLoaderConfiguration, set_seed

        self.config = config.validate()
        self.spec = resolve_spec(config)
        # several processes (torchrun / accelerate launch) on a machine without a GPU: gloo
        # on the CPU (accelerate would otherwise set up one independent process per rank)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = config.cpu or (launched > 1 and not torch.cuda.is_available())
        # one process may train several runs (sweep workers, STL) with different mixed
        # precisions: forget the previous run's (the distributed state is kept)
        AcceleratorState._reset_state()
        # split_batches: the schedule steps once per (global) step under several processes
        self.accelerator = Accelerator(
            cpu=cpu, mixed_precision=config.mixed_precision,
            dataloader_config=DataLoaderConfiguration(split_batches=True),
        )
        if self.accelerator.num_processes != launched:
            raise ConfigError(
                f"launched as {launched} processes but accelerate set up "
                f"{self.accelerator.num_processes}; check the launcher and the device"
            )
        main = self.accelerator.is_main_process
        if config.resume is None and main:  # only the main process creates the run folder
            check_output_dir(config.output_dir)
        self.echo = echo if main else _silent
        set_seed(config.seed)
        full = load_data(config)
        self.data = limit_data(config, full)
        self.tasks: list[Task] = list(self.data.tasks)
        self.backbone: Backbone = load_backbone(config.backbone, config.pooling, config.max_length)
        tok = self.backbone.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.feature_cache = cache = None
        if features.uses_features(config, self.spec):
            self.feature_cache = cache = features.FeatureCache(
                self.backbone, config.feature_cache, self.accelerator.device, progress=config.progress,
                dtype=self.autocast_dtype)
        self.encoded: dict[str, list[EncodedSplit]] = {}
        for split in ("train", "val", "test"):
            if all(split in self.data.splits[t.name] for t in self.tasks):
                parts = [self.data.splits[t.name][split] for t in self.tasks]
                self.encoded[split] = [
                    encode(part, tok, config.max_length) if cache is None
                    else cache.encoded(full.splits[part.task.name][split], part)
                    for part in parts
                ]
        self.train_sizes = [len(s) for s in self.encoded["train"]]
        self.method = Method(
            self.spec, self.tasks, features.shared_size(config, self.backbone, self.spec),
            self.train_sizes, config.head_dropout, config.head_hidden,
        )
        self.regime = self.method.regime(config.regime)
        self.batcher = Batcher(
            [s.lengths for s in self.encoded["train"]], config.batch_size, self.regime,
            config.seed, config.temperature,
        )
        self.model = features.build_model(config, self.backbone, self.spec, self.method.build_decoder())

    # -- setup -------------------------------------------------------------------------

    def _optimizer(self) -> torch.optim.Optimizer:
        """Three groups: model weights (weight decay), biases/LayerNorm/0-d parameters (none),
        and the **learned task scalars** (UW's and IMTL-L's ``s_t``, VIP-MTL's learned
        ``log Σ'_t``): no weight decay, ``--scalar-lr`` (default ``--lr``), and outside the
        clipped gradient norm (:meth:`train_step`): their gradients (γ or ½ per task) would
        otherwise take up the norm and shrink every other gradient."""
        cfg = self.config
        decay, no_decay, scalars = [], [], [p for p in self.method.parameters() if p.requires_grad]
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            if name.rsplit(".", 1)[-1] in TASK_SCALAR_NAMES:
                scalars.append(param)
            else:
                (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if scalars:
            lr = cfg.lr if cfg.scalar_lr is None else cfg.scalar_lr
            groups.append({"params": scalars, "weight_decay": 0.0, "lr": lr, "task_scalars": True})
        cls = {"adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW}[cfg.optimizer]
        return cls(groups, lr=cfg.lr)

    def _scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int):
        warmup = int(self.config.warmup_ratio * total_steps)
        linear = self.config.lr_schedule == "linear"

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if linear:
                return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.mixed_precision)

    # -- one step --------------------------------------------------------------------------

    def setup(self, total_steps: int) -> None:
        """Build the optimizer and schedule and hand everything to ``accelerate``.

        Under several processes the model is placed on the device but not wrapped in
        ``DistributedDataParallel``: the step averages the gradients itself (module
        docstring), and every process starts from process 0's parameters.
        """
        acc, cfg = self.accelerator, self.config
        self.model.micro_batches = cfg.grad_accumulation
        if cfg.compile and not features.uses_features(cfg, self.spec):
            compile_encoder(self.model)
        optimizer = self._optimizer()
        scheduler = self._scheduler(optimizer, total_steps)
        if acc.num_processes > 1:
            self.model.to(acc.device)
            self.optimizer, self.scheduler = acc.prepare(optimizer, scheduler)
        else:
            self.model, self.optimizer, self.scheduler = acc.prepare(self.model, optimizer, scheduler)
        self.method.to(acc.device)
        inner = acc.unwrap_model(self.model)
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
        self.ctx = BackwardContext(acc.backward, shared, heads, distributed.all_reduce_mean)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.clipped = [
            p for g in self.optimizer.param_groups if not g.get("task_scalars") for p in g["params"]
        ]

    def train_step(self, plan: list[np.ndarray], step: int = 0) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """One optimisation step on the global step ``plan`` (the ``step``-th of the run)."""
        total, terms, weights = self.backward_step(plan, step)
        if self.config.grad_clip > 0:
            self.accelerator.clip_grad_norm_(self.clipped, self.config.grad_clip)
        self.optimizer.step()
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
        self.method.backward(total, terms, self.ctx)
        distributed.all_reduce_gradients(self.params)
        return total, terms, weights

    def _forward(self, plan: list[np.ndarray], step: int) -> tuple[ModelOutput, Batch]:
        acc, views = self.accelerator, self.method.views
        if acc.num_processes == 1:
            batch = collate(self.encoded["train"], plan, self.pad_id).to(acc.device)
            with acc.autocast():
                return self.model(batch, views=views), batch
        return self._forward_sharded(plan, step, views)

    def _forward_sharded(self, plan: list[np.ndarray], step: int, views: int) -> tuple[ModelOutput, Batch]:
        """Encode this process's shard, gather the global batch's representation, decode
        the whole global batch (see the module docstring)."""
        acc, model = self.accelerator, self.model
        rank, world = acc.process_index, acc.num_processes
        splits = self.encoded["train"]
        shards = [shard(plan, r, world) for r in range(world)]
        counts = [sum(len(idx) for idx in part) for part in shards]
        local, stand_in = shards[rank], counts[rank] == 0
        if stand_in:  # fewer rows than processes: encode one row, its gradient multiplied by 0
            first = next(t for t, idx in enumerate(plan) if len(idx))
            local = [idx[:1] if t == first else idx[:0] for t, idx in enumerate(plan)]
        width = None
        if model.token_states:  # pad like the global batch: same states at padded positions
            width = max(len(splits[t].input_ids[i]) for t, idx in enumerate(plan) for i in idx)
        batch = collate(splits, local, self.pad_id, width).to(acc.device)
        with distributed.process_rng(self.config.seed, step, rank, acc.device), acc.autocast():
            rep = model.represent(batch, views)
        order = torch.from_numpy(shard_order(plan, world)).to(acc.device, non_blocking=True)
        n = len(batch)
        anchor = rep.pooled.float().sum() * 0.0 if stand_in else None
        if stand_in and rep.states is not None:
            anchor = anchor + rep.states.float().sum() * 0.0

        def gathered(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
            x = x[:0] if stand_in else x
            if grad:
                x = distributed.scale_grad(x.float(), float(world))
            full = distributed.gather_rows(x, counts, rank).index_select(0, order)
            return full + anchor if grad and anchor is not None else full

        pooled = torch.cat([gathered(rep.pooled[v * n : (v + 1) * n]) for v in range(views)])
        states = mask = None
        if rep.states is not None:
            states, mask = gathered(rep.states), gathered(rep.mask, grad=False)
        targets = collate_targets(splits, plan).to(acc.device)
        with acc.autocast():
            out = model.decode(Representation(pooled, states, mask), targets, views)
        return out, targets

    # -- loop --------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        last_dir = None
        if cfg.resume is not None:
            run_dir = Path(cfg.resume)
            if acc.is_main_process:
                for name in ("last", "checkpoint"):
                    recover_folder(run_dir / name)
                if not (run_dir / "last" / "state.json").is_file():
                    self.echo(f"{run_dir}: no complete epoch to resume from; training from scratch")
                    _clear_run_dir(run_dir)
            acc.wait_for_everyone()
            if (run_dir / "last" / "state.json").is_file():
                last_dir = run_dir / "last"
        else:
            run_dir = new_run_dir(cfg.output_dir) if acc.is_main_process else None
            run_dir = Path(distributed.broadcast_object(None if run_dir is None else str(run_dir)))
        self.run_dir = run_dir
        if acc.is_main_process:
            if last_dir is None:
                cfg.save(run_dir / "config.yaml")
            write_json(run_dir / "run.json", {
                "tasks": [t.to_dict() for t in self.tasks],
                "method": self.spec.to_dict(),
                "method_name": self.spec.name,
                "regime": self.regime,
                "train_sizes": self.train_sizes,
                "backbone": cfg.backbone,
                **({"backbone_fingerprint": self.feature_cache.fingerprint} if self.feature_cache else {}),
            })
        steps_per_epoch = self.batcher.steps_per_epoch()
        if cfg.max_steps is not None:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
        self.setup(steps_per_epoch * cfg.epochs)
        model, scheduler = self.model, self.scheduler

        log_path = run_dir / "log.jsonl"
        best_score, best_epoch, bad_epochs, step = -math.inf, 0, 0, 0
        first_epoch, elapsed, stopped = 1, 0.0, False
        if last_dir is not None:
            state = load_training_state(
                last_dir, acc.unwrap_model(model), self.method, self.optimizer, scheduler, acc.scaler,
            )
            first_epoch = int(state["epoch"]) + 1
            step, bad_epochs, best_epoch = int(state["step"]), int(state["bad_epochs"]), int(state["best_epoch"])
            best_score, elapsed, stopped = float(state["best_score"]), float(state["elapsed"]), bool(state["stopped"])
            if acc.is_main_process:
                _truncate_log(log_path, first_epoch - 1)
            self.echo(f"resuming {run_dir} after epoch {first_epoch - 1}")
        start = time.perf_counter() - elapsed
        self.echo(
            f"training {self.spec.name} on {', '.join(t.name for t in self.tasks)} "
            f"({sum(self.train_sizes)} rows, {steps_per_epoch} steps/epoch, regime {self.regime}) "
            f"with {cfg.backbone} on {acc.device} -> {run_dir}"
        )
        epoch = first_epoch - 1
        for epoch in range(first_epoch, 1 if stopped else cfg.epochs + 1):
            model.train()
            self.method.train()
            sums: dict[tuple[str, int | None], torch.Tensor] = defaultdict(
                lambda: torch.zeros((), device=acc.device)
            )
            counts: dict[tuple[str, int | None], int] = defaultdict(int)
            task_loss_sum = torch.zeros(len(self.tasks), device=acc.device)
            task_loss_count = torch.zeros(len(self.tasks), device=acc.device)
            steps = self.batcher.epoch(epoch)[:steps_per_epoch]
            bar = tqdm(steps, desc=f"epoch {epoch}", disable=not (cfg.progress and acc.is_main_process),
                       leave=False, dynamic_ncols=True)
            epoch_start = time.perf_counter()
            for plan in bar:
                total, terms, weights = self.train_step(plan, step)
                step += 1
                sums[("loss", None)] += total.detach()
                counts[("loss", None)] += 1
                for key, value in terms.components.items():
                    sums[key] += value
                    counts[key] += 1
                for t, value in terms.task_losses.items():
                    task_loss_sum[t] += value.detach()
                    task_loss_count[t] += 1
                    sums[("w", t)] += weights[t]
                    counts[("w", t)] += 1
            bar.close()
            mean_losses = task_loss_sum / task_loss_count.clamp_min(1)
            self.method.on_epoch_end(epoch, mean_losses)
            train_log = self._summarise(sums, counts)
            val_preds, val_loss = self._predict("val")
            val = score_predictions(self.tasks, self._golds("val"), val_preds)
            score = val["avg"] if cfg.select_by == "avg" else -val_loss
            improved = score > best_score
            record = {
                "epoch": epoch,
                "step": step,
                "lr": scheduler.get_last_lr()[0],
                "train": train_log,
                "val": {"avg": val["avg"], "loss": val_loss, "tasks": val["tasks"]},
                "method": self.method.log_values(),
                "epoch_time_s": round(time.perf_counter() - epoch_start, 3),
                "best": improved,
            }
            if cfg.track_information and "val" in self.encoded:
                record["information"] = self._information()
            if acc.is_main_process:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            self.echo(
                f"epoch {epoch}: train loss {train_log['loss']:.4f}  val Avg {val['avg']:.2f}  "
                f"val loss {val_loss:.4f}" + ("  *" if improved else "")
            )
            if improved:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                if acc.is_main_process:
                    save_checkpoint(
                        run_dir / "checkpoint", acc.unwrap_model(model), self.method, self.backbone,
                        {"epoch": epoch, "step": step, "select_by": cfg.select_by, "score": score},
                    )
            else:
                bad_epochs += 1
            stopped = bool(cfg.patience and bad_epochs >= cfg.patience)
            if acc.is_main_process:
                save_training_state(
                    run_dir / "last", acc.unwrap_model(model), self.method, self.optimizer, scheduler,
                    {"epoch": epoch, "step": step, "best_score": best_score, "best_epoch": best_epoch,
                     "bad_epochs": bad_epochs, "stopped": stopped,
                     "elapsed": time.perf_counter() - start},
                    acc.scaler,
                )
            if stopped:
                self.echo(f"early stop: no improvement for {cfg.patience} epochs")
                break
        acc.wait_for_everyone()
        load_weights(run_dir / "checkpoint", acc.unwrap_model(model), self.method)
        results: dict[str, Any] = {
            "method": self.spec.name,
            "method_spec": self.spec.to_dict(),
            "backbone": cfg.backbone,
            "benchmark": cfg.benchmark if not cfg.task_dirs else "folders",
            "seed": cfg.seed,
            "regime": self.regime,
            "best_epoch": best_epoch,
            "epochs_run": epoch,
            "train_sizes": dict(zip([t.name for t in self.tasks], self.train_sizes, strict=True)),
        }
        for split in ("val", "test"):
            if split not in self.encoded:
                continue
            preds, loss = self._predict(split)
            scored = score_predictions(self.tasks, self._golds(split), preds, self._groups(split))
            results[split] = {**scored, "loss": loss}
            if acc.is_main_process:
                write_predictions(run_dir / "predictions" / split, self.tasks, preds)
        results["train_time_s"] = round(time.perf_counter() - start, 2)
        if acc.is_main_process:
            self.method.write_artifacts(run_dir)
            write_json(run_dir / "results.json", results)
        return TrainResult(run_dir, results)

    def _predict(self, split: str) -> tuple[list[np.ndarray], float]:
        return predict_splits(
            self.accelerator.unwrap_model(self.model), self.method, self.tasks, self.encoded[split],
            self.config.eval_batch_size, self.pad_id, self.accelerator.device, self.autocast_dtype,
            self.accelerator.process_index, self.accelerator.num_processes,
        )

    def _information(self) -> dict[str, Any]:
        """Information-plane estimates on the val split (RNG state restored: results unchanged)."""
        from infomtl.analysis.information import information_estimates

        est = information_estimates(
            self.accelerator.unwrap_model(self.model), self.tasks, self.encoded["val"], self.pad_id,
            self.accelerator.device, batch_size=128, seed=self.config.seed,
        )
        return {"ixz": est["ixz"], "izzt": est["izzt"], "batch_size": est["batch_size"]}

    def _golds(self, split: str) -> list[np.ndarray]:
        return [s.labels for s in self.encoded[split]]

    def _groups(self, split: str) -> list[list[str] | None]:
        """Each task's group per row of ``split`` (stance target, EI-reg emotion), or None."""
        return [self.data.splits[t.name][split].groups for t in self.tasks]

    def _summarise(self, sums: dict, counts: dict) -> dict[str, Any]:
        names = [t.name for t in self.tasks]
        out: dict[str, Any] = {}
        for (name, t), total in sums.items():
            n = counts.get((name, t), 0)
            if n == 0:
                continue
            value = float(total) / n
            if t is None:
                out[name] = value
            else:
                key = "weights" if name == "w" else name
                out.setdefault(key, {})[names[t]] = value
        return out


def train(config: TrainConfig, echo: Any = print) -> TrainResult:
    """Train one configured run (for ``stl`` / ``stl-cnn``: one run per task, see
    :mod:`infomtl.stl`); returns its folder and results."""
    from infomtl import stl

    if config.resume is not None:
        config = resume_config(config.resume)
    if stl.is_single_task(config.method):
        return stl.train_single_task(config, echo)
    return Trainer(config, echo).run()
