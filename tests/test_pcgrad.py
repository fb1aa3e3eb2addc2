"""PCGrad: the projection rule, its guarantee, and the exact gradients of its backward."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from infomtl.methods import WEIGHTINGS, BackwardContext, LossTerms, Method, resolve_method
from infomtl.methods.weightings.pcgrad import (
    PCGrad,
    draw_orders,
    pcgrad_coefficients,
    project_conflicting,
)
from infomtl.tasks import Task, TaskKind


def tasks_of(n: int) -> list[Task]:
    return [Task(f"t{i}", TaskKind.CLASSIFICATION, labels=("a", "b")) for i in range(n)]


def pcgrad(n: int, **args) -> PCGrad:
    args.setdefault("normalize", "sum")  # the rule's numbers are in the sum convention
    spec = resolve_method("pcgrad", None, args)
    return WEIGHTINGS["pcgrad"](spec.weighting_hp, tasks_of(n), [1] * n)


def naive_pcgrad(grads: torch.Tensor, order: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The rule as written in docs/methods.md, on vectors, with a Python branch."""
    out = []
    for i in range(grads.shape[0]):
        g = grads[i].clone()
        for j in order[i].tolist():
            dot = float(g @ grads[j])
            if dot < 0:
                g = g - dot / (float(grads[j] @ grads[j]) + eps) * grads[j]
        out.append(g)
    return torch.stack(out)


# --------------------------------------------------------------------------- #
# the rule
# --------------------------------------------------------------------------- #


def test_methods_md_case() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    order = torch.tensor([[1], [0]])
    projected = project_conflicting(g, order)
    torch.testing.assert_close(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    torch.testing.assert_close(projected.sum(0), torch.tensor([0.5, 1.5]))
    _, fired = pcgrad_coefficients(g @ g.T, order)
    assert fired.tolist() == [[False, True], [True, False]]


def test_gradients_without_conflict_are_unchanged() -> None:
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    order = torch.tensor([[1, 2], [2, 0], [0, 1]])
    torch.testing.assert_close(project_conflicting(g, order), g)


def test_the_order_matters_for_three_tasks() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 0.5], [-0.2, -1.0]], dtype=torch.float64)
    a = project_conflicting(g, torch.tensor([[1, 2], [0, 2], [0, 1]]))
    b = project_conflicting(g, torch.tensor([[2, 1], [0, 2], [0, 1]]))
    assert not torch.allclose(a[0], b[0])
    torch.testing.assert_close(a, naive_pcgrad(g, torch.tensor([[1, 2], [0, 2], [0, 1]])))


grads_st = st.integers(2, 5).flatmap(
    lambda t: st.tuples(
        st.just(t),
        st.integers(1, 6).flatmap(
            lambda p: st.lists(
                st.lists(st.floats(-10, 10, allow_subnormal=False), min_size=p, max_size=p),
                min_size=t,
                max_size=t,
            )
        ),
        st.randoms(use_true_random=False),
    )
)


def _case(case):
    t, rows, rnd = case
    g = torch.tensor(rows, dtype=torch.float64)
    assume(bool((g.norm(dim=1) >= 0.1).all()))
    order = []
    for i in range(t):
        others = [j for j in range(t) if j != i]
        rnd.shuffle(others)
        order.append(others)
    return g, torch.tensor(order, dtype=torch.long).reshape(t, t - 1)


@settings(max_examples=100, deadline=None)
@given(case=grads_st)
def test_coefficient_space_matches_the_vector_rule(case) -> None:
    g, order = _case(case)
    torch.testing.assert_close(
        project_conflicting(g, order), naive_pcgrad(g, order), rtol=1e-9, atol=1e-9
    )


@settings(max_examples=100, deadline=None)
@given(case=grads_st)
def test_no_conflict_remains_with_the_last_projected_gradient(case) -> None:
    """T = 2: g̃_i · g_j ≥ 0 for the other task. T > 2: the documented guarantee is for
    the last task in i's order (a later projection may re-create an earlier conflict).
    Tolerance: the ε residual (g̃·g_j)ε/(‖g_j‖²+ε) and rounding, relative to ‖g_i‖‖g_j‖
    (projections never increase ‖g̃_i‖)."""
    g, order = _case(case)
    projected = project_conflicting(g, order)
    for i in range(g.shape[0]):
        j = int(order[i, -1])
        tol = 1e-6 * float(g[i].norm() * g[j].norm()) + 1e-12
        assert float(projected[i] @ g[j]) >= -tol
        assert float(projected[i].norm()) <= float(g[i].norm()) * (1 + 1e-9)


def test_draw_orders_are_permutations_of_the_other_tasks_and_seeded() -> None:
    orders = draw_orders(5, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert orders.shape == (5, 4)
    for i, row in enumerate(orders.tolist()):
        assert sorted(row) == [j for j in range(5) if j != i]
    again = draw_orders(5, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert torch.equal(orders, again)
    many = {
        tuple(draw_orders(4, torch.Generator().manual_seed(s), "cpu")[0].tolist())
        for s in range(40)
    }
    assert len(many) == 6  # all 3! orders of the others occur


# --------------------------------------------------------------------------- #
# backward on a tiny model
# --------------------------------------------------------------------------- #


class Tiny(nn.Module):
    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4))
        self.unused = nn.Linear(2, 2)  # shared but outside the graph: stays without grad
        self.heads = nn.ModuleList([nn.Linear(4, 1) for _ in range(num_tasks)])
        for head in self.heads[1:]:  # equal heads + opposite targets → conflicting gradients
            head.load_state_dict(self.heads[0].state_dict())

    def shared(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.unused.parameters()]

    def terms(self, x: torch.Tensor, ys: list[torch.Tensor], aux_coef: float = 0.0) -> LossTerms:
        z = self.encoder(x)
        losses = {
            t: ((head(z).squeeze(-1) - y) ** 2).mean()
            for t, (head, y) in enumerate(zip(self.heads, ys, strict=True))
        }
        aux = aux_coef * z.pow(2).mean() if aux_coef else None
        return LossTerms(losses, aux)


def _data(num_tasks: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 3, generator=g)
    base = torch.randn(8, generator=g)
    # opposite targets → conflicting task gradients on the shared layers
    return x, [5 * base * (1 if t % 2 == 0 else -1) + 0.1 * t for t in range(num_tasks)]


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _expected(
    model: Tiny, num_tasks: int, order: torch.Tensor, aux_coef: float, scale: float = 1.0
):
    x, ys = _data(num_tasks)
    enc = list(model.encoder.parameters())
    terms = model.terms(x, ys, aux_coef)
    per_task = torch.stack(
        [
            _flat(torch.autograd.grad(terms.task_losses[t] * scale, enc, retain_graph=True))
            for t in range(num_tasks)
        ]
    )
    shared = naive_pcgrad(per_task, order).sum(0)
    if terms.aux is not None:
        shared = shared + _flat(torch.autograd.grad(terms.aux, enc, retain_graph=True))
    heads = [
        _flat(
            torch.autograd.grad(
                terms.task_losses[t] * scale, list(model.heads[t].parameters()), retain_graph=True
            )
        )
        for t in range(num_tasks)
    ]
    return per_task, shared, heads


def _run(method: PCGrad, model: Tiny, num_tasks: int, aux_coef: float) -> LossTerms:
    x, ys = _data(num_tasks)
    terms = model.terms(x, ys, aux_coef)
    total, weights = method.combine(terms)
    assert weights.shape == (num_tasks,)
    ctx = BackwardContext(
        lambda loss: loss.backward(), model.shared(), [list(h.parameters()) for h in model.heads]
    )
    method.backward(total, terms, ctx)
    return terms


@pytest.mark.parametrize("aux_coef", [0.0, 0.3])
def test_backward_two_tasks_gives_projected_shared_and_own_head_gradients(aux_coef: float) -> None:
    model, method = Tiny(2), pcgrad(2, seed=0)
    per_task, shared, heads = _expected(model, 2, torch.tensor([[1], [0]]), aux_coef)
    assert float(per_task[0] @ per_task[1]) < 0  # the case really conflicts
    _run(method, model, 2, aux_coef)
    torch.testing.assert_close(_flat(p.grad for p in model.encoder.parameters()), shared)
    for t in range(2):
        torch.testing.assert_close(_flat(p.grad for p in model.heads[t].parameters()), heads[t])
    assert all(p.grad is None for p in model.unused.parameters())
    method.on_epoch_end(1, torch.ones(2))
    logged = method.log_values()["pcgrad"]
    cos = float(per_task[0] @ per_task[1] / (per_task[0].norm() * per_task[1].norm()))
    assert logged["mean_cosine"] == pytest.approx(cos, abs=1e-5)
    assert logged["projected_fraction"] == 1.0
    json.dumps(logged)


def test_backward_three_tasks_uses_the_methods_generator_order() -> None:
    model, method = Tiny(3), pcgrad(3, seed=4)
    order = draw_orders(3, torch.Generator().manual_seed(4), torch.device("cpu"))
    _, shared, heads = _expected(model, 3, order, 0.1)
    _run(method, model, 3, 0.1)
    torch.testing.assert_close(_flat(p.grad for p in model.encoder.parameters()), shared)
    for t in range(3):
        torch.testing.assert_close(_flat(p.grad for p in model.heads[t].parameters()), heads[t])


def test_backward_accumulates_into_existing_gradients() -> None:
    model, method = Tiny(2), pcgrad(2, seed=0)
    _, shared, _ = _expected(model, 2, torch.tensor([[1], [0]]), 0.0)
    for p in model.encoder.parameters():
        p.grad = torch.ones_like(p)
    _run(method, model, 2, 0.0)
    torch.testing.assert_close(_flat(p.grad for p in model.encoder.parameters()), shared + 1)


def test_mean_normalisation_scales_the_task_gradients() -> None:
    model, method = Tiny(2), pcgrad(2, seed=0, normalize="mean")
    _, shared, heads = _expected(model, 2, torch.tensor([[1], [0]]), 0.2, scale=0.5)
    _run(method, model, 2, 0.2)
    torch.testing.assert_close(_flat(p.grad for p in model.encoder.parameters()), shared)
    torch.testing.assert_close(_flat(p.grad for p in model.heads[1].parameters()), heads[1])


def test_one_task_falls_back_to_a_plain_backward() -> None:
    model, method = Tiny(1), pcgrad(1, seed=0)
    x, ys = _data(1)
    expected = _flat(
        torch.autograd.grad(model.terms(x, ys).task_losses[0], list(model.encoder.parameters()))
    )
    _run(method, model, 1, 0.0)
    torch.testing.assert_close(_flat(p.grad for p in model.encoder.parameters()), expected)
    assert method.log_values() == {}


def test_extra_state_round_trip_gives_the_same_next_order() -> None:
    a = pcgrad(4, seed=9)
    gen = a.random.get("cpu")
    for _ in range(3):
        draw_orders(4, gen, torch.device("cpu"))
    state = json.loads(json.dumps(a.extra_state()))
    expected = draw_orders(4, a.random.get("cpu"), torch.device("cpu"))
    b = pcgrad(4, seed=0)
    b.load_extra_state(state)
    assert torch.equal(draw_orders(4, b.random.get("cpu"), torch.device("cpu")), expected)


def test_pcgrad_through_resolve_method_and_method() -> None:
    spec = resolve_method("pcgrad", None, {"seed": "3"})
    method = Method(spec, tasks_of(3), 8, [5, 5, 5])
    assert method.weighting.needs_all_tasks and method.weighting.reference
    losses = {t: torch.tensor(float(t + 1), requires_grad=True) for t in range(3)}
    total, weights = method.weighting.combine(LossTerms(losses, torch.tensor(0.5)))
    assert total.item() == pytest.approx(6.0 / 3 + 0.5)  # the mean task loss + aux once
    assert weights.tolist() == pytest.approx([1 / 3] * 3)
    assert "seed=3" in repr(method.weighting)
    assert math.isfinite(total.item())
