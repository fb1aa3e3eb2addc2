"""The run's own mixed precision (infomtl.training.amp): several precisions in one process,
fp16 loss scaling that skips non-finite steps, and its state in ``last/``."""

from __future__ import annotations

import json

import pytest
import torch

from fakes import small_config
from infomtl.training.amp import MixedPrecision

pytestmark = pytest.mark.usefixtures("one_thread")


def test_runs_of_different_precisions_in_one_process(tmp_path) -> None:
    from infomtl.training import train

    kw = dict(max_train_examples=32, max_eval_examples=16, lr=1e-3)
    first = train(small_config(tmp_path / "a", **kw))
    half = train(small_config(tmp_path / "b", mixed_precision="bf16", **kw))
    again = train(small_config(tmp_path / "c", **kw))
    assert again.results["test"] == first.results["test"]  # the bf16 run left nothing behind
    assert half.results["test"]["avg"] == half.results["test"]["avg"]  # trained, finite


def test_fp16_scaler_scales_the_loss_and_skips_a_non_finite_step() -> None:
    amp = MixedPrecision("fp16", torch.device("cpu"))
    assert amp.dtype is torch.float16 and amp.scaler is not None
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    scale = amp.scaler.get_scale()
    amp.backward((2.0 * w).sum())
    assert torch.equal(w.grad, torch.full((3,), 2.0 * scale))  # the backward saw the scaled loss
    amp.unscale(opt)
    assert torch.equal(w.grad, torch.full((3,), 2.0))
    amp.step(opt)
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))
    opt.zero_grad()
    amp.backward((w * float("inf")).sum())
    amp.step(opt)  # not finite: skipped, and the scale backs off
    assert torch.allclose(w.detach(), torch.full((3,), 0.8)) and amp.scaler.get_scale() == scale / 2
    plain = MixedPrecision("no", torch.device("cpu"))
    assert plain.dtype is None and plain.scaler is None
    with plain.autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_fp16_run_keeps_its_scaler_state_in_last(tmp_path) -> None:
    from infomtl.training import train

    result = train(small_config(tmp_path / "run", mixed_precision="fp16", epochs=1, lr=1e-3))
    scaler = json.loads((result.run_dir / "last" / "state.json").read_text())["scaler"]
    assert scaler is not None and scaler["scale"] > 0  # what a resumed fp16 run continues from
    assert result.results["test"]["avg"] == result.results["test"]["avg"]  # finite
    fp32 = json.loads((result.run_dir / "results.json").read_text())
    assert fp32["test"]["avg"] == result.results["test"]["avg"]
