"""Single-task baselines: one model per task, reported together.

* ``--method stl``: for each task, a separate run with the same backbone and recipe
  (linear head, the task's own loss: the ``ew`` method on one task).
* ``--method stl-cnn``: for each task, a frozen backbone with a TextCNN head over
  its token states (the ``textcnn`` objective with ``freeze_backbone``).

The driver writes an ordinary run folder per task under the STL folder and then
one combined ``results.json`` with the layout of a multi-task run (per split:
``tasks`` → metric scores, ``scores`` → task score, ``avg`` over tasks, ``loss``
summed over tasks) plus ``"method": "stl"`` and ``"runs": {task: subfolder}``::

    run_dir/
      config.yaml      the STL config (tasks resolved)
      results.json     every task's val/test scores and their Avg
      emotion/         a normal run folder (config.yaml, checkpoint/, results.json ...)
      irony/ ...

The trainer itself knows nothing of this: :func:`infomtl.training.train` hands a
single-task method to :func:`train_single_task`. ``--resume`` of a killed STL run
keeps the tasks that finished, resumes the interrupted task's run from its last
complete epoch and trains the tasks not started yet.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig, load_yaml
from infomtl.errors import ConfigError, InfomtlError
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
    return SINGLE_TASK_METHODS[canonical(config.method)]


def check_single_task_config(config: TrainConfig) -> SingleTaskMethod:
    """Validate an STL config before anything is loaded; return its baseline."""
    base = _baseline(config)
    if config.weighting:
        raise ConfigError(
            f"--method {base.name} trains each task alone, so there are no task losses to weight; "
            f"drop --weighting {config.weighting}"
        )
    if config.method_args and not base.takes_method_args:
        raise ConfigError(
            f"--method {base.name} takes no --method-args (got {', '.join(sorted(config.method_args))}); "
            f"each task's run is plain {base.task_method} on one task"
        )
    if config.method_args and base.task_method in OBJECTIVES:
        valid = {f.name for f in dataclasses.fields(OBJECTIVES[base.task_method].Hyper)}
        unknown = sorted(set(config.method_args) - valid)
        if unknown:
            raise ConfigError(
                f"--method {base.name}: unknown hyperparameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(valid)) or 'none'}"
            )
    try:
        resolve_method(base.task_method, None, config.method_args)
    except ConfigError as exc:
        raise ConfigError(f"--method {base.name}: {exc}") from None
    return base


def task_config(config: TrainConfig, task: str, folder: Path) -> TrainConfig:
    """The config of one task's run inside an STL run."""
    base = _baseline(config)
    return dataclasses.replace(
        config,
        tasks=[task],
        method=base.task_method,
        weighting=None,
        method_args=dict(config.method_args) if base.takes_method_args else {},
        freeze_backbone=config.freeze_backbone or base.freeze_backbone,
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


def _world() -> tuple[int, bool]:
    """Number of processes and whether this one is the main one (torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0


def train_single_task(config: TrainConfig, echo: Any = print):
    """Train one run per task (see the module docstring); returns the STL folder and
    the combined results as a :class:`~infomtl.training.TrainResult`."""
    from infomtl.checkpoint import read_json, write_json
    from infomtl.training import (
        Trainer,
        TrainResult,
        check_output_dir,
        new_run_dir,
        prepare_data,
        resume_config,
    )

    resuming = config.resume is not None
    config = dataclasses.replace(config).validate()
    base = check_single_task_config(config)
    config.method = base.name
    config.freeze_backbone = config.freeze_backbone or base.freeze_backbone
    world, main = _world()
    if world > 1 and config.output_dir is None:
        raise ConfigError(f"--method {base.name} on several processes needs --output-dir")
    if not resuming:
        check_output_dir(config.output_dir)
    names = prepare_data(config).task_names  # validates every task's data up front
    config.tasks = list(names)
    if resuming:
        run_dir = Path(str(config.resume))
    else:
        run_dir = new_run_dir(config.output_dir) if main else Path(str(config.output_dir))
        if main:
            config.save(run_dir / "config.yaml")
    echo(f"{base.name}: one {base.task_method} run per task ({', '.join(names)}) -> {run_dir}")
    start = time.perf_counter()
    per_task: dict[str, dict[str, Any]] = {}
    tasks: list[Task] = []
    spec: dict[str, Any] = {}
    regime = None
    for i, name in enumerate(names, 1):
        sub = run_dir / name
        if resuming and (sub / "results.json").is_file():  # this task finished before the kill
            echo(f"{base.name}: task {i}/{len(names)}: {name} (finished)")
            meta = read_json(sub / "run.json")
            try:
                tasks.append(Task.from_dict(meta["tasks"][0]))
                spec, regime = dict(meta["method"]), meta["regime"]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise InfomtlError(f"{sub / 'run.json'}: malformed ({exc})") from None
            per_task[name] = read_json(sub / "results.json")
            continue
        echo(f"{base.name}: task {i}/{len(names)}: {name}")
        interrupted = resuming and (sub / "config.yaml").is_file()
        trainer = Trainer(resume_config(sub) if interrupted else task_config(config, name, sub), echo)
        result = trainer.run()
        tasks.append(trainer.tasks[0])
        spec, regime = trainer.spec.to_dict(), trainer.regime
        per_task[name] = result.results
        del trainer, result
        gc.collect()
    results: dict[str, Any] = {
        "method": base.name,
        "task_method": base.task_method,
        "method_spec": spec,
        "backbone": config.backbone,
        "benchmark": config.benchmark if not config.task_dirs else "folders",
        "seed": config.seed,
        "regime": regime,
        "freeze_backbone": config.freeze_backbone,
        "runs": {name: name for name in names},
        "best_epoch": {n: r["best_epoch"] for n, r in per_task.items()},
        "epochs_run": {n: r["epochs_run"] for n, r in per_task.items()},
        "train_sizes": {n: r["train_sizes"][n] for n, r in per_task.items()},
    }
    for split in ("val", "test"):
        if all(split in r for r in per_task.values()):
            results[split] = combine_scores(tasks, {n: r[split] for n, r in per_task.items()})
    results["train_time_s"] = round(time.perf_counter() - start, 2)
    if main:
        write_json(run_dir / "results.json", results)
    return TrainResult(run_dir, results)


def is_single_task_run(folder: str | Path) -> bool:
    """Whether ``folder`` is an STL run folder (its ``config.yaml`` names stl or stl-cnn)."""
    path = Path(folder) / "config.yaml"
    if not path.is_file() or (Path(folder) / "checkpoint").exists():
        return False
    method = load_yaml(path).get("method")
    return isinstance(method, str) and is_single_task(method)


def evaluate_single_task_run(
    folder: str | Path, split: str = "test", data_dir: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
    """Re-score every task's run of an STL folder on ``split`` and combine (Avg over tasks)."""
    from infomtl.checkpoint import read_json
    from infomtl.runs import evaluate_run

    parts = stl_parts(Path(folder))
    tasks: list[Task] = []
    scored: dict[str, dict[str, Any]] = {}
    for name, sub in parts.items():
        meta_path = sub / "run.json"
        try:
            task = Task.from_dict(read_json(meta_path)["tasks"][0])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InfomtlError(f"{meta_path}: malformed ({exc})") from None
        if task.name != name:
            raise InfomtlError(f"{meta_path}: holds task {task.name!r}, expected {name!r}")
        tasks.append(task)
        scored[name] = evaluate_run(sub, split, data_dir=data_dir, batch_size=batch_size)
    return combine_scores(tasks, scored)


def stl_parts(folder: Path) -> dict[str, Path]:
    """``{task: sub-run folder}`` of an STL folder (from its ``results.json``)."""
    from infomtl.checkpoint import read_json

    results = folder / "results.json"
    if not results.is_file():
        raise InfomtlError(f"{folder}: no results.json (the STL run did not finish every task)")
    runs = read_json(results).get("runs")
    if not isinstance(runs, dict) or not runs:
        raise InfomtlError(f"{results}: no 'runs' mapping of task to run folder")
    return {str(name): folder / str(sub) for name, sub in runs.items()}
