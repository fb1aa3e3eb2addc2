"""Single-task baselines: one model per task, reported together.

* ``--method stl``: for each task, a separate run with the same backbone and recipe
  (linear head, the task's own loss: the ``ew`` method on one task).
* ``--method stl-cnn``: for each task, a frozen backbone with a TextCNN head over
  its token states (the ``textcnn`` objective with ``freeze_backbone``).

This module defines the baselines, validates their configs and combines the tasks'
scores; :mod:`infomtl.training.stl` trains them and
:mod:`infomtl.artifacts.run_folder` reads their folders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.loading import task_refs
from infomtl.data.refs import config_for_task
from infomtl.errors import ConfigError, unknown_names
from infomtl.methods.registry import OBJECTIVES, canonical, resolve_method
from infomtl.metrics import average, task_score
from infomtl.tasks import Task


@dataclass(frozen=True)
class SingleTaskMethod:
    """A single-task baseline: the method each task's run uses, and how it is set up."""

    name: str
    task_method: str
    freeze_backbone: bool
    takes_method_args: bool
    description: str
    reference: str


SINGLE_TASK_METHODS: dict[str, SingleTaskMethod] = {
    m.name: m
    for m in (
        SingleTaskMethod(
            "stl", "ew", False, False,
            "one model per task: same backbone and recipe, linear head, the task's own loss",
            "single-task learning (Caruana 1997)",
        ),
        SingleTaskMethod(
            "stl-cnn", "textcnn", True, True,
            "one model per task: frozen backbone, TextCNN head over its token states "
            "(kernels 3/4/5, 216 filters each, masked max-pool, dropout 0.5)",
            "Kim 2014 (TextCNN)",
        ),
    )
}


def is_single_task(method: str) -> bool:
    """Whether ``--method`` names a single-task baseline (``stl``, ``stl-cnn``)."""
    return canonical(method) in SINGLE_TASK_METHODS


def _baseline(config: TrainConfig) -> SingleTaskMethod:
    return SINGLE_TASK_METHODS[canonical(config.method.name)]


def check_single_task_config(config: TrainConfig) -> SingleTaskMethod:
    """Validate an STL config before anything is loaded; return its baseline."""
    base = _baseline(config)
    if config.method.weighting:
        raise ConfigError(
            f"--method {base.name} trains each task alone, so there are no task losses to weight; "
            f"drop --weighting {config.method.weighting}"
        )
    if config.batching.regime in ("autosem", "ratios") or config.batching.primary_task is not None:
        given = f"--regime {config.batching.regime}" if config.batching.primary_task is None else "--primary-task"
        raise ConfigError(
            f"--method {base.name} trains each task alone, so there are no tasks to choose or mix; drop {given}"
        )
    if config.method.args and not base.takes_method_args:
        raise ConfigError(
            f"--method {base.name} takes no --method-args (got {', '.join(sorted(config.method.args))}); "
            f"each task's run is plain {base.task_method} on one task"
        )
    if config.method.args and base.task_method in OBJECTIVES:
        valid = {f.name for f in dataclasses.fields(OBJECTIVES[base.task_method].Hyper)}
        unknown = sorted(set(config.method.args) - valid)
        if unknown:
            raise ConfigError(
                f"--method {base.name}: {unknown_names('hyperparameter', unknown, valid)}; "
                f"valid: {', '.join(sorted(valid)) or 'none'}"
            )
    try:
        resolve_method(base.task_method, None, config.method.args)
    except ConfigError as exc:
        raise ConfigError(f"--method {base.name}: {exc}") from None
    return base


def task_config(config: TrainConfig, task: str, folder: Path) -> TrainConfig:
    """The config of one task's run inside an STL run: ``config`` reduced to that task's source."""
    base = _baseline(config)
    ref = next((r for r in task_refs(config) if r.name == task), None)
    if ref is None:
        raise ConfigError(f"task {task!r} is not a task of this run")
    return config_for_task(config, ref).replace(
        method=base.task_method,
        weighting=None,
        method_args=dict(config.method.args) if base.takes_method_args else {},
        freeze_backbone=config.model.freeze_backbone or base.freeze_backbone,
        output_dir=str(folder),
        resume=None,
    )


def combine_scores(tasks: list[Task], scored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One split's combined scores from each task's own ``{tasks, scores, avg, loss}``
    (and per-group scores, where a task has ``groups``)."""
    per_task = {t.name: scored[t.name]["tasks"][t.name] for t in tasks}
    out: dict[str, Any] = {
        "tasks": per_task,
        "scores": {t.name: task_score(t, per_task[t.name]) for t in tasks},
        "avg": average(tasks, per_task),
    }
    groups = {
        t.name: scored[t.name]["groups"][t.name]
        for t in tasks
        if t.name in scored[t.name].get("groups", {})
    }
    if groups:
        out["groups"] = groups
    if all("loss" in scored[t.name] for t in tasks):
        out["loss"] = float(sum(scored[t.name]["loss"] for t in tasks))
    return out
