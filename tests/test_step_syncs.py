"""A training step makes no host synchronisation on a GPU (no ``.item()``, no blocking
copy, no ``bincount``...): ``torch.cuda.set_sync_debug_mode("error")`` turns any into an
error. Needs a CUDA device (skipped otherwise: the CPU has nothing to wait for)."""

from __future__ import annotations

import pytest
import torch

from fakes import small_config
from infomtl.training import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(("method", "accumulation"), [("ew", 1), ("uw", 1), ("pcgrad", 1), ("infomtl", 2)])
def test_a_training_step_does_not_synchronise_with_the_host(tmp_path, method, accumulation) -> None:
    trainer = Trainer(small_config(tmp_path / "run", method=method, grad_accumulation=accumulation))
    trainer.setup(10)
    plans = trainer.batcher.epoch(1)
    trainer.train_step(plans[0], 0)  # first step: optimizer state, kernels, generators
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.train_step(plans[1], 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
