"""Method resolution, MethodSpec, the InfoMTL objective's loss and EW's combination."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.methods import (
    OBJECTIVES,
    WEIGHTINGS,
    GradientAggregator,
    LossTerms,
    Method,
    MethodSpec,
    method_names,
    resolve_method,
)
from infomtl.methods.base import Hyper, WeightingHyper
from infomtl.modeling.heads import GaussianHead, HeadOutput, LinearHead
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task, TaskKind

TASKS = [
    Task("alpha", TaskKind.CLASSIFICATION, labels=("a", "b", "c")),
    Task("beta", TaskKind.CLASSIFICATION, labels=("x", "y")),
    Task("gamma", TaskKind.REGRESSION, targets=("v", "w")),
]
SIZES = [100, 50, 30]
D = 6


def _method(name: str = "infomtl", weighting: str | None = None, **args) -> Method:
    spec = resolve_method(name, weighting, args)
    return Method(spec, TASKS, D, SIZES, head_dropout=0.0, head_hidden=0)


# --------------------------------------------------------------------------- #
# resolve_method
# --------------------------------------------------------------------------- #


def test_a_weighting_name_runs_with_linear_heads() -> None:
    spec = resolve_method("ew")
    assert (spec.objective, spec.weighting, spec.name) == ("linear", "ew", "ew")


def test_an_objective_name_runs_with_equal_weighting_by_default() -> None:
    spec = resolve_method("infomtl")
    assert (spec.objective, spec.weighting, spec.name) == ("infomtl", "ew", "infomtl")
    assert resolve_method("infomtl", "ew") == spec


def test_names_are_case_and_underscore_insensitive_and_aliases_resolve() -> None:
    assert resolve_method("InfoMTL").objective == "infomtl"
    assert resolve_method(" EW ").weighting == "ew"
    assert resolve_method("equal").weighting == "ew"
    assert resolve_method("infomtl", "equal").weighting == "ew"
    assert resolve_method("equal", "ew").name == "ew"


def test_method_names_list_objectives_and_weightings_but_not_linear() -> None:
    names = method_names()
    assert "ew" in names and "infomtl" in names
    assert "linear" not in names
    assert names == sorted(names)


def test_weighting_as_method_plus_a_weighting_is_rejected() -> None:
    with pytest.raises(ConfigError, match="is a weighting and takes no --weighting") as err:
        resolve_method("ew", "infomtl")
    assert "infomtl" in str(err.value)


def test_an_objective_given_as_weighting_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match="use --method infomtl"):
        resolve_method("infomtl", "infomtl")


def test_unknown_method_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown method 'nope'") as err:
        resolve_method("nope")
    for name in method_names():
        assert name in str(err.value)


def test_unknown_weighting_lists_the_valid_weightings() -> None:
    with pytest.raises(ConfigError, match="unknown weighting 'nope'") as err:
        resolve_method("infomtl", "nope")
    for name in WEIGHTINGS:
        assert name in str(err.value)


def test_unknown_hyperparameter_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown hyperparameter") as err:
        resolve_method("infomtl", None, {"gamma": 1, "alpha": 0.5})
    message = str(err.value)
    assert "gamma" in message
    for key in ("alpha", "beta", "tau", "simax", "timin", "kl_reduction", "normalize"):
        assert key in message
    with pytest.raises(ConfigError, match="valid: normalize"):
        resolve_method("ew", None, {"alpha": 0.1})


def test_string_hyperparameters_are_coerced_to_their_types() -> None:
    spec = resolve_method(
        "infomtl", "ew",
        {"alpha": "0.5", "beta": "1e-3", "tau": "2", "simax": "false", "timin": "Yes",
         "kl_reduction": "sum", "normalize": "mean"},
    )
    hp = spec.objective_hp
    assert hp.alpha == 0.5 and isinstance(hp.alpha, float)
    assert hp.beta == pytest.approx(1e-3)
    assert hp.tau == 2.0 and isinstance(hp.tau, float)
    assert hp.simax is False and hp.timin is True
    assert hp.kl_reduction == "sum"
    assert spec.weighting_hp.normalize == "mean"


def test_args_are_not_mutated() -> None:
    args = {"alpha": "0.5"}
    resolve_method("infomtl", None, args)
    assert args == {"alpha": "0.5"}


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ({"alpha": -0.1}, "alpha"),
        ({"beta": "-1"}, "beta"),
        ({"tau": 0}, "tau"),
        ({"tau": "-0.5"}, "tau"),
        ({"kl_reduction": "median"}, "kl_reduction"),
        ({"alpha": "abc"}, "alpha must be a float"),
        ({"simax": "maybe"}, "simax must be a bool"),
        ({"normalize": "avg"}, "normalize"),
    ],
)
def test_invalid_hyperparameters_are_config_errors(args: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_method("infomtl", None, args)


@pytest.mark.parametrize("key", ["alpha", "beta", "tau"])
def test_nan_hyperparameters_are_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        resolve_method("infomtl", None, {key: "nan"})


# --------------------------------------------------------------------------- #
# MethodSpec
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("method", "weighting", "args"),
    [
        ("ew", None, {}),
        ("ew", None, {"normalize": "mean"}),
        ("infomtl", None, {}),
        ("infomtl", "ew", {"alpha": 0.01, "beta": 1, "tau": 0.1, "kl_reduction": "mean", "timin": False}),
    ],
)
def test_method_spec_round_trips_through_a_dict_and_json(method, weighting, args) -> None:
    spec = resolve_method(method, weighting, args)
    data = spec.to_dict()
    assert set(data) == {"objective", "weighting", "objective_args", "weighting_args"}
    assert MethodSpec.from_dict(data) == spec
    assert MethodSpec.from_dict(json.loads(json.dumps(data))) == spec
    assert MethodSpec.from_dict(data).name == spec.name


# --------------------------------------------------------------------------- #
# InfoMTL objective
# --------------------------------------------------------------------------- #


def _output(seed: int = 0, views: bool = True) -> tuple[ModelOutput, Batch]:
    g = torch.Generator().manual_seed(seed)
    n = [4, 3, 2]
    rows, labels, heads, start = {}, {}, {}, 0
    for t, task in enumerate(TASKS):
        rows[t] = torch.arange(start, start + n[t])
        start += n[t]
        c = task.num_outputs
        if task.kind is TaskKind.CLASSIFICATION:
            labels[t] = torch.randint(0, c, (n[t],), generator=g)
        else:
            labels[t] = torch.randn(n[t], c, generator=g)
        mean, logvar = torch.randn(n[t], c, generator=g), torch.randn(n[t], c, generator=g)
        sample = mean + torch.exp(logvar / 2) * torch.randn(n[t], c, generator=g)
        heads[t] = HeadOutput(mean, logvar, sample)
    labels[0] = torch.tensor([0, 0, 2, 0])  # class 1 absent, class 0 three times
    b = start
    h = torch.randn(b, D, generator=g)
    h_views = torch.randn(b, D, generator=g) if views else None
    batch = Batch(
        input_ids=torch.zeros(b, 3, dtype=torch.long),
        attention_mask=torch.ones(b, 3, dtype=torch.long),
        token_type_ids=None,
        rows=rows,
        labels=labels,
    )
    return ModelOutput(h=h, h_views=h_views, heads=heads), batch


def _class_balanced(kl_rows: torch.Tensor, labels: torch.Tensor) -> float:
    total = 0.0
    for c in labels.unique().tolist():
        total += float(kl_rows[labels == c].mean())
    return total


def test_infomtl_task_loss_is_ce_of_the_sample_plus_beta_kl() -> None:
    alpha, beta, tau = 0.3, 0.7, 0.5
    method = _method("infomtl", alpha=alpha, beta=beta, tau=tau)
    out, batch = _output()
    terms = method.objective.loss_terms(out, batch)
    assert set(terms.task_losses) == {0, 1, 2}
    for t, task in enumerate(TASKS):
        o, y = out.heads[t], batch.labels[t]
        kl_rows = (-0.5 * (1 + o.logvar - o.mean**2 - o.logvar.exp())).mean(dim=1)
        if task.kind is TaskKind.CLASSIFICATION:
            ce = float(F.cross_entropy(o.sample, y))
            kl = _class_balanced(kl_rows, y)
        else:
            ce = float(F.mse_loss(o.sample, y))
            kl = float(kl_rows.mean())  # regression: plain mean
        assert float(terms.task_losses[t]) == pytest.approx(ce + beta * kl, rel=1e-5)
        assert float(terms.components[("ce", t)]) == pytest.approx(ce, rel=1e-5)
        assert float(terms.components[("kl", t)]) == pytest.approx(kl, rel=1e-5)


def test_infomtl_aux_is_alpha_times_info_nce_of_the_two_views() -> None:
    alpha, tau = 0.3, 0.5
    method = _method("infomtl", alpha=alpha, tau=tau)
    out, batch = _output(seed=1)
    terms = method.objective.loss_terms(out, batch)
    q = out.h / out.h.norm(dim=1, keepdim=True)
    k = out.h_views / out.h_views.norm(dim=1, keepdim=True)
    nce = float(F.cross_entropy(q @ k.T / tau, torch.arange(len(q))))
    assert float(terms.aux) == pytest.approx(alpha * nce, rel=1e-5)
    assert float(terms.components[("nce", None)]) == pytest.approx(nce, rel=1e-5)


def test_infomtl_total_with_ew_is_the_mean_task_loss_plus_aux_once() -> None:
    method = _method("infomtl", alpha=0.2)
    out, batch = _output(seed=2)
    total, terms, weights = method.loss(out, batch)
    losses = [float(v) for v in terms.task_losses.values()]
    expected = sum(losses) / len(losses) + float(terms.aux)
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert weights.tolist() == pytest.approx([1 / 3] * 3)


def test_infomtl_total_under_normalize_sum_is_the_sum_of_task_losses_plus_aux() -> None:
    method = _method("infomtl", alpha=0.2, normalize="sum")
    out, batch = _output(seed=2)
    total, terms, weights = method.loss(out, batch)
    expected = sum(float(v) for v in terms.task_losses.values()) + float(terms.aux)
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert weights.tolist() == [1.0, 1.0, 1.0]


def test_infomtl_kl_reduction_mean_and_sum() -> None:
    out, batch = _output(seed=3)
    o, y = out.heads[0], batch.labels[0]
    kl_rows = (-0.5 * (1 + o.logvar - o.mean**2 - o.logvar.exp())).mean(dim=1)
    for mode, expected in (("mean", kl_rows.mean()), ("sum", kl_rows.sum())):
        terms = _method("infomtl", kl_reduction=mode).objective.loss_terms(out, batch)
        assert float(terms.components[("kl", 0)]) == pytest.approx(float(expected), rel=1e-5)
    assert y.tolist() == [0, 0, 2, 0]


def test_infomtl_without_a_second_view_has_no_aux() -> None:
    out, batch = _output(views=False)
    terms = _method("infomtl").objective.loss_terms(out, batch)
    assert terms.aux is None
    assert ("nce", None) not in terms.components


def test_infomtl_in_eval_uses_the_mean_when_there_is_no_sample() -> None:
    out, batch = _output(seed=4, views=False)
    for t, o in out.heads.items():
        out.heads[t] = HeadOutput(o.mean, o.logvar, None)
    terms = _method("infomtl", beta=0.0).objective.loss_terms(out, batch)
    assert float(terms.task_losses[0]) == pytest.approx(
        float(F.cross_entropy(out.heads[0].mean, batch.labels[0])), rel=1e-6
    )


@pytest.mark.parametrize(
    ("args", "views"),
    [({}, 2), ({"simax": False}, 1), ({"alpha": 0}, 1), ({"alpha": 0.01, "simax": True}, 2)],
)
def test_infomtl_needs_two_views_only_with_simax_and_positive_alpha(args, views) -> None:
    assert _method("infomtl", **args).views == views


def test_ew_needs_one_view() -> None:
    assert _method("ew").views == 1


def test_timin_builds_gaussian_heads_and_its_ablation_linear_heads() -> None:
    gaussian = _method("infomtl").build_decoder()
    linear = _method("infomtl", timin=False).build_decoder()
    assert all(isinstance(h, GaussianHead) for h in gaussian.heads)
    assert all(isinstance(h, LinearHead) for h in linear.heads)
    assert [h.mean.out_features for h in gaussian.heads] == [3, 2, 2]
    assert [h.linear.out_features for h in linear.heads] == [3, 2, 2]


def test_infomtl_with_linear_heads_has_no_kl_term() -> None:
    out, batch = _output(seed=5, views=False)
    for t, o in out.heads.items():
        out.heads[t] = HeadOutput(o.mean)
    terms = _method("infomtl", timin=False, simax=False).objective.loss_terms(out, batch)
    assert not any(name == "kl" for name, _ in terms.components)
    assert float(terms.task_losses[1]) == pytest.approx(
        float(F.cross_entropy(out.heads[1].mean, batch.labels[1])), rel=1e-6
    )


def test_ew_builds_linear_heads() -> None:
    decoder = _method("ew").build_decoder()
    assert all(isinstance(h, LinearHead) for h in decoder.heads)


# --------------------------------------------------------------------------- #
# EW combination
# --------------------------------------------------------------------------- #


def _terms(losses: dict[int, float], aux: float | None = None) -> LossTerms:
    return LossTerms(
        {t: torch.tensor(v) for t, v in losses.items()},
        None if aux is None else torch.tensor(aux),
    )


def test_ew_under_normalize_sum_is_the_plain_sum_plus_aux_with_unit_weights() -> None:
    weighting = _method("ew", normalize="sum").weighting
    total, weights = weighting.combine(_terms({0: 1.0, 1: 2.0, 2: 4.0}, aux=0.5))
    assert float(total) == pytest.approx(7.5)
    assert weights.tolist() == [1.0, 1.0, 1.0]
    total, _ = weighting.combine(_terms({0: 1.0, 1: 2.0, 2: 4.0}))
    assert float(total) == pytest.approx(7.0)


def test_ew_by_default_is_the_mean_over_tasks_weights_summing_to_one() -> None:
    weighting = _method("ew").weighting
    assert weighting.hp.normalize == "mean"
    total, weights = weighting.combine(_terms({0: 1.0, 1: 2.0, 2: 6.0}, aux=0.5))
    assert float(total) == pytest.approx(9.0 / 3 + 0.5)
    assert weights.tolist() == pytest.approx([1 / 3] * 3)
    assert float(weights.sum()) == pytest.approx(1.0)


def test_ew_mean_is_over_the_tasks_present_and_absent_tasks_get_zero_weight() -> None:
    total, weights = _method("ew").weighting.combine(_terms({0: 1.0, 2: 3.0}))
    assert float(total) == pytest.approx(2.0)
    assert weights.tolist() == [0.5, 0.0, 0.5]
    total, weights = _method("ew").weighting.combine(_terms({1: 3.0}, aux=0.25))  # per-task step
    assert float(total) == pytest.approx(3.25)
    assert weights.tolist() == [0.0, 1.0, 0.0]
    total, weights = _method("ew", normalize="sum").weighting.combine(_terms({0: 1.0, 2: 3.0}))
    assert float(total) == pytest.approx(4.0)
    assert weights.tolist() == [1.0, 0.0, 1.0]


def test_ew_combined_loss_backpropagates_to_each_task_with_weight_one_over_t() -> None:
    losses = {t: torch.tensor(float(t + 1), requires_grad=True) for t in range(3)}
    total, _ = _method("ew").weighting.combine(LossTerms(losses))
    total.backward()
    assert [float(v.grad) for v in losses.values()] == pytest.approx([1 / 3] * 3)


def test_task_aux_terms_are_averaged_with_the_task_losses_but_not_weighted() -> None:
    terms = _terms({0: 1.0, 1: 3.0}, aux=0.5)
    terms.task_aux = {0: torch.tensor(-2.0), 1: torch.tensor(4.0)}
    total, _ = _method("ew").weighting.combine(terms)
    assert float(total) == pytest.approx((1 + 3) / 2 + (-2 + 4) / 2 + 0.5)
    total, _ = _method("dwa", normalize="sum").weighting.combine(terms)  # weights 1 in epoch 1
    assert float(total) == pytest.approx(1 + 3 + (-2 + 4) + 0.5)


# --------------------------------------------------------------------------- #
# Regimes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ["ew", "infomtl"])
def test_auto_regime_is_mixed(name: str) -> None:
    method = _method(name)
    assert method.regime("auto") == "mixed"
    assert method.regime(None) == "mixed"


@pytest.mark.parametrize("regime", ["mixed", "uniform", "per-task", "temperature"])
def test_ew_accepts_every_regime(regime: str) -> None:
    assert _method("ew").regime(regime) == regime
    assert _method("infomtl").regime(regime) == regime


class _NeedsAll(GradientAggregator):
    """A test-only aggregator (needs every task's loss each step)."""

    name = "test-needs-all"
    Hyper: ClassVar[type[Hyper]] = WeightingHyper


def test_a_method_needing_all_tasks_refuses_one_task_per_step_regimes(monkeypatch) -> None:
    registered = [n for n, c in WEIGHTINGS.items() if c.needs_all_tasks]
    monkeypatch.setitem(WEIGHTINGS, _NeedsAll.name, _NeedsAll)
    names = registered or [_NeedsAll.name]
    for wname in names:
        spec = MethodSpec("linear", wname, OBJECTIVES["linear"].Hyper(), WEIGHTINGS[wname].Hyper())
        method = Method(spec, TASKS, D, SIZES)
        assert method.regime("mixed") == "mixed"
        assert method.regime("uniform") == "uniform"
        for regime in ("per-task", "temperature"):
            with pytest.raises(ConfigError, match="needs every task"):
                method.regime(regime)
        single = Method(spec, TASKS[:1], D, SIZES[:1])
        assert single.regime("per-task") == "per-task"


def test_method_repr_shows_hyperparameters() -> None:
    text = repr(_method("infomtl", alpha=0.25))
    assert "alpha=0.25" in text and "kl_reduction='class_balanced'" in text
    assert math.isclose(_method("infomtl", alpha=0.25).objective.hp.alpha, 0.25)
