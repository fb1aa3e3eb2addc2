"""``--report-to``: each epoch's values of ``log.jsonl`` and the run's config, sent to
experiment trackers through accelerate's tracker classes.

* ``tensorboard`` (extra ``tracking``): event files under ``RUN_DIR/tensorboard/RUN_NAME/``
  (``tensorboard --logdir RUN_DIR/tensorboard``);
* ``wandb``: a Weights & Biases run in project ``infomtl`` named after the run folder
  (``pip install wandb``; its own login and ``WANDB_MODE=offline`` apply);
* ``mlflow``: an MLflow run in experiment ``infomtl`` (``pip install mlflow``; the tracking
  URI from ``MLFLOW_TRACKING_URI``, as mlflow itself reads it).

The values are those of the epoch's ``log.jsonl`` line, flattened to ``/``-separated names
(``val/avg``, ``val/tasks/emotion/macro_f1``, ``train/ce/emotion``, ``information/ixz``)
at step = the epoch; the selected epoch's validation and test metrics come last, at the
last epoch's step (``best/test/avg``, ``best/test/tasks/irony/f1_irony``, ...).
The config is stored once as hyperparameters (lists and mappings as text). ``log.jsonl``
stays the record: a tracker only mirrors it, from the main process.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infomtl.errors import ConfigError

#: ``--report-to`` values and the package each needs, with how to install it
TRACKERS = {
    "tensorboard": ("tensorboard", 'pip install "infomtl[tracking]"'),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
}
PROJECT = "infomtl"


def check_trackers(names: Iterable[str]) -> list[str]:
    """The trackers ``--report-to`` names (``none`` and an empty list: no tracker; the names
    themselves are checked by :meth:`TrainConfig.validate <infomtl.config.TrainConfig.validate>`);
    a missing package is a :class:`ConfigError` saying what to install."""
    chosen = [n for n in names if n != "none"]
    for name in chosen:
        package, install = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"--report-to {name} needs the {package} package: {install}")
    return list(dict.fromkeys(chosen))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested record as ``{"a/b/c": value}``; booleans, text, lists
    and non-finite values are left out (they stay in ``log.jsonl``)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def hyperparameters(config: dict[str, Any]) -> dict[str, bool | str | float | int | None]:
    """A config as the flat scalars trackers accept: lists and mappings as JSON text."""
    return {k: v if v is None or isinstance(v, (bool, str, int, float)) else json.dumps(v, sort_keys=True)
            for k, v in config.items()}


class Tracking:
    """The run's trackers (``names`` as :func:`check_trackers` returns them): :meth:`log` a
    record at a step, :meth:`finish` at the end."""

    def __init__(self, names: Iterable[str], run_dir: Path, config: dict[str, Any]) -> None:
        from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker

        self.trackers: list[GeneralTracker] = []
        for name in names:
            if name == "tensorboard":
                tracker: GeneralTracker = TensorBoardTracker(run_dir.name, run_dir / "tensorboard")
            elif name == "wandb":
                tracker = WandBTracker(PROJECT, name=run_dir.name, dir=str(run_dir))
            else:
                tracker = MLflowTracker(experiment_name=PROJECT, run_name=run_dir.name)
            tracker.start()
            tracker.store_init_configuration(hyperparameters(config))
            self.trackers.append(tracker)

    def log(self, record: dict[str, Any], step: int) -> None:
        values = flatten(record)
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []
