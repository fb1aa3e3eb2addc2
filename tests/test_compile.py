"""``--compile``: ``torch.compile`` of the encoder changes nothing but float rounding.

The regular test compiles with dynamo's ``eager`` backend (tracing, graph breaks, the
in-place ``nn.Module.compile`` and activation checkpointing, in seconds). Inductor, the
real backend, needs about a minute of C++ compilation on a 2-core CPU: that test runs on
a GPU machine or with ``INFOMTL_TEST_INDUCTOR=1``.
"""

from __future__ import annotations

import os

import pytest
import torch

from fakes import small_config
from infomtl.modeling.building import compile_encoder
from infomtl.training import Trainer
from infomtl.training import steps as steps_module


def _gradients(tmp_path, name: str, backend: str | None, accumulation: int = 1) -> dict:
    config = small_config(tmp_path / name, head_dropout=0.0, grad_accumulation=accumulation)
    trainer = Trainer(config)
    if backend is not None:
        compile_encoder(trainer.model, backend)
    trainer.setup(10)
    torch.manual_seed(1)  # same dropout masks in both runs
    trainer.backward_step(trainer.batcher.epoch(1)[0], 0)
    return {k: p.grad for k, p in trainer.model.named_parameters() if p.grad is not None}


def _assert_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()  # parameter names unchanged (no "_orig_mod.")
    scale = max(g.abs().max().item() for g in want.values())
    for name, g in want.items():
        assert (got[name] - g).abs().max().item() <= 1e-5 * scale, name


@pytest.mark.parametrize("accumulation", [1, 2])
def test_compiled_encoder_gives_the_gradients_of_the_uncompiled_one(tmp_path, one_thread, accumulation) -> None:
    torch._dynamo.reset()
    want = _gradients(tmp_path, "eager", None, accumulation)
    _assert_close(_gradients(tmp_path, "compiled", "eager", accumulation), want)


def test_compile_option_compiles_the_encoder_at_setup(tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(steps_module, "compile_encoder", lambda model, backend="inductor": calls.append(model))
    trainer = Trainer(small_config(tmp_path / "run", compile=True))
    trainer.setup(10)
    assert calls == [trainer.model]


@pytest.mark.skipif(
    not (torch.cuda.is_available() or os.environ.get("INFOMTL_TEST_INDUCTOR")),
    reason="inductor compiles for about a minute on a 2-core CPU (set INFOMTL_TEST_INDUCTOR=1)",
)
def test_inductor_compiled_encoder_gives_the_gradients_of_the_uncompiled_one(tmp_path, one_thread) -> None:
    torch._dynamo.reset()
    want = _gradients(tmp_path, "eager", None)
    _assert_close(_gradients(tmp_path, "compiled", "inductor"), want)
