"""Mechanism tests of the loss weighters and of PCGrad: on a designed synthetic multi-task
set (:mod:`mechanisms`), each method must do what its paper says it does.

* UW (Kendall et al. 2018): the task with noisy labels gets the larger σ, and each
  s_t = log σ_t² settles at its likelihood optimum log 2ℓ_t.
* PCGrad (Yu et al. 2020): after projection no conflict is left between two tasks, on the
  real per-task gradients of a model trained through ``PCGrad.backward``.
* DWA (Liu et al. 2019): the task whose loss falls slowest gets the larger weight.
* DTP (Guo et al. 2018): the task with the lower KPI gets the larger weight.
* TW: the weights follow the training-set sizes.
"""

from __future__ import annotations

import math

import pytest
import torch

from infomtl.methods.weightings.common import EPS
from infomtl.methods.weightings.dtp import dtp_weights
from infomtl.methods.weightings.dwa import dwa_weights
from infomtl.methods.weightings.pcgrad import PCGrad, project_conflicting
from mechanisms import Fit, TaskSpec, fit, make_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1, 2)


def epoch_losses(result: Fit, epoch: int) -> torch.Tensor:
    """The ``(T,)`` mean training losses of epoch ``epoch`` (0-based) of a linear-head fit."""
    comps = result.components[epoch]
    return torch.tensor([comps[("ce", t)] for t in range(len(result.tasks))])


# --------------------------------------------------------------------------- #
# UW
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", SEEDS)
def test_uw_gives_the_task_with_noisy_labels_the_larger_sigma(seed: int) -> None:
    # "noisy" is the same function of x as "clean" with 60% of its training labels
    # replaced at random: its likelihood is flatter, so σ² (s = log σ²) must grow
    tasks = make_tasks([TaskSpec("clean"), TaskSpec("noisy", noise=0.6, copy_of=0)], seed=seed)
    result = fit(tasks, "uw", epochs=30, lr=1e-2, seed=seed)
    s = result.logs[-1]["uw"]["s"]
    weights = result.logs[-1]["uw"]["weights"]
    assert s["noisy"] > s["clean"] + 0.5, s
    assert weights["noisy"] < weights["clean"], weights
    # at the optimum of e^{-s}ℓ + ½s (classification), s_t = log 2ℓ_t
    losses = epoch_losses(result, -1).tolist()
    for name, loss in zip(("clean", "noisy"), losses, strict=True):
        assert s[name] == pytest.approx(math.log(2 * loss), abs=0.25), (name, s, losses)


# --------------------------------------------------------------------------- #
# PCGrad
# --------------------------------------------------------------------------- #


def fit_recording_pcgrad(monkeypatch: pytest.MonkeyPatch, seed: int) -> tuple[Fit, list]:
    """Fit PCGrad on two tasks that compete for a one-unit shared bottleneck, recording
    at each step the per-task shared gradients ``g`` ``(2, P)`` (each task's scaled loss,
    taken independently of the method) and the shared gradient ``G`` its backward left.

    Two unrelated regression tasks (the second with 10× larger targets, so its gradient
    dominates a plain sum) must both be read off one scalar representation: their shared
    gradients conflict often. (A negated-target twin does not: its own linear head
    absorbs the sign, and the two shared gradients soon agree.)
    """
    records: list[tuple[torch.Tensor, torch.Tensor]] = []
    backward = PCGrad.backward

    def recording_backward(self, total, terms, ctx) -> None:
        shared = [p for p in ctx.shared_parameters if p.requires_grad]
        scale = self.task_scale(len(terms.task_losses))
        rows = []
        for t in sorted(terms.task_losses):
            grads = torch.autograd.grad(terms.task_losses[t] * scale, shared, retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
        backward(self, total, terms, ctx)
        effective = torch.cat([p.grad.reshape(-1) for p in shared])
        records.append((torch.stack(rows).detach().double(), effective.detach().double()))

    monkeypatch.setattr(PCGrad, "backward", recording_backward)
    specs = [
        TaskSpec("a", kind="regression"),
        TaskSpec("b", kind="regression", scale=10.0),
    ]
    tasks = make_tasks(specs, seed=seed)
    result = fit(tasks, "pcgrad", epochs=4, width=1, dropout=0.0, seed=seed)
    return result, records


def cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


@pytest.mark.parametrize("seed", SEEDS)
def test_pcgrad_leaves_no_conflict_between_two_tasks_after_projection(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    result, records = fit_recording_pcgrad(monkeypatch, seed)
    assert len(records) == 4 * 12
    order = torch.tensor([[1], [0]])
    conflicts = 0
    plain_opposed = 0
    for g, effective in records:
        size = float(g.norm(dim=1).sum())
        # the backward gave the shared parameters the sum of the projected gradients
        projected = project_conflicting(g, order)
        assert float((effective - projected.sum(0)).norm()) <= 1e-5 * size
        if cosine(g[0], g[1]) < -0.05:
            conflicts += 1
        for i, j in ((0, 1), (1, 0)):
            # g̃_i · g_j ≥ 0, up to what the ε of ‖g_j‖² + ε leaves of a conflict
            dot, norm_j = float(g[i] @ g[j]), float(g[j].norm())
            residual = min(dot, 0.0) * EPS / (norm_j**2 + EPS)
            assert float(projected[i] @ g[j]) >= residual - 1e-9 * float(g[i].norm()) * norm_j
            # and so the update descends on every task to first order
            assert float(effective @ g[j]) >= residual - 1e-5 * size * norm_j
        # what the plain sum would have done
        if min(cosine(g.sum(0), g[j]) for j in (0, 1)) < -0.05:
            plain_opposed += 1
    # conflicts occurred, and without projection the update would have ascended a task
    assert conflicts >= 5, conflicts
    assert plain_opposed >= 1, plain_opposed
    fired = [log["pcgrad"]["projected_fraction"] for log in result.logs]
    assert max(fired) > 0, fired


# --------------------------------------------------------------------------- #
# DWA
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", SEEDS)
def test_dwa_raises_the_weight_of_the_task_whose_loss_falls_slowest(seed: int) -> None:
    # "hard" is "easy" with 70% of its training labels random: its loss stays near
    # log 3 while the easy task's loss falls
    tasks = make_tasks([TaskSpec("easy"), TaskSpec("hard", noise=0.7, copy_of=0)], seed=seed)
    result = fit(tasks, "dwa", epochs=6, seed=seed)
    # w = 1 (mean convention: 1/T) for the first two epochs
    assert result.weights[0] == pytest.approx([0.5, 0.5])
    assert result.weights[1] == pytest.approx([0.5, 0.5])
    for epoch in range(2, len(result.weights)):
        prev, prev2 = epoch_losses(result, epoch - 1), epoch_losses(result, epoch - 2)
        ratio = (prev / prev2).tolist()
        assert ratio[1] > ratio[0] + 0.03, (epoch, ratio)  # the hard loss falls slowest
        easy, hard = result.weights[epoch]
        assert hard > easy + 0.008, (epoch, result.weights[epoch])
        # the step used the rule on the last two epochs' mean losses
        expected = dwa_weights(prev, prev2) / 2
        assert result.weights[epoch] == pytest.approx(expected.tolist(), abs=1e-5)


# --------------------------------------------------------------------------- #
# DTP
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", SEEDS)
def test_dtp_weights_the_task_with_the_lower_kpi_more(seed: int) -> None:
    # a clean two-class task against a five-class task with 40% random labels
    specs = [TaskSpec("easy", classes=2), TaskSpec("hard", classes=5, noise=0.4)]
    tasks = make_tasks(specs, seed=seed)
    result = fit(tasks, "dtp", epochs=4, seed=seed)
    for epoch, log in enumerate(result.logs):
        kpi, weights = log["dtp"]["kpi"], log["dtp"]["weights"]
        assert kpi["hard"] < kpi["easy"] - 0.15, (epoch, kpi)
        assert weights["hard"] > 2 * weights["easy"], (epoch, weights)
        # the focal weights of the KPI averages, divided by T (mean convention)
        expected = dtp_weights(torch.tensor([kpi["easy"], kpi["hard"]])) / 2
        assert [weights["easy"], weights["hard"]] == pytest.approx(expected.tolist(), rel=1e-5)
    for epoch in range(1, len(result.weights)):  # what the steps used, after a warm-up epoch
        easy, hard = result.weights[epoch]
        assert hard > 2 * easy, (epoch, result.weights[epoch])


# --------------------------------------------------------------------------- #
# TW
# --------------------------------------------------------------------------- #


def test_tw_weights_follow_task_sizes_and_sum_to_one() -> None:
    specs = [TaskSpec("small", rows=100), TaskSpec("large", rows=400)]
    result = fit(make_tasks(specs), "tw", epochs=2)
    for small, large in result.weights:  # every step of the mixed regime
        assert large / small == pytest.approx(4.0, rel=1e-6)
        assert small + large == pytest.approx(1.0, rel=1e-6)
        assert (small, large) == pytest.approx((0.2, 0.8), rel=1e-6)
    assert result.logs[-1]["tw"]["weights"] == pytest.approx({"small": 0.2, "large": 0.8})
