"""Training on ``accelerate``: the papers' recipe, on a laptop CPU or a GPU cluster.

One step: encode the mixed batch once (twice stacked for two-view objectives),
run each head on its task's rows, let the method turn the outputs into one loss
(or one set of gradients), clip the gradient norm, step. After each epoch the
model is scored on the validation split; the best epoch (by validation Avg, or
loss) is checkpointed; training stops after ``patience`` epochs without
improvement; the best checkpoint is then scored on val and test.

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
from infomtl.data.batching import Batcher, EncodedSplit, collate, encode, shard
from infomtl.errors import ConfigError, InfomtlError
from infomtl.evaluation import predict_splits, score_predictions, write_predictions
from infomtl.methods import BackwardContext, Method, MethodSpec, resolve_method
from infomtl.model import MultiTaskModel
from infomtl.tasks import Task, TaskKind


def resolve_spec(config: TrainConfig) -> MethodSpec:
    """The validated method of a config (fails before anything is loaded)."""
    return resolve_method(config.method, config.weighting, config.method_args)


def prepare_data(config: TrainConfig) -> data_mod.MultiTaskData:
    """Load the configured tasks and apply the data-constrained / smoke-run limits."""
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
        from accelerate.utils import set_seed

        self.config = config.validate()
        self.spec = resolve_spec(config)
        if config.resume is None:
            check_output_dir(config.output_dir)
        self.echo = echo
        self.accelerator = Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)
        set_seed(config.seed)
        self.data = prepare_data(config)
        self.tasks: list[Task] = list(self.data.tasks)
        self.backbone: Backbone = load_backbone(config.backbone, config.pooling, config.max_length)
        tok = self.backbone.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.encoded: dict[str, list[EncodedSplit]] = {}
        for split in ("train", "val", "test"):
            if all(split in self.data.splits[t.name] for t in self.tasks):
                self.encoded[split] = [
                    encode(self.data.splits[t.name][split], tok, config.max_length) for t in self.tasks
                ]
        self.train_sizes = [len(s) for s in self.encoded["train"]]
        self.method = Method(
            self.spec, self.tasks, self.backbone.hidden_size, self.train_sizes,
            config.head_dropout, config.head_hidden,
        )
        self.regime = self.method.regime(config.regime)
        self.batcher = Batcher(
            [s.lengths for s in self.encoded["train"]], config.batch_size, self.regime,
            config.seed, config.temperature,
        )
        self.model = MultiTaskModel(
            self.backbone.encoder, self.method.build_decoder(), config.pooling, config.chunk_tokens,
            freeze_encoder=config.freeze_backbone,
        )

    # -- setup -------------------------------------------------------------------------

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        method_params = [p for p in self.method.parameters() if p.requires_grad]
        if method_params:
            groups.append({"params": method_params, "weight_decay": 0.0})
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
        """Build the optimizer and schedule and hand everything to ``accelerate``."""
        acc = self.accelerator
        optimizer = self._optimizer()
        scheduler = self._scheduler(optimizer, total_steps)
        self.model, self.optimizer, self.scheduler = acc.prepare(self.model, optimizer, scheduler)
        self.method.to(acc.device)
        inner = acc.unwrap_model(self.model)
        # shared = the encoder plus any layer the decoder shares between tasks (a bottleneck)
        shared = [p for p in inner.encoder.parameters() if p.requires_grad]
        shared += [p for p in getattr(inner.decoder, "shared_parameters", list)() if p.requires_grad]
        heads = [list(h.parameters()) for h in getattr(inner.decoder, "heads", [])]
        self.ctx = BackwardContext(acc.backward, shared, heads)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

    def train_step(self, plan: list[np.ndarray]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """One optimisation step on the global step ``plan`` (this process's shard of it)."""
        acc = self.accelerator
        local = shard(plan, acc.process_index, acc.num_processes)
        batch = collate(self.encoded["train"], local, self.pad_id).to(acc.device)
        with acc.autocast():
            out = self.model(batch, views=self.method.views)
        total, terms, weights = self.method.loss(out, batch)
        self.method.backward(total, terms, self.ctx)
        if self.config.grad_clip > 0:
            acc.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.weighting.on_step_end(terms)
        return total, terms, weights

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
            run_dir = new_run_dir(cfg.output_dir) if acc.is_main_process else Path(cfg.output_dir or ".")
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
                total, terms, weights = self.train_step(plan)
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
            self.method.weighting.on_epoch_end(epoch, mean_losses)
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
            raise InfomtlError(f"--resume {config.resume}: resuming {config.method} runs is not supported; "
                               "train it again")
    if stl.is_single_task(config.method):
        return stl.train_single_task(config, echo)
    return Trainer(config, echo).run()
