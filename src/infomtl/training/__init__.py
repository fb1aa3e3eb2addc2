"""Training: :func:`train` (public) above the trainer loop, the single-task runner and
the epoch hooks.

``api`` (``train``) → ``stl``, ``hooks`` → ``trainer`` → ``steps`` (→ ``optim``, ``sharded``),
``autosem`` (the autosem regime's rounds), ``run_state`` (→ ``signals``).
"""

from infomtl.training.api import train
from infomtl.training.trainer import Trainer, TrainResult, resolve_spec

__all__ = ["TrainResult", "Trainer", "resolve_spec", "train"]
