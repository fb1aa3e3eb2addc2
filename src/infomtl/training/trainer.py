"""Training on ``accelerate``: the papers' recipe, on a laptop CPU or a GPU cluster.

After each epoch the model is scored on the validation split; the best epoch (by
validation Avg, loss, or the primary task's score) is checkpointed; training stops after
``patience`` epochs without improvement; the best checkpoint is then scored on val and test.
The optimisation step itself: :class:`~infomtl.training.steps.Steps`; validation and
testing: :class:`~infomtl.training.scoring.Scoring`. The batcher plans each
epoch's steps, except in the autosem regime, which draws each round's task while training
(:mod:`infomtl.training.autosem`).

The run folder's files: :mod:`infomtl.artifacts.run_folder`.

Per epoch the writes are: the log line, then ``checkpoint/`` (if improved), then
``last/`` (atomically). A resume continues after ``last/``'s epoch, dropping log lines
of later epochs; a kill between ``checkpoint/`` and ``last/`` just retrains that epoch,
which (same state, same data order) rewrites the same best checkpoint.
``results.json`` is written last and marks a finished run. SIGINT / SIGTERM stop the run
at the next step boundary, with ``last/`` written there (:mod:`infomtl.training.run_state`);
a write that fails stops it with :class:`~infomtl.fileio.WriteError` and the command that
resumes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from infomtl import distributed
from infomtl.artifacts.checkpoint import (
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from infomtl.artifacts.evaluation import score_predictions
from infomtl.artifacts.run_folder import (
    check_output_dir,
    clear_run_dir,
    new_run_dir,
    truncate_log,
)
from infomtl.config import TrainConfig
from infomtl.data.batching import Batcher
from infomtl.data.encoding import EncodedSplit, encode
from infomtl.data.loading import limit_data, load_data
from infomtl.errors import ConfigError
from infomtl.fileio import WriteError, append_line, recover_folder, write_json, write_text
from infomtl.logs import show_progress
from infomtl.methods import OBJECTIVES, Method, MethodSpec, resolve_method
from infomtl.modeling.backbones import Backbone, load_backbone
from infomtl.modeling.building import build_model, reads_layers, shared_size, uses_features
from infomtl.modeling.feature_cache import FeatureCache
from infomtl.precision import slow_bf16_warning
from infomtl.tasks import Task
from infomtl.threads import busy_note
from infomtl.training import signals
from infomtl.training.amp import MixedPrecision
from infomtl.training.autosem import AutoSemSteps, primary_index, ratio_list, reward_splits
from infomtl.training.epoch_stats import EpochStats
from infomtl.training.run_state import RunState, interrupted, with_resume_hint
from infomtl.training.scoring import Scoring
from infomtl.training.steps import Steps
from infomtl.training.tracking import Tracking, check_trackers
from infomtl.version import __version__

log = logging.getLogger(__name__)

#: Called after each epoch's validation as ``hook(trainer)``; returns the entries it
#: adds to the epoch's line of ``log.jsonl`` (see :mod:`infomtl.training.hooks`).
EpochHook = Callable[["Trainer"], dict[str, Any]]


def resolve_spec(config: TrainConfig) -> MethodSpec:
    """The validated method of a config (fails before anything is loaded)."""
    return resolve_method(config.method.name, config.method.weighting, config.method.args)


@dataclass
class TrainResult:
    run_dir: Path
    results: dict[str, Any]


class Trainer(Steps, Scoring):
    """Runs one configured training job end to end (see the module docstring)."""

    def __init__(self, config: TrainConfig, epoch_hooks: Sequence[EpochHook] = ()) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration, set_seed

        self.config = config.validate()
        self.spec = resolve_spec(config)
        self.epoch_hooks = list(epoch_hooks)
        token_states = OBJECTIVES[self.spec.objective].token_states
        # several processes (torchrun / accelerate launch) on a machine without a GPU: gloo
        # on the CPU (accelerate would otherwise set up one independent process per rank)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = config.run.cpu or (launched > 1 and not torch.cuda.is_available())
        # split_batches: the schedule steps once per (global) step under several processes;
        # the precision is the run's own (training/amp.py), as one process may train several
        # runs of different precisions and accelerate keeps one per process
        self.accelerator = Accelerator(cpu=cpu, dataloader_config=DataLoaderConfiguration(split_batches=True))
        self.amp = MixedPrecision(config.run.mixed_precision, self.accelerator.device)
        self.report_to = check_trackers(config.run.report_to)  # before any work: a missing package stops here
        warning = slow_bf16_warning(config.run.mixed_precision, self.accelerator.device.type)
        if warning and self.accelerator.is_main_process:
            log.warning(warning)
        if self.accelerator.num_processes != launched:
            raise ConfigError(
                f"launched as {launched} processes but accelerate set up "
                f"{self.accelerator.num_processes}; check the launcher and the device"
            )
        # only the main process creates the run folder
        if config.run.resume is None and self.accelerator.is_main_process:
            check_output_dir(config.run.output_dir)
        # bars from the main process only (stderr); off when stderr is not a terminal unless asked
        self.show_progress = show_progress(config.run.progress) and self.accelerator.is_main_process
        set_seed(config.run.seed)
        full = load_data(config)
        self.data = limit_data(config, full)
        self.tasks: list[Task] = list(self.data.tasks)
        self.backbone: Backbone = load_backbone(config.model.backbone, config.model.pooling, config.model.max_length)
        tok = self.backbone.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.feature_cache = cache = None
        if uses_features(config, token_states):
            self.feature_cache = cache = FeatureCache(
                self.backbone, config.model.feature_cache, self.accelerator.device, progress=self.show_progress,
                dtype=self.amp.dtype, layers=reads_layers(config))
        self.encoded: dict[str, list[EncodedSplit]] = {}
        for split in ("train", "val", "test"):
            if all(split in self.data.splits[t.name] for t in self.tasks):
                parts = [self.data.splits[t.name][split] for t in self.tasks]
                self.encoded[split] = [
                    encode(part, tok, config.model.max_length) if cache is None
                    else cache.encoded(full.splits[part.task.name][split], part)
                    for part in parts
                ]
        self.train_sizes = [len(s) for s in self.encoded["train"]]
        self.method = Method(
            self.spec, self.tasks, shared_size(config, self.backbone, token_states),
            self.train_sizes, config.model.head_dropout, config.model.head_hidden,
        )
        self.regime = self.method.regime(config.batching.regime)
        self.primary = primary_index(config, self.tasks)
        self.batcher = Batcher(
            [s.lengths for s in self.encoded["train"]], config.batching.batch_size, self.regime,
            config.run.seed, config.batching.temperature, ratios=ratio_list(config, self.tasks),
        )
        self.autosem: AutoSemSteps | None = None
        if self.regime == "autosem":
            self.autosem = self._autosem_steps()
        self.model = build_model(config, self.backbone, self.method.build_decoder(), [t.name for t in self.tasks])

    def _autosem_steps(self) -> AutoSemSteps:
        """The autosem regime's rounds, with their reward score (:mod:`infomtl.training.autosem`)."""
        cfg = self.config
        if "val" not in self.encoded:
            raise ConfigError("--regime autosem scores a validation split; these tasks have none")
        splits = reward_splits(self.encoded["val"], [self.data.splits[t.name]["val"] for t in self.tasks],
                               self.primary, cfg.batching.autosem_eval_rows, cfg.run.seed)
        scored = [k for k in range(len(self.tasks)) if self.primary is None or k == self.primary]

        def score() -> float:
            with torch.random.fork_rng(devices=[self.accelerator.device] if self.accelerator.device.type == "cuda"
                                       else []):
                preds, _ = self._predict_on(splits)
            return float(score_predictions([self.tasks[k] for k in scored], [splits[k].labels for k in scored],
                                           [preds[k] for k in scored])["avg"])

        name = "avg" if self.primary is None else self.tasks[self.primary].name
        return AutoSemSteps(self.batcher, [t.name for t in self.tasks], score, cfg.batching.autosem_eval_every,
                            cfg.run.seed,
                            scored_on=name)

    # -- loop --------------------------------------------------------------------------

    def _progress(self, message: str, *args: Any) -> None:
        """A progress line (INFO), from the main process only."""
        if self.accelerator.is_main_process:
            log.info(message, *args)

    def run(self) -> TrainResult:
        """Train, validate, checkpoint and test (module docstring). A failed write raises
        :class:`~infomtl.fileio.WriteError` with the command that resumes; SIGINT / SIGTERM
        stop at the next step boundary with ``last/`` saved (:mod:`infomtl.training.signals`)."""
        self.run_dir: Path | None = None
        self.tracking: Tracking | None = None
        try:
            with signals.graceful_stop(enabled=self.accelerator.num_processes == 1):
                run_dir, last_dir = self._open_run_dir()
                if self.accelerator.is_main_process and self.report_to:
                    self.tracking = Tracking(self.report_to, run_dir, self.config.to_dict())
                return self._run(run_dir, last_dir)
        except WriteError as exc:
            if self.run_dir is None:
                raise
            raise with_resume_hint(exc, self.run_dir) from None
        finally:
            if self.tracking is not None:
                self.tracking.finish()

    def _open_run_dir(self) -> tuple[Path, Path | None]:
        """The run folder (new, or the one resumed) with its ``config.yaml`` and ``run.json``,
        and its ``last/`` when there is a state to resume from."""
        cfg, acc = self.config, self.accelerator
        last_dir = None
        if cfg.run.resume is not None:
            run_dir = Path(cfg.run.resume)
            if acc.is_main_process:
                for name in ("last", "checkpoint"):
                    recover_folder(run_dir / name)
                if not (run_dir / "last" / "state.json").is_file():
                    log.info("%s: no complete epoch to resume from; training from scratch", run_dir)
                    clear_run_dir(run_dir)
            acc.wait_for_everyone()
            if (run_dir / "last" / "state.json").is_file():
                last_dir = run_dir / "last"
        else:
            made = new_run_dir(cfg.run.output_dir) if acc.is_main_process else None
            run_dir = Path(distributed.broadcast_object(None if made is None else str(made)))
        self.run_dir = run_dir
        if acc.is_main_process:
            if last_dir is None:
                write_text(run_dir / "config.yaml", cfg.to_yaml())
            write_json(run_dir / "run.json", {
                "infomtl_version": __version__,
                "tasks": [t.to_dict() for t in self.tasks],
                "sources": dict(self.data.sources),  # task -> tweeteval, folder:PATH, hf:DATASET[:CONFIG]
                "pairs": self.data.pair_modes(),  # how each task's text pair reaches the encoder
                "method": self.spec.to_dict(),
                "method_name": self.spec.name,
                "regime": self.regime,
                "train_sizes": self.train_sizes,
                "backbone": cfg.model.backbone,
                **({"backbone_fingerprint": self.feature_cache.fingerprint} if self.feature_cache else {}),
            })
        return run_dir, last_dir

    def _save_last(self, at: RunState, start: float, stats: EpochStats | None = None) -> None:
        """``last/``: the training state after ``at`` (mid-epoch: with the epoch's running sums)."""
        at.elapsed = time.perf_counter() - start
        if not self.accelerator.is_main_process:
            return
        assert self.run_dir is not None  # set when the run starts
        state, tensors = at.to_state(), None
        if self.autosem is not None:
            state["autosem"] = self.autosem.state_dict()
        if stats is not None:
            tensors, state["epoch_stats"] = stats.state()
        save_training_state(
            self.run_dir / "last", self.accelerator.unwrap_model(self.model), self.method, self.optimizer,
            self.scheduler, state, self.amp.scaler, tensors,
        )

    def _run(self, run_dir: Path, last_dir: Path | None) -> TrainResult:
        cfg, acc = self.config, self.accelerator
        steps_per_epoch = self.batcher.steps_per_epoch()
        if cfg.optim.max_steps is not None:
            steps_per_epoch = min(steps_per_epoch, cfg.optim.max_steps)
        self.setup(steps_per_epoch * cfg.optim.epochs)
        at, saved = self._resume(run_dir, last_dir)
        start = time.perf_counter() - at.elapsed
        self._progress(
            "training %s on %s (%d rows, %d steps/epoch, regime %s) with %s on %s (CPU threads: %d) -> %s",
            self.spec.name, ", ".join(t.name for t in self.tasks), sum(self.train_sizes), steps_per_epoch,
            self.regime, cfg.model.backbone, acc.device, torch.get_num_threads(), run_dir,
        )
        if acc.is_main_process and (note := busy_note(torch.get_num_threads())) is not None:
            log.warning("%s", note)
        if self.autosem is not None:
            self.autosem.begin()
        epoch = at.epoch
        for epoch in range(at.epoch + 1, 1 if at.stopped else cfg.optim.epochs + 1):
            epoch_start = time.perf_counter()
            stats = self._train_epoch(run_dir, epoch, steps_per_epoch, at, saved, start)
            self._end_epoch(run_dir, epoch, stats, at, epoch_start)
            self._save_last(at, start)
            if at.stopped:
                self._progress("early stop: no improvement for %d epochs", cfg.optim.patience)
                break
        if signals.requested() is not None:  # before the test: last/ holds the last epoch
            raise interrupted(run_dir, at, saved_now=False)
        results = self._test_best(run_dir, at, epoch, start)
        if acc.is_main_process:
            self.method.write_artifacts(run_dir)
            write_json(run_dir / "results.json", results)
        return TrainResult(run_dir, results)

    def _resume(self, run_dir: Path, last_dir: Path | None) -> tuple[RunState, dict[str, Any]]:
        """Where the run stands: a fresh state, or ``last/``'s (with the log cut back to it)."""
        if last_dir is None:
            return RunState(), {}
        acc = self.accelerator
        saved = load_training_state(
            last_dir, acc.unwrap_model(self.model), self.method, self.optimizer, self.scheduler, self.amp.scaler,
        )
        at = RunState.from_state(saved)
        if self.autosem is not None:
            self.autosem.load_state_dict(saved["autosem"])
        if acc.is_main_process:
            truncate_log(run_dir / "log.jsonl", at.epoch)
        self._progress("resuming %s after %s", run_dir, at.where())
        return at, saved

    def _train_epoch(self, run_dir: Path, epoch: int, steps_per_epoch: int, at: RunState,
                     saved: dict[str, Any], start: float) -> EpochStats:
        """The steps of ``epoch`` from ``at.epoch_step`` on; a stop request at a step boundary
        saves ``last/`` (if steps ran since it was written) and raises."""
        acc = self.accelerator
        self.model.train()
        self.method.train()
        stats = EpochStats([t.name for t in self.tasks], acc.device)
        if at.epoch_step:  # resumed mid-epoch
            stats.load(saved["extra_tensors"], saved["epoch_stats"])
        elif (regularizer := acc.unwrap_model(self.model).regularizer) is not None:
            regularizer.anchor()  # θ' of the successive regularisation: this epoch's start
        steps = self._epoch_steps(epoch, steps_per_epoch, at.epoch_step)
        bar = tqdm(steps, desc=f"epoch {epoch}", initial=at.epoch_step, total=steps_per_epoch,
                   disable=not self.show_progress, leave=False, dynamic_ncols=True, unit="step")
        fresh = 0  # steps since last/ was written
        for plan in bar:
            if signals.requested() is not None:  # a step boundary: save and stop
                bar.close()
                if fresh:
                    self._save_last(at, start, stats)
                raise interrupted(run_dir, at, saved_now=fresh > 0)
            total, terms, weights = self.train_step(plan, at.step)
            if self.autosem is not None:
                self.autosem.after_step()
            at.step, at.epoch_step, fresh = at.step + 1, at.epoch_step + 1, fresh + 1
            stats.add(total, terms, weights)
        bar.close()
        return stats

    def _end_epoch(self, run_dir: Path, epoch: int, stats: EpochStats, at: RunState, epoch_start: float) -> None:
        """Validate, write the epoch's log line (its time: training and validation), checkpoint
        an improvement, count patience."""
        cfg, acc = self.config, self.accelerator
        self.method.on_epoch_end(epoch, stats.mean_task_losses())
        train_log = stats.summary()
        val, val_loss, collapsed = self._validate(epoch)
        score = self._selection_score(val, val_loss)
        improved = score > at.best_score
        record = {
            "epoch": epoch,
            "step": at.step,
            "lr": self.scheduler.get_last_lr()[0],
            "train": train_log,
            "val": {"avg": val["avg"], "loss": val_loss, "tasks": val["tasks"]},
            "method": self.method.log_values(),
            "epoch_time_s": round(time.perf_counter() - epoch_start, 3),
            "best": improved,
            **({"collapse": collapsed} if collapsed else {}),
            **({"autosem": self.autosem.epoch_log()} if self.autosem is not None else {}),
        }
        for hook in self.epoch_hooks:
            record.update(hook(self))
        if acc.is_main_process:
            append_line(run_dir / "log.jsonl", json.dumps(record))
        if self.tracking is not None:
            self.tracking.log(record, epoch)
        self._progress(
            "epoch %d: train loss %.4f  val Avg %.2f  val loss %.4f%s",
            epoch, train_log["loss"], val["avg"], val_loss, "  *" if improved else "",
        )
        if improved:
            at.best_score, at.best_epoch, at.bad_epochs = score, epoch, 0
            if acc.is_main_process:
                save_checkpoint(
                    run_dir / "checkpoint", acc.unwrap_model(self.model), self.method, self.backbone,
                    {"epoch": epoch, "step": at.step, "select_by": cfg.optim.select_by, "score": score},
                )
        else:
            at.bad_epochs += 1
        at.stopped = bool(cfg.optim.patience and at.bad_epochs >= cfg.optim.patience)
        at.epoch, at.epoch_step = epoch, 0

    def _epoch_steps(self, epoch: int, count: int, start: int) -> Iterator[list[np.ndarray]]:
        """Steps ``start`` to ``count`` of ``epoch``: planned in advance by the batcher, or, in
        the autosem regime, each drawn when it is due."""
        if self.autosem is None:
            yield from self.batcher.epoch(epoch)[start:count]
            return
        for _ in range(start, count):
            yield self.autosem.plan(epoch)
