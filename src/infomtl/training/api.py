"""``train()``: the public entry point of training (``infomtl.train``, ``infomtl train``).

A single-task method (``stl``, ``stl-cnn``) goes to :mod:`infomtl.training.stl`, every
other method to the :class:`~infomtl.training.trainer.Trainer`, each with the epoch
hooks its config asks for (:mod:`infomtl.training.hooks`).
"""

from __future__ import annotations

from infomtl.artifacts.run_folder import resume_config
from infomtl.config import TrainConfig
from infomtl.methods.single_task import is_single_task
from infomtl.threads import torch_threads
from infomtl.training.hooks import epoch_hooks
from infomtl.training.stl import train_single_task
from infomtl.training.trainer import Trainer, TrainResult


def train(config: TrainConfig) -> TrainResult:
    """Train one configured run (for ``stl`` / ``stl-cnn``: one run per task, see
    :mod:`infomtl.training.stl`); returns its folder and results.

    ``--resume`` (``config.run.resume``) continues an interrupted run folder in place, with
    its options but this config's ``threads`` and ``progress``.
    Torch's operators use ``config.run.threads`` threads (default: :func:`~infomtl.threads.default_threads`)
    for the run; the previous setting is restored after.
    Progress lines go to the ``infomtl.training`` loggers (INFO; see :mod:`infomtl.logs`).
    """
    if config.run.resume is not None:  # the machine-side options of this call, every other from the run
        config = resume_config(config.run.resume).replace(threads=config.run.threads, progress=config.run.progress)
    hooks = epoch_hooks(config)
    with torch_threads(config.run.threads):
        if is_single_task(config.method.name):
            return train_single_task(config, hooks)
        return Trainer(config, hooks).run()
