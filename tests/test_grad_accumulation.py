"""``--grad-accumulation N``: the encoder runs in checkpointed micro-batches, and the step's
gradient is that of the whole batch for every kind of method.

The comparison is tight because the ``tiny`` encoder's dropout and the head dropout are
off (:func:`fakes.dropout_free`): with dropout, micro-batches draw other masks than one
forward of the whole batch, so only the distribution of the update would agree.
"""

from __future__ import annotations

import math

import pytest
import torch

from fakes import dropout_free, small_config
from infomtl.config import TrainConfig
from infomtl.errors import ConfigError
from infomtl.training import Trainer, train

#: a loss weighting, two that need the step's losses / KPIs, per-task gradients, the
#: two-view contrastive objective, in-batch priors, a method with its own parameters
METHODS = ("ew", "gls", "dtp", "pcgrad", "infomtl", "vmtl", "uw")
BATCH = 16


@pytest.fixture
def no_dropout(monkeypatch, one_thread):
    import infomtl.modeling.backbones as backbones

    monkeypatch.setattr(backbones, "_tiny", dropout_free(backbones._tiny))


def _step_gradients(tmp_path, method: str, accumulation: int) -> tuple[torch.Tensor, dict]:
    config = small_config(
        tmp_path / f"{method}-{accumulation}", method=method, grad_accumulation=accumulation,
        head_dropout=0.0, batch_size=BATCH,
    )
    trainer = Trainer(config)
    trainer.setup(10)
    total, _, _ = trainer.backward_step(trainer.batcher.epoch(1)[0], 0)
    params = {**dict(trainer.model.named_parameters()),
              **{f"method.{k}": v for k, v in trainer.method.named_parameters()}}
    return total.detach(), {k: p.grad for k, p in params.items() if p.grad is not None}


@pytest.mark.parametrize("method", METHODS)
def test_accumulated_step_gradient_equals_the_whole_batch_gradient(no_dropout, tmp_path, method) -> None:
    loss, want = _step_gradients(tmp_path, method, 1)
    scale = max(g.abs().max().item() for g in want.values())
    for accumulation in (2, 3):
        got_loss, got = _step_gradients(tmp_path, method, accumulation)
        torch.testing.assert_close(got_loss, loss, rtol=1e-6, atol=1e-6)
        assert got.keys() == want.keys()
        for name, g in want.items():
            err = (got[name] - g).abs().max().item()
            assert err <= 1e-5 * scale, f"N={accumulation}: {name} differs by {err:.3g} (scale {scale:.3g})"


def test_micro_batches_encode_at_most_ceil_b_over_n_rows_and_recompute_in_backward(
    no_dropout, tmp_path
) -> None:
    config = small_config(tmp_path / "run", method="infomtl", grad_accumulation=3, batch_size=BATCH)
    trainer = Trainer(config)
    trainer.setup(10)
    rows: list[int] = []
    # a pre-hook: the recomputation stops once it has what the backward needs
    trainer.model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    plan = trainer.batcher.epoch(1)[0]
    encoded = 2 * sum(len(idx) for idx in plan)  # InfoMTL: two views
    trainer.backward_step(plan, 0)
    assert max(rows) <= math.ceil(encoded / 3)
    assert sum(rows) == 2 * encoded  # every micro-batch once forward, once recomputed
    rows.clear()
    with torch.no_grad():  # evaluation: one forward, no micro-batches
        trainer.model.eval()
        trainer.model(_batch(trainer, plan))
    # one encoder call over every row (packed rows may share a sequence, so count calls, not rows)
    assert len(rows) == 1 and rows[0] <= sum(len(idx) for idx in plan)


def _batch(trainer: Trainer, plan):
    from infomtl.data.encoding import collate

    return collate(trainer.encoded["train"], plan, trainer.pad_id)


def test_a_run_with_grad_accumulation_trains_and_resumes_its_options(tmp_path, one_thread) -> None:
    result = train(small_config(tmp_path / "run", grad_accumulation=2))
    assert (result.run_dir / "results.json").is_file()
    assert "grad_accumulation: 2" in (result.run_dir / "config.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("value", [0, -1])
def test_grad_accumulation_below_one_is_a_config_error(value: int) -> None:
    with pytest.raises(ConfigError, match="--grad-accumulation must be >= 1"):
        TrainConfig(grad_accumulation=value).validate()
