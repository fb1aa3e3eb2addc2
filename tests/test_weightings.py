"""Loss weighters TW, SI, UW, GLS, DWA, IMTL-L, RLW, DTP: docs/methods.md's cases and properties."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.methods import WEIGHTINGS, LossTerms, Method, resolve_method
from infomtl.methods.weightings.common import task_kpi
from infomtl.methods.weightings.dtp import dtp_update, dtp_weights
from infomtl.methods.weightings.dwa import dwa_weights
from infomtl.methods.weightings.gls import gls_loss
from infomtl.methods.weightings.imtl_l import imtl_l_loss
from infomtl.methods.weightings.rlw import rlw_weights
from infomtl.methods.weightings.si import si_loss
from infomtl.methods.weightings.tw import tw_weights
from infomtl.methods.weightings.uw import uw_loss
from infomtl.modeling.heads import HeadOutput
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task, TaskKind

NAMES = ("tw", "si", "uw", "gls", "dwa", "imtl-l", "rlw", "dtp")
DETERMINISTIC = ("tw", "si", "uw", "gls", "dwa", "imtl-l", "dtp")


def cls_tasks(n: int) -> list[Task]:
    return [Task(f"t{i}", TaskKind.CLASSIFICATION, labels=("a", "b")) for i in range(n)]


def build(name: str, tasks: list[Task] | None = None, sizes: list[int] | None = None, **args):
    """The rules' numbers are written in the sum convention (docs/methods.md): ``normalize="sum"``
    unless a test asks for the default mean."""
    tasks = tasks or cls_tasks(2)
    sizes = sizes or [10] * len(tasks)
    args.setdefault("normalize", "sum")
    spec = resolve_method(name, None, args)
    return WEIGHTINGS[spec.weighting](spec.weighting_hp, tasks, sizes)


def terms_of(losses, kpis=None, aux=None) -> LossTerms:
    ts = {t: torch.as_tensor(v, dtype=torch.float32) for t, v in enumerate(losses)}
    k = {t: torch.as_tensor(v, dtype=torch.float32) for t, v in enumerate(kpis or [])}
    return LossTerms(ts, aux, {}, k)


# --------------------------------------------------------------------------- #
# docs/methods.md's analytic cases
# --------------------------------------------------------------------------- #


def test_tw_weights_follow_task_sizes_with_mean_one() -> None:
    assert tw_weights([100, 300]).tolist() == pytest.approx([0.5, 1.5])
    total, w = build("tw", sizes=[100, 300]).combine(terms_of([2.0, 4.0]))
    assert w.tolist() == pytest.approx([0.5, 1.5])
    assert total.item() == pytest.approx(0.5 * 2 + 1.5 * 4)


def test_tw_mean_normalisation_gives_the_tweeteval_proportions() -> None:
    names = ("sentiment", "offensive", "hate", "emotion", "irony", "stance")
    sizes = [45616, 11916, 9000, 3257, 2862, 2620]
    tasks = [Task(n, TaskKind.CLASSIFICATION, labels=("a", "b")) for n in names]
    tw = build("tw", tasks, sizes, normalize="mean")
    _, w = tw.combine(terms_of([1.0] * 6))
    assert [round(x, 3) for x in w.tolist()] == [0.606, 0.158, 0.120, 0.043, 0.038, 0.035]
    assert float(w.sum()) == pytest.approx(1.0)
    assert tw.log_values()["tw"]["weights"]["sentiment"] == pytest.approx(0.606, abs=5e-4)


def test_si_is_the_sum_of_log_losses() -> None:
    assert float(si_loss(torch.tensor([math.e, 1.0]))) == pytest.approx(1.0)
    total, w = build("si").combine(terms_of([math.e, 1.0]))
    assert total.item() == pytest.approx(1.0)
    assert w.tolist() == pytest.approx([1 / math.e, 1.0])  # ∂L/∂ℓ = 1/ℓ


def test_si_floors_tiny_losses() -> None:
    assert float(si_loss(torch.tensor([0.0]))) == pytest.approx(math.log(1e-4))
    _, w = build("si").combine(terms_of([1e-6, 1.0]))
    assert w.tolist() == [0.0, 1.0]


def test_uw_classification_case_value_gradient_and_optimum() -> None:
    uw = build("uw", cls_tasks(1), [5])
    total, w = uw.combine(terms_of([2.0]))
    assert total.item() == pytest.approx(2.0)
    total.backward()
    assert uw.s.grad.tolist() == pytest.approx([-1.5])
    assert w.tolist() == pytest.approx([1.0])
    with torch.no_grad():
        uw.s.fill_(math.log(4))
    total, w = uw.combine(terms_of([2.0]))
    assert total.item() == pytest.approx(1.193147, abs=1e-6)
    assert w.tolist() == pytest.approx([0.25])


def test_uw_regression_uses_the_gaussian_form() -> None:
    task = Task("r", TaskKind.REGRESSION)
    s = torch.zeros(1, requires_grad=True)
    value = uw_loss(torch.tensor([2.0]), s, torch.tensor([True]))
    assert value.item() == pytest.approx(1.0)  # ½·e⁰·2 + 0
    value.backward()
    assert s.grad.tolist() == pytest.approx([-0.5])  # −½·2 + ½
    uw = build("uw", [task, *cls_tasks(1)], [5, 5])
    total, w = uw.combine(terms_of([2.0, 2.0]))
    assert total.item() == pytest.approx(3.0)
    assert w.tolist() == pytest.approx([0.5, 1.0])


def test_uw_projects_s_onto_its_lower_bound_after_a_step() -> None:
    uw = build("uw")
    with torch.no_grad():
        uw.s.copy_(torch.tensor([-7.0, 1.0]))
    uw.on_step_end(terms_of([1.0, 1.0]))
    assert uw.s.tolist() == [-5.0, 1.0]
    assert uw.log_values()["uw"]["s"] == {"t0": -5.0, "t1": 1.0}


def test_gls_is_the_geometric_mean() -> None:
    assert float(gls_loss(torch.tensor([4.0, 1.0]))) == pytest.approx(2.0)
    total, w = build("gls").combine(terms_of([4.0, 1.0]))
    assert total.item() == pytest.approx(2.0)
    assert w.tolist() == pytest.approx([2 / 8, 2 / 2])  # L / (T ℓ_t)


def test_gls_does_not_underflow_with_many_small_losses() -> None:
    losses = torch.full((100,), 1e-4)  # the product (1e-400) underflows even in fp64
    assert float(gls_loss(losses)) == pytest.approx(1e-4, rel=1e-3)


def test_dwa_case() -> None:
    w = dwa_weights(torch.tensor([1.0, 0.5]), torch.tensor([2.0, 0.5]))
    assert w.tolist() == pytest.approx([0.875647, 1.124353], abs=1e-6)


def test_dwa_is_one_for_two_epochs_then_follows_the_epoch_means() -> None:
    dwa = build("dwa")
    assert dwa.combine(terms_of([1.0, 1.0]))[1].tolist() == [1.0, 1.0]
    dwa.on_epoch_end(1, torch.tensor([2.0, 0.5]))
    assert dwa.combine(terms_of([1.0, 1.0]))[1].tolist() == [1.0, 1.0]
    dwa.on_epoch_end(2, torch.tensor([1.0, 0.5]))
    total, w = dwa.combine(terms_of([1.0, 2.0]))
    assert w.tolist() == pytest.approx([0.875647, 1.124353], abs=1e-6)
    assert total.item() == pytest.approx(0.875647 + 2 * 1.124353, abs=1e-5)
    assert dwa.log_values()["dwa"]["weights"]["t1"] == pytest.approx(1.124353, abs=1e-6)


def test_dwa_step_window_variant_uses_window_means() -> None:
    dwa = build("dwa", window=2)
    for losses in ([3.0, 0.5], [1.0, 0.5], [1.5, 0.25], [0.5, 0.75]):
        assert dwa.combine(terms_of(losses))[1].tolist() == [1.0, 1.0]
        dwa.on_step_end(terms_of(losses))
        dwa.on_epoch_end(1, torch.tensor([9.0, 9.0]))  # ignored by the window variant
    # windows: means (2, 0.5) then (1, 0.5) → the docs/methods.md case
    assert dwa.combine(terms_of([1.0, 1.0]))[1].tolist() == pytest.approx(
        [0.875647, 1.124353], abs=1e-6
    )


def test_dwa_extra_state_round_trip_restores_history_and_window() -> None:
    dwa = build("dwa", window=3)
    for losses in ([3.0, 0.5], [1.0, 0.5], [2.0, 0.5], [1.0, 0.5], [1.0, 0.25]):
        dwa.on_step_end(terms_of(losses))
    state = json.loads(json.dumps(dwa.extra_state()))
    other = build("dwa", window=3)
    other.load_extra_state(state)
    nxt = terms_of([1.0, 0.75])
    for m in (dwa, other):
        m.on_step_end(nxt)  # completes the second window
    assert other.combine(nxt)[1].tolist() == dwa.combine(nxt)[1].tolist()
    assert dwa.combine(nxt)[1].tolist() != [1.0, 1.0]


def test_dwa_epoch_history_round_trip() -> None:
    dwa = build("dwa")
    dwa.on_epoch_end(1, torch.tensor([2.0, 0.5]))
    dwa.on_epoch_end(2, torch.tensor([1.0, 0.5]))
    other = build("dwa")
    other.load_extra_state(json.loads(json.dumps(dwa.extra_state())))
    assert other.combine(terms_of([1.0, 1.0]))[1].tolist() == pytest.approx(
        [0.875647, 1.124353], abs=1e-6
    )


def test_imtl_l_case_value_and_gradient() -> None:
    s = torch.zeros(2, requires_grad=True)
    value = imtl_l_loss(torch.tensor([2.0, 0.5]), s)
    assert value.item() == pytest.approx(2.5)
    value.backward()
    assert s.grad.tolist() == pytest.approx([1.0, -0.5])
    imtl = build("imtl-l")
    total, w = imtl.combine(terms_of([2.0, 0.5]))
    assert total.item() == pytest.approx(2.5)
    total.backward()
    assert imtl.s.grad.tolist() == pytest.approx([1.0, -0.5])
    assert w.tolist() == [1.0, 1.0]


def test_imtl_l_projects_s_onto_its_upper_bound() -> None:
    imtl = build("imtl-l")
    with torch.no_grad():
        imtl.s.copy_(torch.tensor([12.0, -3.0]))
    imtl.on_step_end(terms_of([1.0, 1.0]))
    assert imtl.s.tolist() == [10.0, -3.0]


def test_rlw_case_with_injected_noise() -> None:
    eps = torch.tensor([0.0, math.log(3)])
    assert (rlw_weights(eps) / 2).tolist() == pytest.approx([0.25, 0.75])
    rlw = build("rlw", seed=0)
    rlw.draw = lambda device: eps.to(device)  # type: ignore[method-assign]
    total, w = rlw.combine(terms_of([2.0, 4.0]))
    assert total.item() == pytest.approx(7.0)
    assert w.tolist() == pytest.approx([0.5, 1.5])


def test_rlw_draws_fresh_weights_each_step_from_its_own_seed() -> None:
    a, b = build("rlw", seed=3), build("rlw", seed=3)
    torch.manual_seed(123)
    wa = [a.combine(terms_of([1.0, 1.0]))[1] for _ in range(3)]
    torch.manual_seed(456)  # the global generator plays no part
    wb = [b.combine(terms_of([1.0, 1.0]))[1] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(wa, wb, strict=True))
    assert not torch.equal(wa[0], wa[1])
    assert build("rlw", seed=4).combine(terms_of([1.0, 1.0]))[1].tolist() != wa[0].tolist()


def test_rlw_uses_unit_weights_in_eval_mode() -> None:
    rlw = build("rlw", seed=0).eval()
    assert rlw.combine(terms_of([1.0, 3.0]))[1].tolist() == [1.0, 1.0]


def test_rlw_extra_state_round_trip_gives_the_same_next_draw() -> None:
    rlw = build("rlw", seed=7)
    for _ in range(5):
        rlw.combine(terms_of([1.0, 1.0]))
    state = json.loads(json.dumps(rlw.extra_state()))
    expected = rlw.combine(terms_of([1.0, 1.0]))[1]
    other = build("rlw", seed=0)
    other.load_extra_state(state)
    assert torch.equal(other.combine(terms_of([1.0, 1.0]))[1], expected)


def test_rlw_default_seed_is_the_run_seed() -> None:
    torch.manual_seed(11)
    a = build("rlw")
    torch.manual_seed(11)
    b = build("rlw")
    assert a.random.seed == b.random.seed == 11
    assert torch.equal(a.combine(terms_of([1.0, 1.0]))[1], b.combine(terms_of([1.0, 1.0]))[1])


def test_dtp_case() -> None:
    kbar = dtp_update(torch.tensor(0.5), torch.tensor(0.8))
    assert float(kbar) == pytest.approx(0.53)
    assert float(dtp_weights(kbar)) == pytest.approx(0.298393, abs=1e-6)
    dtp = build("dtp", cls_tasks(1), [5])
    total, w = dtp.combine(terms_of([2.0], kpis=[0.8]))
    assert dtp.kpi.tolist() == pytest.approx([0.53])
    assert w.tolist() == pytest.approx([0.298393], abs=1e-6)
    assert total.item() == pytest.approx(2 * 0.298393, abs=1e-5)
    assert dtp.log_values()["dtp"]["kpi"] == {"t0": pytest.approx(0.53)}


def test_dtp_weights_are_stop_gradient_and_favour_the_harder_task() -> None:
    dtp = build("dtp")
    losses = {0: torch.tensor(1.0, requires_grad=True), 1: torch.tensor(1.0, requires_grad=True)}
    for _ in range(20):
        total, w = dtp.combine(
            LossTerms(losses, None, {}, {0: torch.tensor(0.9), 1: torch.tensor(0.3)})
        )
    assert w[1] > w[0]
    total.backward()
    assert losses[0].grad.item() == pytest.approx(float(w[0]))


def test_dtp_clips_the_kpi_average() -> None:
    dtp = build("dtp", kpi_ema=1.0)
    dtp.combine(terms_of([1.0, 1.0], kpis=[1.0, 0.0]))
    assert dtp.kpi.tolist() == pytest.approx([0.99, 0.01])
    assert torch.isfinite(dtp.combine(terms_of([1.0, 1.0], kpis=[1.0, 0.0]))[1]).all()


def test_dtp_without_kpis_names_the_tasks() -> None:
    with pytest.raises(ValueError, match="t0, t1"):
        build("dtp").combine(terms_of([1.0, 1.0]))


def test_dtp_does_not_update_in_eval_mode() -> None:
    dtp = build("dtp").eval()
    dtp.combine(terms_of([1.0, 1.0], kpis=[1.0, 1.0]))
    assert dtp.kpi.tolist() == [0.5, 0.5]


# --------------------------------------------------------------------------- #
# KPIs
# --------------------------------------------------------------------------- #


def test_task_kpi_per_kind() -> None:
    cls = Task("c", TaskKind.CLASSIFICATION, labels=("a", "b", "c"))
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    assert float(task_kpi(cls, logits, torch.tensor([0, 1, 0, 0]))) == pytest.approx(0.75)
    ml = Task("m", TaskKind.MULTILABEL, labels=("a", "b"))
    out = torch.tensor([[3.0, -3.0], [3.0, 3.0]])
    assert float(task_kpi(ml, out, torch.tensor([[1, 0], [0, 1]]))) == pytest.approx(0.75)
    reg = Task("r", TaskKind.REGRESSION, targets=("x", "y"))
    y = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # Var = 1 per output
    pred = y + torch.tensor([[0.5, 0.0], [-0.5, 0.0]])  # MSE = (0.25, 0)
    assert float(task_kpi(reg, pred, y)) == pytest.approx((0.75 + 1.0) / 2)
    assert float(task_kpi(reg, y + 10, y)) == 0.0  # clipped
    one = Task("s", TaskKind.REGRESSION)
    assert float(task_kpi(one, torch.tensor([[1.0]]), torch.tensor([2.0]))) == 0.0


def test_task_kpi_carries_no_gradient() -> None:
    task = cls_tasks(1)[0]
    logits = torch.randn(4, 2, requires_grad=True)
    assert not task_kpi(task, logits, torch.tensor([0, 1, 0, 1])).requires_grad


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #

losses_st = st.lists(st.floats(1e-3, 50.0), min_size=1, max_size=6)


def _prepare(name: str, m, losses: list[float]) -> None:
    n = len(losses)
    if name == "dwa":
        m.on_epoch_end(1, torch.tensor([x * 1.5 for x in losses]))
        m.on_epoch_end(2, torch.tensor(losses))
    if name in ("uw", "imtl-l"):
        with torch.no_grad():
            m.s.copy_(torch.linspace(-1, 1, n))


@settings(max_examples=40, deadline=None)
@given(losses=losses_st, name=st.sampled_from(NAMES), normalize=st.sampled_from(["sum", "mean"]))
def test_weights_are_finite_and_follow_the_normalisation(losses, name, normalize) -> None:
    n = len(losses)
    m = build(name, cls_tasks(n), [7 * (i + 1) for i in range(n)], normalize=normalize)
    _prepare(name, m, losses)
    total, w = m.combine(terms_of(losses, kpis=[0.3] * n))
    assert total.ndim == 0 and torch.isfinite(total)
    assert w.shape == (n,) and torch.isfinite(w).all() and (w >= 0).all()
    if name in ("tw", "dwa", "rlw"):  # Σw ℓ methods with the mean-1 convention
        assert float(w.sum()) == pytest.approx(n if normalize == "sum" else 1.0, rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    losses=st.lists(st.floats(1e-2, 20.0), min_size=2, max_size=5),
    name=st.sampled_from(DETERMINISTIC),
    data=st.data(),
)
def test_permuting_tasks_permutes_the_weights(losses, name, data) -> None:
    n = len(losses)
    perm = data.draw(st.permutations(range(n)))
    sizes = [10 * (i + 1) for i in range(n)]
    kpis = [0.1 + 0.8 * i / n for i in range(n)]
    tasks = cls_tasks(n)
    a = build(name, tasks, sizes)
    b = build(name, [tasks[p] for p in perm], [sizes[p] for p in perm])
    _prepare(name, a, losses)
    _prepare(name, b, [losses[p] for p in perm])
    if name in ("uw", "imtl-l"):
        with torch.no_grad():
            b.s.copy_(a.s.detach()[list(perm)])
    ta, wa = a.combine(terms_of(losses, kpis=kpis))
    tb, wb = b.combine(terms_of([losses[p] for p in perm], kpis=[kpis[p] for p in perm]))
    torch.testing.assert_close(wb, wa[list(perm)])
    torch.testing.assert_close(tb, ta)


# --------------------------------------------------------------------------- #
# through the registry and Method
# --------------------------------------------------------------------------- #


def _step(tasks: list[Task]) -> tuple[ModelOutput, Batch]:
    g = torch.Generator().manual_seed(0)
    heads, labels, rows = {}, {}, {}
    for t, task in enumerate(tasks):
        if task.kind is TaskKind.REGRESSION:
            heads[t] = HeadOutput(
                mean=torch.randn(3, task.num_outputs, generator=g, requires_grad=True)
            )
            labels[t] = torch.randn(3, task.num_outputs, generator=g)
        else:
            heads[t] = HeadOutput(
                mean=torch.randn(3, task.num_outputs, generator=g, requires_grad=True)
            )
            labels[t] = torch.randint(0, task.num_outputs, (3,), generator=g)
        rows[t] = torch.arange(3 * t, 3 * t + 3)
    n = 3 * len(tasks)
    batch = Batch(
        torch.zeros(n, 4, dtype=torch.long), torch.ones(n, 4, dtype=torch.long), None, rows, labels
    )
    return ModelOutput(torch.randn(n, 8, generator=g), None, heads), batch


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("objective", ["linear", "infomtl"])
def test_each_weighting_runs_through_resolve_method_and_method(name: str, objective: str) -> None:
    tasks = [*cls_tasks(2), Task("r", TaskKind.REGRESSION)]
    spec = resolve_method(objective, name, {"simax": False} if objective == "infomtl" else {})
    method = Method(spec, tasks, hidden_size=8, train_sizes=[30, 20, 10])
    assert method.weighting.name == name
    out, batch = _step(tasks)
    total, terms, weights = method.loss(out, batch)
    assert total.ndim == 0 and torch.isfinite(total) and total.requires_grad
    assert weights.shape == (3,) and torch.isfinite(weights).all()
    assert set(terms.kpis) == {0, 1, 2}
    assert all(0 <= float(k) <= 1 for k in terms.kpis.values())
    total.backward()
    method.weighting.on_step_end(terms)
    method.weighting.on_epoch_end(1, torch.ones(3))
    json.dumps(method.extra_state())
    logged = method.log_values()
    json.dumps(logged)
    assert set(logged[name]["weights"]) == {"t0", "t1", "r"}


@pytest.mark.parametrize("name", NAMES)
def test_needs_all_tasks_is_declared(name: str) -> None:
    assert WEIGHTINGS[name].needs_all_tasks is (name != "tw")
    assert WEIGHTINGS[name].reference and WEIGHTINGS[name].__doc__


def test_loss_balancers_refuse_one_task_per_step() -> None:
    method = Method(resolve_method("uw"), cls_tasks(2), 8, [10, 10])
    with pytest.raises(ConfigError, match="needs every task"):
        method.regime("per-task")
    assert Method(resolve_method("tw"), cls_tasks(2), 8, [10, 10]).regime("per-task") == "per-task"


def test_hyperparameters_are_typed_and_validated() -> None:
    spec = resolve_method("dwa", None, {"window": "5", "temperature": "3"})
    assert spec.weighting_hp.window == 5 and spec.weighting_hp.temperature == 3.0
    with pytest.raises(ConfigError, match="temperature"):
        resolve_method("dwa", None, {"temperature": 0})
    for name, key in (
        ("dwa", "temperature"),
        ("dtp", "focal_gamma"),
        ("dtp", "kpi_ema"),
        ("dtp", "kpi_init"),
        ("uw", "s_min"),
        ("imtl-l", "s_max"),
    ):
        with pytest.raises(ConfigError, match=key):
            resolve_method(name, None, {key: "nan"})
    with pytest.raises(ConfigError, match="kpi_ema"):
        resolve_method("dtp", None, {"kpi_ema": 2})
    with pytest.raises(ConfigError, match="normalize"):
        resolve_method("tw", None, {"normalize": "max"})
    assert "seed=5" in repr(build("rlw", seed=5))


def test_learned_scalars_are_method_parameters() -> None:
    for name in ("uw", "imtl-l"):
        method = Method(resolve_method(name), cls_tasks(3), 8, [1, 2, 3])
        assert [p.shape for p in method.parameters()] == [torch.Size([3])]
    for name in ("tw", "si", "gls", "dwa", "rlw", "dtp"):
        assert list(Method(resolve_method(name), cls_tasks(3), 8, [1, 2, 3]).parameters()) == []


def test_dtp_kpi_average_is_checkpointed_with_the_method_tensors() -> None:
    a = Method(resolve_method("dtp"), cls_tasks(2), 8, [1, 2])
    a.weighting.combine(terms_of([1.0, 1.0], kpis=[0.9, 0.1]))
    b = Method(resolve_method("dtp"), cls_tasks(2), 8, [1, 2])
    b.load_state_dict(a.state_dict())
    assert b.weighting.kpi.tolist() == a.weighting.kpi.tolist()
