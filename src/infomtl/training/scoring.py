"""The scoring half of the trainer: each epoch's validation, the selection score, and the
best checkpoint's scores on val and test that make ``results.json``.

Validation predicts every task's validation rows, scores them with the official metrics
(:func:`~infomtl.artifacts.evaluation.score_predictions`) and checks for collapse
(:mod:`infomtl.training.collapse`); ``--select-by`` picks what the best epoch maximises.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from infomtl.artifacts.checkpoint import load_weights
from infomtl.artifacts.evaluation import predict_splits, score_predictions, write_predictions
from infomtl.config import TrainConfig
from infomtl.data.encoding import EncodedSplit
from infomtl.data.types import MultiTaskData
from infomtl.methods import Method, MethodSpec
from infomtl.modeling.model import MultiTaskModel
from infomtl.tasks import Task
from infomtl.training.amp import MixedPrecision
from infomtl.training.autosem import AutoSemSteps
from infomtl.training.collapse import collapse_messages
from infomtl.training.run_state import RunState
from infomtl.training.tracking import Tracking

log = logging.getLogger(__name__)


class Scoring:
    """Validation and testing for :class:`~infomtl.training.trainer.Trainer` (which sets the
    attributes below)."""

    config: TrainConfig
    accelerator: Any
    model: MultiTaskModel
    method: Method
    spec: MethodSpec
    tasks: list[Task]
    data: MultiTaskData
    encoded: dict[str, list[EncodedSplit]]
    train_sizes: list[int]
    regime: str
    primary: int | None
    autosem: AutoSemSteps | None
    tracking: Tracking | None
    pad_id: int
    amp: MixedPrecision
    show_progress: bool

    def _validate(self, epoch: int) -> tuple[dict[str, Any], float, list[str]]:
        """Epoch ``epoch``'s validation scores, loss and collapse warnings (logged here)."""
        val_preds, val_loss = self._predict("val", f"epoch {epoch} val")
        val = score_predictions(self.tasks, self._golds("val"), val_preds)
        collapsed = collapse_messages(self.tasks, self._golds("val"), val_preds, self.config)
        for message in collapsed if self.accelerator.is_main_process else ():
            log.warning("warning: epoch %d: %s", epoch, message)
        return val, val_loss, collapsed

    def _selection_score(self, val: dict[str, Any], val_loss: float) -> float:
        """What ``--select-by`` maximises: validation Avg, minus the loss, or the primary task's score."""
        if self.config.optim.select_by == "loss":
            return -val_loss
        if self.config.optim.select_by == "primary":
            assert self.primary is not None  # TrainConfig.validate: --select-by primary needs --primary-task
            return float(val["scores"][self.tasks[self.primary].name])
        return float(val["avg"])

    def _test_best(self, run_dir: Path, at: RunState, epochs_run: int, start: float) -> dict[str, Any]:
        """Load the best checkpoint, score it on val and test, write its predictions and
        return the run's results (written as ``results.json`` by the trainer)."""
        cfg, acc = self.config, self.accelerator
        acc.wait_for_everyone()
        load_weights(run_dir / "checkpoint", acc.unwrap_model(self.model), self.method)
        results: dict[str, Any] = {
            "method": self.spec.name,
            "method_spec": self.spec.to_dict(),
            "backbone": cfg.model.backbone,
            "benchmark": self.data.source_label(cfg.data.benchmark),
            "seed": cfg.run.seed,
            "regime": self.regime,
            "best_epoch": at.best_epoch,
            "epochs_run": epochs_run,
            "train_sizes": dict(zip([t.name for t in self.tasks], self.train_sizes, strict=True)),
            **({"autosem": self.autosem.summary()} if self.autosem is not None else {}),
        }
        for split in ("val", "test"):
            if split not in self.encoded:
                continue
            preds, loss = self._predict(split, f"best epoch {split}")
            scored = score_predictions(self.tasks, self._golds(split), preds, self._groups(split))
            results[split] = {**scored, "loss": loss}
            if split == "val":  # the final model's, for the closing summary
                results["collapse"] = collapse_messages(self.tasks, self._golds(split), preds, cfg)
            if acc.is_main_process:
                write_predictions(run_dir / "predictions" / split, self.tasks, preds)
        results["train_time_s"] = round(time.perf_counter() - start, 2)
        if self.tracking is not None:
            self.tracking.log({"best": {s: results[s] for s in ("val", "test") if s in results}}, epochs_run)
        return results

    def _predict(self, split: str, bar: str | None = None) -> tuple[list[np.ndarray], float]:
        return self._predict_on(self.encoded[split], bar)

    def _predict_on(self, splits: list[EncodedSplit], bar: str | None = None) -> tuple[list[np.ndarray], float]:
        return predict_splits(
            self.accelerator.unwrap_model(self.model), self.method, self.tasks, splits,
            self.config.batching.eval_batch_size, self.pad_id, self.accelerator.device, self.amp.dtype,
            self.accelerator.process_index, self.accelerator.num_processes,
            progress=bar if self.show_progress else None,
        )

    def _golds(self, split: str) -> list[np.ndarray]:
        return [s.labels for s in self.encoded[split]]

    def _groups(self, split: str) -> list[list[str] | None]:
        """Each task's group per row of ``split`` (stance target, EI-reg emotion), or None."""
        return [self.data.splits[t.name][split].groups for t in self.tasks]
