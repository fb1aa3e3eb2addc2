"""Training the single-task baselines: one model per task, reported together.

The baselines (``--method stl``, ``stl-cnn``) are defined in
:mod:`infomtl.methods.single_task`. The driver writes an ordinary run folder per task under the STL folder and then
one combined ``results.json`` with the layout of a multi-task run (per split:
``tasks`` → metric scores, ``scores`` → task score, ``avg`` over tasks, ``loss``
summed over tasks; ``collapse``: every task's collapse messages) plus ``"method": "stl"``
and ``"runs": {task: subfolder}``::

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

import copy
import gc
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infomtl.artifacts.run_folder import check_output_dir, new_run_dir, resume_command, resume_config
from infomtl.config import TrainConfig
from infomtl.data.loading import prepare_data, task_refs
from infomtl.data.refs import task_entries
from infomtl.errors import ConfigError, InfomtlError, Interrupted
from infomtl.fileio import WriteError, read_json, write_json, write_text
from infomtl.methods.single_task import SingleTaskMethod, check_single_task_config, combine_scores, task_config
from infomtl.tasks import Task
from infomtl.training.run_state import with_resume_hint
from infomtl.training.trainer import EpochHook, Trainer, TrainResult

log = logging.getLogger(__name__)


def _world() -> tuple[int, bool]:
    """Number of processes and whether this one is the main one (torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0


def train_single_task(config: TrainConfig, epoch_hooks: Sequence[EpochHook] = ()) -> TrainResult:
    """Train one run per task (see the module docstring), each with ``epoch_hooks``;
    returns the STL folder and the combined results."""

    resuming = config.run.resume is not None
    config = copy.deepcopy(config).validate()
    base = check_single_task_config(config)
    config.method.name = base.name
    config.model.freeze_backbone = config.model.freeze_backbone or base.freeze_backbone
    world, main = _world()
    if world > 1 and config.run.output_dir is None:
        raise ConfigError(f"--method {base.name} on several processes needs --output-dir")
    if not resuming:
        check_output_dir(config.run.output_dir)
    data = prepare_data(config)  # validates every task's data up front
    names = data.task_names
    config.data.tasks = task_entries(config, task_refs(config, data))  # entries naming exactly these tasks
    run_dir = Path(str(config.run.resume)) if resuming else (
        new_run_dir(config.run.output_dir) if main else Path(str(config.run.output_dir)))
    try:
        if main and not resuming:
            write_text(run_dir / "config.yaml", config.to_yaml())
        label = data.source_label(config.data.benchmark)
        return _train_tasks(config, base, names, run_dir, resuming, epoch_hooks, label)
    except Interrupted as exc:  # the command resumes the STL folder, not the task's run
        raise Interrupted(exc.signal_name, exc.saved, resume_command(run_dir), exc.exit_status) from None
    except WriteError as exc:
        raise with_resume_hint(exc, run_dir) from None


def _train_tasks(config: TrainConfig, base: SingleTaskMethod, names: Sequence[str], run_dir: Path, resuming: bool,
                 epoch_hooks: Sequence[EpochHook], benchmark: str) -> TrainResult:
    """Train (or, resuming, finish) each task's run in ``run_dir``, then combine their results
    (``benchmark``: what the tasks come from, for results.json)."""
    main = _world()[1]
    progress = log.info if main else log.debug  # one process speaks for all
    progress("%s: one %s run per task (%s) -> %s", base.name, base.task_method, ", ".join(names), run_dir)
    start = time.perf_counter()
    per_task: dict[str, dict[str, Any]] = {}
    tasks: list[Task] = []
    spec: dict[str, Any] = {}
    regime = None
    for i, name in enumerate(names, 1):
        sub = run_dir / name
        if resuming and (sub / "results.json").is_file():  # this task finished before the kill
            progress("%s: task %d/%d: %s (finished)", base.name, i, len(names), name)
            meta = read_json(sub / "run.json")
            try:
                tasks.append(Task.from_dict(meta["tasks"][0]))
                spec, regime = dict(meta["method"]), meta["regime"]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise InfomtlError(f"{sub / 'run.json'}: malformed ({exc})") from None
            per_task[name] = read_json(sub / "results.json")
            continue
        progress("%s: task %d/%d: %s", base.name, i, len(names), name)
        interrupted = resuming and (sub / "config.yaml").is_file()
        trainer = Trainer(
            resume_config(sub) if interrupted else task_config(config, name, sub), epoch_hooks
        )
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
        "backbone": config.model.backbone,
        "benchmark": benchmark,
        "seed": config.run.seed,
        "regime": regime,
        "freeze_backbone": config.model.freeze_backbone,
        "runs": {name: name for name in names},
        "best_epoch": {n: r["best_epoch"] for n, r in per_task.items()},
        "epochs_run": {n: r["epochs_run"] for n, r in per_task.items()},
        "train_sizes": {n: r["train_sizes"][n] for n, r in per_task.items()},
    }
    for split in ("val", "test"):
        if all(split in r for r in per_task.values()):
            results[split] = combine_scores(tasks, {n: r[split] for n, r in per_task.items()})
    results["collapse"] = [m for r in per_task.values() for m in r.get("collapse", [])]
    results["train_time_s"] = round(time.perf_counter() - start, 2)
    if main:
        write_json(run_dir / "results.json", results)
    return TrainResult(run_dir, results)


