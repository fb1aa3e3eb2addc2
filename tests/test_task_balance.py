"""The papers' task balance (InfoMTL Eq. 2/4/6, VIP-MTL Eq. 6; docs/methods.md "Task balance"):
the total is the mean over the tasks present of the per-task terms, plus the batch-level
auxiliary term once, so α weighs InfoNCE against one task's loss in every regime."""

from __future__ import annotations

import pytest
import torch

from fakes import fake_batch
from infomtl.data.encoding import Batch
from infomtl.methods import WEIGHTINGS, LossTerms, Method, resolve_method
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task, TaskKind

TASKS = [Task(f"t{i}", TaskKind.CLASSIFICATION, labels=("a", "b", "c")) for i in range(3)]
SIZES = [40, 40, 40]
D = 8


def _coefficients(method: Method, present: list[int]) -> tuple[float, float]:
    """(Σ_t ∂L/∂ℓ_t, ∂L/∂aux) of the method's total at unit losses of the present tasks."""
    losses = {t: torch.tensor(1.0, requires_grad=True) for t in present}
    aux = torch.tensor(0.3, requires_grad=True)
    total, _ = method.weighting.combine(LossTerms(losses, aux))
    total.backward()
    return sum(float(v.grad) for v in losses.values()), float(aux.grad)


def _decoder(method: Method):
    decoder = method.build_decoder().eval()  # eval: no sampling noise
    for head in decoder.heads:
        for p in head.parameters():
            torch.nn.init.normal_(p, std=0.5, generator=torch.Generator().manual_seed(7))
    return decoder


def _loss(method: Method, decoder, h: torch.Tensor, h_views: torch.Tensor, batch: Batch):
    heads, extras = decoder(h, batch.rows)
    return method.loss(ModelOutput(h=h, h_views=h_views, heads=heads, extras=extras), batch)


def _rows_of(h: torch.Tensor, h_views: torch.Tensor, batch: Batch, t: int):
    """Task t's rows of a mixed batch, as a per-task step."""
    r = batch.rows[t]
    ids = batch.input_ids[r]
    alone = Batch(ids, torch.ones_like(ids), None, {t: torch.arange(len(r))}, {t: batch.labels[t]})
    return h[r], h_views[r], alone


def test_infonce_weighs_against_one_task_loss_in_mixed_and_per_task_steps() -> None:
    method = Method(resolve_method("infomtl", None, {"alpha": 0.1}), TASKS, D, SIZES)
    # a mixed step holds rows of every task; a per-task step one task's
    assert _coefficients(method, [0, 1, 2]) == pytest.approx((1.0, 1.0))
    assert all(_coefficients(method, [t]) == pytest.approx((1.0, 1.0)) for t in range(3))
    # the same rows: α·InfoNCE over the task part is the same in a mixed step as over the
    # per-task steps of those rows (their mean task part; each step adds α·InfoNCE once)
    h, batch = fake_batch(TASKS, (4, 4, 4), D, seed=0)
    h_views = h + 0.1 * torch.randn(h.shape, generator=torch.Generator().manual_seed(1))
    decoder = _decoder(method)
    with torch.no_grad():
        total, terms, _ = _loss(method, decoder, h, h_views, batch)
        ratio_mixed = float(terms.aux) / (float(total) - float(terms.aux))
        aux_steps, task_steps = [], []
        for t in range(3):
            total_t, terms_t, _ = _loss(method, decoder, *_rows_of(h, h_views, batch, t))
            aux_steps.append(float(terms_t.aux))
            task_steps.append(float(total_t) - float(terms_t.aux))
            assert task_steps[-1] == pytest.approx(float(terms.task_losses[t]), rel=1e-5)
    nce_mixed = float(terms.aux)
    assert ratio_mixed == pytest.approx(nce_mixed / (sum(task_steps) / 3), rel=1e-5)
    # and per-task steps weigh their own InfoNCE by the same α against their one task
    assert [a / 0.1 for a in aux_steps] == pytest.approx(
        [float(_loss(method, decoder, *_rows_of(h, h_views, batch, t))[1].components[("nce", None)])
         for t in range(3)], rel=1e-5)


def test_under_normalize_sum_a_mixed_step_weighs_infonce_t_times_less() -> None:
    method = Method(resolve_method("infomtl", None, {"normalize": "sum"}), TASKS, D, SIZES)
    assert _coefficients(method, [0, 1, 2]) == pytest.approx((3.0, 1.0))
    assert _coefficients(method, [1]) == pytest.approx((1.0, 1.0))


@pytest.mark.parametrize("name", sorted(n for n in WEIGHTINGS if n != "dtp"))
def test_every_weighting_gives_the_task_part_one_losss_worth_at_equal_losses(name: str) -> None:
    """At unit losses and initial state, Σ_t ∂L/∂ℓ_t = 1 (the mean) and the auxiliary term
    is added once. DTP's weights are its focal weights (not normalised to one)."""
    method = Method(resolve_method(name), TASKS, D, SIZES).train()
    assert _coefficients(method, [0, 1, 2]) == pytest.approx((1.0, 1.0), rel=1e-5)


def test_dtp_focal_weights_are_averaged_over_tasks() -> None:
    method = Method(resolve_method("dtp"), TASKS, D, SIZES).eval()  # κ̄ = 0.5: w = 0.5·ln 2
    losses = {t: torch.tensor(1.0, requires_grad=True) for t in range(3)}
    total, _ = method.weighting.combine(LossTerms(losses, kpis={t: torch.tensor(0.5) for t in range(3)}))
    total.backward()
    assert [float(v.grad) for v in losses.values()] == pytest.approx([0.5 * 0.693147 / 3] * 3, rel=1e-5)
