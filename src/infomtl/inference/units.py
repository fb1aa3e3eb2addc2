"""The trained models a predictor runs: one model, its tokenizer and the tasks it
predicts (a run has one unit, an STL folder one per task), and how each task saw
text pairs in training.

Units are built from a run folder (:func:`unit_from_run`) or an export folder
(:func:`infomtl.inference.export.load_export_units`). A unit's model is a
:class:`~infomtl.modeling.model.MultiTaskModel`, or for an ONNX export an
:class:`~infomtl.inference.onnx_units.OnnxModel` that runs the same forward in onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infomtl.artifacts.run_folder import load_run
from infomtl.data.folder import load_task_folder
from infomtl.data.loading import benchmark_arg
from infomtl.errors import InfomtlError
from infomtl.fileio import read_json
from infomtl.modeling.model import MultiTaskModel
from infomtl.tasks import Task

#: How a task's text pair reaches the encoder: no pair; the pair first and required
#: (EI-reg's emotion); the pair second and optional (task folders with ``text_pair``).
PAIR_MODES = ("none", "first", "second")


class UnitModel(Protocol):
    """What a predictor needs of a unit's model: ``model(batch, views=1).heads[t].mean`` is
    task t's ``(N, C)`` logits or values on the rows ``batch.rows[t]``."""

    def to(self, device: Any) -> Any: ...

    def eval(self) -> Any: ...

    def __call__(self, batch: Any, views: int = 1) -> Any: ...


@dataclass
class ModelUnit:
    """One trained model and the tasks it predicts (an STL predictor holds several)."""

    model: MultiTaskModel | UnitModel
    tokenizer: Any
    max_length: int
    tasks: list[Task]
    pair_modes: dict[str, str]

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)


def pair_modes(config: Any, tasks: list[Task], run_dir: Path | None = None) -> dict[str, str]:
    """How each task of a run saw text pairs in training (see :data:`PAIR_MODES`): as its
    ``run.json`` records it, else (runs of earlier versions) from its config."""
    meta_path = run_dir / "run.json" if run_dir is not None else None
    recorded = read_json(meta_path).get("pairs") if meta_path is not None and meta_path.is_file() else None
    if isinstance(recorded, dict) and all(recorded.get(t.name) in PAIR_MODES for t in tasks):
        return {t.name: recorded[t.name] for t in tasks}
    modes = {t.name: "none" for t in tasks}
    if config.data.task_dirs:
        for folder in config.data.task_dirs:
            try:
                task, splits = load_task_folder(Path(folder))
            except InfomtlError:
                continue  # the folder moved: assume no pairs (pairs given are then ignored)
            if task.name in modes and splits["train"].pairs is not None:
                modes[task.name] = "second"
    elif (config.data.benchmark == "affecteval" and "ei_reg" in modes
          and benchmark_arg(config, "ei_reg_pair") == "first"):
        modes["ei_reg"] = "first"
    return modes


def unit_from_run(folder: Path) -> ModelUnit:
    """The unit of a run folder's best checkpoint."""
    run = load_run(folder)
    return ModelUnit(run.model, run.backbone.tokenizer, run.config.model.max_length, run.tasks,
                     pair_modes(run.config, run.tasks, folder))
