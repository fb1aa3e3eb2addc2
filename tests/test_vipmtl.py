"""VIP-MTL: the variance-normalised Gaussian head, the objective's loss on numbers,
where s_t lives (model parameter, no weight decay), the ablation, the presets and a
tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fakes import MIXED_TASKS, fake_batch
from infomtl.artifacts.run_folder import load_run
from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.methods import OBJECTIVES, Method, resolve_method
from infomtl.modeling.heads import (
    GaussianHead,
    NormalizedHeadOutput,
    VarianceNormalizedGaussianHead,
)
from infomtl.modeling.losses import predict
from infomtl.modeling.model import ModelOutput
from infomtl.options import load_yaml
from infomtl.tasks import Task, TaskKind
from infomtl.training import Trainer, resolve_spec

REPO = Path(__file__).resolve().parents[1]
TASKS = MIXED_TASKS
SIZES = [100, 50, 30]
D = 8
LN4 = math.log(4.0)

pytestmark = pytest.mark.usefixtures("one_thread")


def _num(x) -> float:
    """A plain float of a number or a (possibly grad-requiring) 0-d tensor."""
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def _method(weighting: str | None = None, tasks: list[Task] = TASKS, **args) -> Method:
    """VIP-MTL with a learned s_t by default here (the rule's numbers set s by hand)."""
    args.setdefault("scale_mode", "learned")
    spec = resolve_method("vipmtl", weighting, args)
    return Method(spec, tasks, D, SIZES[: len(tasks)], head_dropout=0.0, head_hidden=0)


def _constant_head(mu: float, logvar: float, s: float, mode: str = "learned", momentum: float = 0.1):
    """A one-output head that maps any h to μ = ``mu``, log σ² = ``logvar``, with s = ``s``."""
    head = VarianceNormalizedGaussianHead(1, 1, mode=mode, momentum=momentum)
    with torch.no_grad():
        head.mean.weight.zero_()
        head.mean.bias.fill_(mu)
        head.logvar.weight.zero_()
        head.logvar.bias.fill_(logvar)
        head.log_scale.fill_(s)
    return head


def _batch(rows_per_task: tuple[int, ...] = (4, 3, 5), seed: int = 0) -> tuple[torch.Tensor, Batch]:
    # class 1 absent from the classification rows: class-balanced KL differs from the mean
    classification = {t: torch.tensor([0, 0, 2, 0]) for t, task in enumerate(TASKS)
                      if task.kind is TaskKind.CLASSIFICATION}
    return fake_batch(TASKS, rows_per_task, D, seed, labels=classification)

def _forward(method: Method, h: torch.Tensor, batch: Batch, scales=(0.3, -0.7, 1.1)):
    decoder = method.build_decoder()
    with torch.no_grad():
        for head, s in zip(decoder.heads, scales, strict=True):
            head.log_scale.fill_(s)
    heads, extras = decoder(h, batch.rows)
    return decoder, ModelOutput(h=h, h_views=None, heads=heads, extras=extras)


# --------------------------------------------------------------------------- #
# the rule on numbers (docs/methods.md, "VIP-MTL")
# --------------------------------------------------------------------------- #


def test_analytic_case_sample_is_1_25_and_gamma_s_adds_1_386294(monkeypatch) -> None:
    head = _constant_head(mu=2.0, logvar=0.0, s=LN4).train()
    monkeypatch.setattr(torch, "randn_like", lambda x, **kw: torch.full_like(x, 0.5))
    out = head(torch.ones(1, 1))
    assert isinstance(out, NormalizedHeadOutput)
    assert out.sample.item() == pytest.approx(1.25, abs=1e-6)  # (2 + 1·0.5) / exp(ln4 / 2)
    assert out.raw_mean.item() == 2.0 and out.raw_logvar.item() == 0.0
    assert out.logvar.item() == pytest.approx(-LN4, abs=1e-6)  # log σ² − s
    # the objective: γ·s with γ = 1 adds ln 4 = 1.386294 to the loss (a per-task term)
    task = Task("r", TaskKind.REGRESSION)
    spec = resolve_method("vipmtl", None, {"gamma_regression": 1.0, "beta": 0.0, "scale_mode": "learned"})
    objective = Method(spec, [task], 1, [10]).objective
    batch = Batch(input_ids=torch.zeros(1, 1, dtype=torch.long),
                  attention_mask=torch.ones(1, 1, dtype=torch.long), token_type_ids=None,
                  rows={0: torch.tensor([0])}, labels={0: torch.tensor([[1.25]])})
    terms = objective.loss_terms(ModelOutput(torch.ones(1, 1), None, {0: out}), batch)
    assert terms.aux is None and terms.task_aux[0].item() == pytest.approx(1.386294, abs=1e-6)
    assert terms.task_losses[0].item() == pytest.approx(0.0, abs=1e-10)  # MSE(1.25, 1.25)
    assert _num(terms.components[("s", 0)]) == pytest.approx(LN4)


def test_test_time_output_is_the_mean_over_exp_half_s() -> None:
    head = _constant_head(mu=2.0, logvar=0.0, s=LN4).eval()
    out = head(torch.ones(3, 1))
    assert out.sample is None and out.train_output is out.mean
    torch.testing.assert_close(out.mean, torch.full((3, 1), 1.0))  # 2 / exp(ln4 / 2)


def test_regression_prediction_is_the_normalised_mean() -> None:
    torch.manual_seed(0)
    head = VarianceNormalizedGaussianHead(D, 3, mode="learned").eval()
    with torch.no_grad():
        head.log_scale.fill_(0.8)
    h = torch.randn(5, D)
    out = head(h)
    expected = head.mean(h) / math.exp(0.4)
    pred = predict(Task("r", TaskKind.REGRESSION, targets=("a", "b", "c")), out.mean)
    torch.testing.assert_close(pred, expected)
    torch.testing.assert_close(out.raw_mean, head.mean(h))


@pytest.mark.parametrize("s", [-3.0, 0.0, 0.5, 4.0])
def test_classification_argmax_is_unchanged_by_the_normalisation(s: float) -> None:
    torch.manual_seed(1)
    head = VarianceNormalizedGaussianHead(D, 5, mode="learned").eval()
    with torch.no_grad():
        head.log_scale.fill_(s)
    out = head(torch.randn(20, D))
    assert torch.equal(out.mean.argmax(-1), out.raw_mean.argmax(-1))


def test_training_sample_is_the_gaussian_sample_divided_by_exp_half_s() -> None:
    torch.manual_seed(2)
    head = VarianceNormalizedGaussianHead(D, 3, mode="learned").train()
    plain = GaussianHead(D, 3)
    plain.load_state_dict({k: v for k, v in head.state_dict().items() if k != "log_scale"})
    with torch.no_grad():
        head.log_scale.fill_(-1.2)
    h = torch.randn(4, D)
    torch.manual_seed(9)
    out = head(h)
    torch.manual_seed(9)
    ref = plain.train()(h)
    torch.testing.assert_close(out.sample, ref.sample * math.exp(0.6))
    torch.testing.assert_close(out.raw_mean, ref.mean)
    torch.testing.assert_close(out.raw_logvar, ref.logvar)


# --------------------------------------------------------------------------- #
# the objective
# --------------------------------------------------------------------------- #


def _class_balanced(kl_rows: torch.Tensor, labels: torch.Tensor) -> float:
    return sum(_num(kl_rows[labels == c].mean()) for c in labels.unique().tolist())


def test_task_loss_is_loss_of_the_sample_plus_beta_kl_of_the_raw_gaussian() -> None:
    beta, gamma, gamma_reg = 0.3, 2.0, 0.5
    method = _method(beta=beta, gamma=gamma, gamma_regression=gamma_reg).train()
    h, batch = _batch()
    decoder, out = _forward(method, h, batch)
    terms = method.objective.loss_terms(out, batch)
    assert set(terms.task_losses) == set(terms.kpis) == {0, 1, 2}
    aux = 0.0
    for t, task in enumerate(TASKS):
        o, y = out.heads[t], batch.labels[t]
        kl_rows = (-0.5 * (1 + o.raw_logvar - o.raw_mean**2 - o.raw_logvar.exp())).mean(dim=1)
        if task.kind is TaskKind.CLASSIFICATION:
            ce, kl = _num(F.cross_entropy(o.sample, y)), _class_balanced(kl_rows, y)
        elif task.kind is TaskKind.MULTILABEL:
            ce, kl = _num(F.binary_cross_entropy_with_logits(o.sample, y)), _num(kl_rows.mean())
        else:
            ce, kl = _num(F.mse_loss(o.sample, y)), _num(kl_rows.mean())
        assert _num(terms.task_losses[t]) == pytest.approx(ce + beta * kl, rel=1e-5)
        assert _num(terms.components[("ce", t)]) == pytest.approx(ce, rel=1e-5)
        assert _num(terms.components[("kl", t)]) == pytest.approx(kl, rel=1e-5)
        s = _num(decoder.heads[t].log_scale)
        assert _num(terms.components[("s", t)]) == pytest.approx(s)
        gamma_t = gamma_reg if task.kind is TaskKind.REGRESSION else gamma
        assert _num(terms.task_aux[t]) == pytest.approx(gamma_t * s, rel=1e-6)
        aux += gamma_t * s
    assert terms.aux is None
    total, _ = method.weighting.combine(terms)  # EW: the mean over tasks of ℓ_t + γ_t s_t
    expected = sum(_num(v) for v in terms.task_losses.values()) / 3 + aux / 3
    assert _num(total) == pytest.approx(expected, rel=1e-6)


def test_kl_falls_back_to_the_mean_for_regression_and_multilabel_tasks() -> None:
    h, batch = _batch(seed=3)
    method = _method()
    _, out = _forward(method, h, batch)
    cb = method.objective.loss_terms(out, batch)
    mean = _method(kl_reduction="mean").objective.loss_terms(out, batch)
    for t in (1, 2):  # multilabel, regression: class_balanced == mean
        assert _num(cb.components[("kl", t)]) == pytest.approx(_num(mean.components[("kl", t)]))
    assert _num(cb.components[("kl", 0)]) != pytest.approx(_num(mean.components[("kl", 0)]))


def test_gradient_of_the_gamma_term_reaches_s_and_the_task_loss_too() -> None:
    method = _method(beta=0.0, gamma=3.0, gamma_regression=0.25).train()
    h, batch = _batch(seed=4)
    decoder, out = _forward(method, h, batch, scales=(0.0, 0.0, 0.0))
    terms = method.objective.loss_terms(out, batch)
    sum(terms.task_aux.values()).backward()
    grads = [_num(head.log_scale.grad) for head in decoder.heads]
    assert grads == pytest.approx([3.0, 3.0, 0.25])
    decoder, out = _forward(method, h, batch, scales=(0.0, 0.0, 0.0))
    terms = method.objective.loss_terms(out, batch)
    sum(terms.task_losses.values()).backward()  # the task losses alone also move s
    assert all(_num(head.log_scale.grad) != 0.0 for head in decoder.heads)


def test_s_lives_in_the_model_not_in_the_method() -> None:
    method = _method()
    decoder = method.build_decoder()
    names = [n for n, _ in decoder.named_parameters()]
    assert [n for n in names if n.endswith("log_scale")] == [f"heads.{t}.log_scale" for t in range(3)]
    assert all(p.ndim == 0 for n, p in decoder.named_parameters() if n.endswith("log_scale"))
    assert list(method.parameters()) == []  # nothing of the decoder is also the method's


def test_learned_s_is_a_task_scalar_own_lr_no_weight_decay_outside_the_clip(tmp_path: Path) -> None:
    config = TrainConfig(benchmark="synthetic", backbone="tiny", max_length=32, batch_size=16,
                         epochs=1, max_train_examples=32, max_eval_examples=16, progress=False,
                         weight_decay=0.01, output_dir=str(tmp_path / "run"), method="vipmtl",
                         method_args={"scale_mode": "learned"}, scalar_lr=0.05)
    trainer = Trainer(config)
    trainer.setup(10)
    scales = {id(h.log_scale) for h in trainer.model.decoder.heads}
    groups = [g for g in trainer.optimizer.param_groups if g.get("task_scalars")]
    assert len(groups) == 1 and {id(p) for p in groups[0]["params"]} == scales
    assert (groups[0]["weight_decay"], groups[0]["lr"]) == (0.0, 0.05)
    seen = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert len(set(seen)) == len(seen)  # no parameter in two groups
    assert not scales & {id(p) for p in trainer.clipped}  # outside the clipped norm
    assert trainer.optimizer.param_groups[0]["lr"] == 5e-5


def test_estimated_sigma_is_a_buffer_not_a_parameter() -> None:
    method = _method(scale_mode="estimate")
    decoder = method.build_decoder()
    assert not any(n.endswith("log_scale") for n, _ in decoder.named_parameters())
    assert all(f"heads.{t}.log_scale" in decoder.state_dict() for t in range(3))


def test_estimate_tracks_the_mean_row_variance_with_a_running_mean(monkeypatch) -> None:
    # σ² = 4 on every row: the batch estimate of Eq. 4 is 4; momentum 0.5 from R = 1 gives 2.5
    head = _constant_head(mu=2.0, logvar=LN4, s=0.0, mode="estimate", momentum=0.5).train()
    monkeypatch.setattr(torch, "randn_like", lambda x, **kw: torch.full_like(x, 0.5))
    out = head(torch.ones(3, 1))
    assert _num(head.log_scale) == pytest.approx(math.log(2.5))
    assert out.sample[0].item() == pytest.approx((2 + 2 * 0.5) / math.sqrt(2.5), rel=1e-6)
    assert out.log_scale.requires_grad is False
    assert out.penalty_log_scale is None  # a statistic of the head: no γ·log Σ' term
    out = head(torch.ones(3, 1))  # a second batch: R = 0.5·2.5 + 0.5·4 = 3.25
    assert _num(head.log_scale) == pytest.approx(math.log(3.25))
    head.eval()
    out = head(torch.ones(2, 1))  # evaluation: the running estimate, no update
    assert _num(head.log_scale) == pytest.approx(math.log(3.25))
    assert out.mean[0].item() == pytest.approx(2 / math.sqrt(3.25), rel=1e-6)
    assert out.penalty_log_scale is None


def test_kl_target_normalized_takes_the_kl_of_the_normalised_gaussian() -> None:
    h, batch = _batch(seed=8)
    method = _method(kl_target="normalized", kl_reduction="mean")
    _, out = _forward(method, h, batch)
    terms = method.objective.loss_terms(out, batch)
    for t in range(3):
        o = out.heads[t]
        kl = (-0.5 * (1 + o.logvar - o.mean**2 - o.logvar.exp())).mean()
        assert _num(terms.components[("kl", t)]) == pytest.approx(_num(kl), rel=1e-5)
    raw = _method(kl_reduction="mean").objective.loss_terms(out, batch)
    assert _num(raw.components[("kl", 0)]) != pytest.approx(_num(terms.components[("kl", 0)]))


def test_without_variance_normalisation_s_is_a_frozen_zero_and_there_is_no_gamma_term() -> None:
    method = _method(variance_norm=False).train()
    decoder = method.build_decoder()
    assert not any(n.endswith("log_scale") for n, _ in decoder.named_parameters())
    assert all(n in decoder.state_dict() for n in (f"heads.{t}.log_scale" for t in range(3)))
    h, batch = _batch(seed=5)
    heads, _ = decoder(h, batch.rows)
    out = ModelOutput(h=h, h_views=None, heads=heads)
    terms = method.objective.loss_terms(out, batch)
    assert terms.aux is None and terms.task_aux == {}
    assert not any(name == "s" for name, _ in terms.components)
    decoder.eval()
    heads, _ = decoder(h, batch.rows)
    for o in heads.values():
        assert torch.equal(o.mean, o.raw_mean)


def test_log_values_report_s_and_sigma_by_task_name() -> None:
    method = _method()
    assert method.objective.log_values() == {}
    decoder = method.build_decoder()
    with torch.no_grad():
        decoder.heads[2].log_scale.fill_(LN4)
    values = method.log_values()["vipmtl"]
    assert values["s"] == pytest.approx({"alpha": 0.0, "beta": 0.0, "gamma": LN4})
    assert values["sigma"] == pytest.approx({"alpha": 1.0, "beta": 1.0, "gamma": 4.0})


def test_composes_with_uw_which_weights_the_task_losses_but_not_the_gamma_term() -> None:
    method = _method("uw", beta=0.1).train()
    assert method.name == "vipmtl+uw"
    h, batch = _batch(seed=6)
    _, out = _forward(method, h, batch)
    total, terms, weights = method.loss(out, batch)
    losses = torch.stack([terms.task_losses[t] for t in range(3)])
    c = torch.tensor([1.0, 1.0, 0.5])  # UW: ½ e^{−s} ℓ + ½ s for the regression task
    extras = sum(_num(v) for v in terms.task_aux.values())
    expected = (_num((c * losses).sum()) + extras) / 3  # UW's s = 0; γ_t s_t unweighted
    assert _num(total) == pytest.approx(expected, rel=1e-6)
    assert weights.tolist() == pytest.approx([1 / 3, 1 / 3, 0.5 / 3])


def test_registration_aliases_and_defaults() -> None:
    assert OBJECTIVES["vipmtl"].reference.startswith("Hu et al., ACL 2025")
    for name in ("vipmtl", "vip-mtl", "VIP_MTL"):
        spec = resolve_method(name)
        assert (spec.objective, spec.weighting, spec.name) == ("vipmtl", "ew", "vipmtl")
    hp = resolve_method("vipmtl").objective_hp
    assert (hp.beta, hp.gamma, hp.gamma_regression, hp.variance_norm, hp.kl_reduction) == (
        0.01, 10.0, 0.1, True, "class_balanced")
    assert (hp.scale_mode, hp.scale_momentum, hp.kl_target) == ("learned", 0.1, "raw")
    assert _method().views == 1
    spec = resolve_method("vipmtl", None, {"variance_norm": "false", "gamma": "10"})
    assert spec.objective_hp.variance_norm is False and spec.objective_hp.gamma == 10.0


@pytest.mark.parametrize(
    "args",
    [{"beta": -1}, {"gamma": -0.1}, {"gamma_regression": float("nan")}, {"gamma": float("inf")},
     {"kl_reduction": "median"}, {"scale_mode": "fixed"}, {"kl_target": "both"},
     {"scale_momentum": 0.0}, {"scale_momentum": 1.5}],
)
def test_invalid_hyperparameters_are_config_errors(args: dict) -> None:
    with pytest.raises(ConfigError, match="method vipmtl"):
        resolve_method("vipmtl", None, args)


# --------------------------------------------------------------------------- #
# presets
# --------------------------------------------------------------------------- #

PRESETS = {  # the paper's Table 8: benchmark, backbone, head dropout, β
    "affecteval-vipmtl-roberta.yaml": ("affecteval", "roberta-base", 0.0, 0.001),
    "affecteval-vipmtl-bert.yaml": ("affecteval", "bert-base-uncased", 0.0, 0.1),
    "tweeteval-vipmtl-roberta.yaml": ("tweeteval", "roberta-base", 0.2, 0.01),
    "tweeteval-vipmtl-bert.yaml": ("tweeteval", "bert-base-uncased", 0.2, 0.001),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load_validate_and_resolve(name: str) -> None:
    path = REPO / "configs" / name
    config = TrainConfig.from_dict(load_yaml(path), str(path)).validate()
    spec = resolve_spec(config)
    benchmark, backbone, dropout, beta = PRESETS[name]
    assert (config.data.benchmark, config.model.backbone, config.model.head_dropout) == (benchmark, backbone, dropout)
    assert (spec.objective, spec.weighting) == ("vipmtl", "ew")
    hp = spec.objective_hp
    assert (hp.beta, hp.gamma, hp.gamma_regression, hp.variance_norm) == (beta, 10.0, 0.1, True)
    assert (config.optim.optimizer, config.optim.lr, config.batching.batch_size, config.model.max_length) == (
        "adamax", 5e-5, 128, 256)
    assert (config.optim.epochs, config.optim.patience) == (20, 3)


# --------------------------------------------------------------------------- #
# end to end
# --------------------------------------------------------------------------- #


def test_a_tiny_run_learns_s_logs_it_and_reloads(tmp_path: Path) -> None:
    config = TrainConfig(
        benchmark="synthetic", backbone="tiny", max_length=32, batch_size=16, epochs=1,
        max_steps=4, lr=1e-2, max_train_examples=64, max_eval_examples=24, progress=False,
        output_dir=str(tmp_path / "run"), method="vip-mtl",
    )
    result = Trainer(config).run()
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    names = ["sentiment", "topic", "urgency"]
    assert math.isfinite(log[-1]["train"]["loss"])
    assert set(log[-1]["train"]["s"]) == set(log[-1]["train"]["kl"]) == set(names)
    sigma = log[-1]["method"]["vipmtl"]["sigma"]
    assert set(sigma) == set(names) and all(v != 1.0 for v in sigma.values())
    run = load_run(result.run_dir)
    scales = [_num(h.log_scale) for h in run.model.decoder.heads]
    assert scales == pytest.approx([math.log(sigma[n]) for n in names], rel=1e-5)
    assert result.results["method"] == "vipmtl"
