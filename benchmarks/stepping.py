"""What the step-time benchmarks (``pcgrad_step.py``, ``sharing_cost.py``, ``throughput.py``) share: their
command-line options and the first steps of a trainer's seeded plan."""

from __future__ import annotations

import argparse

import numpy as np

#: the TweetEval tasks the benchmarks train by default
TASKS = "emotion,hate,irony,offensive,sentiment,stance"


def add_step_options(parser: argparse.ArgumentParser, backbone: str) -> None:
    """``--backbone`` (default ``backbone``), ``--tasks``, ``--data-dir``, ``--batch-size``,
    ``--max-length``, ``--train-rows``, ``--warmup``, ``--steps`` and ``--threads``."""
    parser.add_argument("--backbone", default=backbone, help=f"tiny or minilm (default: {backbone})")
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--train-rows", type=int, default=200, help="training rows per task (default: 200)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")


def first_steps(trainer, count: int) -> list[list[np.ndarray]]:
    """The first ``count`` steps of ``trainer``'s plan, over as many epochs as they need."""
    plan: list[list[np.ndarray]] = []
    epoch = 1
    while len(plan) < count:
        plan += trainer.batcher.epoch(epoch)
        epoch += 1
    return plan[:count]
