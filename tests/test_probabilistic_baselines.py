"""The probabilistic baselines MT-VIB, Hierarchical MTL and VMTL: their rules on
numbers, their decoders, their registration and a tiny end-to-end run each."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from fakes import MIXED_TASKS, fake_batch, on_progress
from infomtl.artifacts.run_folder import resume_config
from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.methods import (
    OBJECTIVES,
    BackwardContext,
    LossTerms,
    Method,
    MethodSpec,
    resolve_method,
)
from infomtl.methods.objectives.hmtl import cluster_tasks, hmtl_kl, signal_to_noise, task_distances
from infomtl.methods.objectives.mtvib import vib_kl
from infomtl.methods.objectives.vmtl_priors import (
    anneal_factor,
    gaussian_kl_between,
    mixing_weights,
    mixture_prior,
    row_attention,
)
from infomtl.modeling.model import ModelOutput
from infomtl.tasks import Task
from infomtl.training import Trainer

TASKS = MIXED_TASKS
SIZES = [100, 50, 30]
D = 8
NAMES = ("mt-vib", "hierarchical-mtl", "vmtl")
SMALL = {
    "mt-vib": {"bottleneck_dim": 6},
    "hierarchical-mtl": {"latent_dim": 5},
    "vmtl": {"latent_dim": 7, "samples": 3},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(name: str, weighting: str | None = None, tasks: list[Task] = TASKS, **args) -> Method:
    spec = resolve_method(name, weighting, {**SMALL[name], **args})
    return Method(spec, tasks, D, SIZES[: len(tasks)], head_dropout=0.0, head_hidden=0)


def _batch(rows_per_task: tuple[int, ...] = (3, 2, 4), seed: int = 0) -> tuple[torch.Tensor, Batch]:
    return fake_batch(TASKS, rows_per_task, D, seed)

def _forward(method: Method, decoder: torch.nn.Module, h: torch.Tensor, batch: Batch) -> ModelOutput:
    heads, extras = decoder(h, batch.rows)
    return ModelOutput(h=h, h_views=None, heads=heads, extras=extras)


# --------------------------------------------------------------------------- #
# the rules on numbers (docs/methods.md, "Probabilistic baselines")
# --------------------------------------------------------------------------- #


def test_mtvib_kl_is_summed_over_dimensions_per_row() -> None:
    mu = torch.tensor([[1.0, 0.0]])
    sigma = torch.tensor([[1.0, 0.5]])  # σ² = (1, 0.25)
    assert vib_kl(mu, sigma).item() == pytest.approx(0.818147, abs=1e-6)
    two = vib_kl(torch.cat([mu, torch.zeros(1, 2)]), torch.cat([sigma, torch.ones(1, 2)]))
    assert two.tolist() == pytest.approx([0.818147, 0.0], abs=1e-6)


def test_hmtl_kl_matches_the_closed_form() -> None:
    assert hmtl_kl(torch.tensor([[1.0, 0.0]]), torch.zeros(2), torch.zeros(2)).item() == pytest.approx(0.5)
    value = hmtl_kl(torch.zeros(1, 1), torch.tensor([math.log(0.5)]), torch.zeros(1)).item()
    assert value == pytest.approx(0.096574, abs=1e-6)


def test_hmtl_loss_averages_the_kl_over_the_latent_dimensions() -> None:
    # Z = (1, 0), n = q = 0 on a latent of k = 2: summed KL 0.5, averaged 0.25
    tasks = TASKS[:1]
    for reduction, expected in (("mean", 0.25), ("sum", 0.5)):
        method = _method("hierarchical-mtl", tasks=tasks, latent_dim=2, hmtl_beta=1.0,
                         noise_init=0.0, kl_reduction=reduction)
        decoder = method.build_decoder().eval()
        with torch.no_grad():
            decoder.proj.weight.zero_()
            decoder.proj.bias.copy_(torch.tensor([1.0, 0.0]))
        h, batch = _batch((3,))
        out = _forward(method, decoder, h, batch)
        terms = method.objective.loss_terms(out, batch)
        assert terms.components[("kl", 0)].item() == pytest.approx(expected)
        ce = terms.components[("ce", 0)].item()
        assert terms.task_losses[0].item() == pytest.approx(ce + expected, rel=1e-6)


def test_hmtl_signal_to_noise_ratio() -> None:
    # rows (1, 2) and (3, 0), noise variances (1, 4): Z²/e^n = (1, 1) and (9, 0) → mean 2.75
    z = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    assert signal_to_noise(z, torch.log(torch.tensor([1.0, 4.0]))).item() == pytest.approx(2.75)


def test_vmtl_mixture_prior_and_its_kl() -> None:
    mean, var = mixture_prior(torch.tensor([0.25, 0.75]), torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
    assert (mean.item(), var.item()) == pytest.approx((2.5, 0.625))
    kl = gaussian_kl_between(torch.tensor(2.0), torch.tensor(1.0), mean, var)
    assert kl.item() == pytest.approx(0.264998, abs=1e-6)


def test_vmtl_kl_floors_the_variances_at_1e_6() -> None:
    tiny = gaussian_kl_between(torch.tensor(0.0), torch.tensor(1e-12), torch.tensor(1e-3), torch.tensor(1e-9))
    floored = gaussian_kl_between(torch.tensor(0.0), torch.tensor(1e-6), torch.tensor(1e-3), torch.tensor(1e-6))
    assert tiny.item() == pytest.approx(floored.item()) == pytest.approx(0.5)


def test_vmtl_weight_kl_anneal_factor() -> None:
    assert [anneal_factor(s, 1000) for s in (0, 250, 1000, 5000)] == [0.0, 0.25, 1.0, 1.0]
    assert anneal_factor(0, 0) == 1.0


def test_vmtl_row_attention_is_sharp_or_the_nearest_row() -> None:
    similarity = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.3, 0.8]])
    assert row_attention(similarity, 0.0).tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    sharp = row_attention(similarity, 0.1)
    torch.testing.assert_close(sharp, torch.softmax(similarity * 10, dim=-1))
    assert sharp[0, 0] > 0.98 and torch.softmax(similarity, dim=-1)[0, 0] < 0.5


def test_vmtl_mixing_weights_are_renormalised_over_the_allowed_tasks() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    allowed = ~torch.eye(3, dtype=torch.bool)
    a = mixing_weights(logits, allowed, tau=1.0, gumbel=False)
    assert torch.diagonal(a).tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(a[0, 1:], torch.softmax(torch.tensor([1.0, 2.0]), 0))
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    # task 2 absent from the batch: task 0 mixes task 1 only, task 1 task 0 only
    allowed = allowed & torch.tensor([True, True, False])[None, :]
    a = mixing_weights(logits, allowed, tau=1.0, gumbel=False)
    assert a.tolist()[0] == [0.0, 1.0, 0.0] and a.tolist()[1] == [1.0, 0.0, 0.0]
    # one task: nothing to mix
    assert mixing_weights(torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.bool), 1.0, True).tolist() == [[0.0]]
    noisy = mixing_weights(logits, ~torch.eye(3, dtype=torch.bool), tau=0.5, gumbel=True)
    torch.testing.assert_close(noisy.sum(1), torch.ones(3))
    assert torch.isfinite(noisy).all()


def test_vmtl_latent_prior_mixes_attention_weighted_rows_of_the_other_tasks() -> None:
    method = _method("vmtl", prior_tau=0.5)
    decoder = method.build_decoder().eval()
    mu = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    var = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    # tasks 0 and 1 only (task 2 absent): each row's prior is task (1 − t)'s rows, a = 1
    rows = {0: torch.tensor([0, 3]), 1: torch.tensor([1, 2])}
    prior_mu, prior_var = decoder.latent_prior(mu, var, rows)
    unit = torch.nn.functional.normalize(mu, dim=-1)
    att = torch.softmax(unit[0] @ unit[[1, 2]].T / 0.5, dim=0)  # row 0 (task 0) over task 1's rows
    torch.testing.assert_close(prior_mu[0], att @ mu[[1, 2]])
    torch.testing.assert_close(prior_var[0], att @ var[[1, 2]])
    att = torch.softmax(unit[2] @ unit[[0, 3]].T / 0.5, dim=0)  # row 2 (task 1) over task 0's rows
    torch.testing.assert_close(prior_mu[2], att @ mu[[0, 3]])
    # a batch of one task: prior N(0, I)
    prior_mu, prior_var = decoder.latent_prior(mu, var, {2: torch.arange(4)})
    assert prior_mu.abs().sum() == 0 and torch.all(prior_var == 1)


def test_vmtl_latent_prior_depends_on_the_row() -> None:
    # prior_tau = 0: a row's prior is the posterior of the other task's nearest row, so two
    # rows of one task get different priors (not the other task's batch mean)
    method = _method("vmtl", prior_tau=0.0)
    decoder = method.build_decoder().eval()
    mu = torch.tensor([[1.0, 0.1], [0.1, 1.0], [2.0, 0.0], [0.0, 3.0]])
    var = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.5, 0.5], [0.25, 0.25]])
    rows = {0: torch.tensor([0, 1]), 1: torch.tensor([2, 3])}
    prior_mu, prior_var = decoder.latent_prior(mu, var, rows)
    torch.testing.assert_close(prior_mu[:2], mu[[2, 3]])
    torch.testing.assert_close(prior_var[:2], var[[2, 3]])
    torch.testing.assert_close(prior_mu[2:], mu[[0, 1]])
    # the default (τ = 0.1) is close to that; a flat attention would give the batch mean
    sharp = _method("vmtl").build_decoder().eval().latent_prior(mu, var, rows)[0]
    assert (sharp[:2] - mu[[2, 3]]).abs().max() < 0.05
    flat = _method("vmtl", prior_tau=1e6).build_decoder().eval().latent_prior(mu, var, rows)[0]
    torch.testing.assert_close(flat[0], mu[[2, 3]].mean(0))
    torch.testing.assert_close(flat[1], mu[[2, 3]].mean(0))


def test_vmtl_latent_prior_with_three_tasks_uses_squared_weights_for_the_variance() -> None:
    method = _method("vmtl")
    decoder = method.build_decoder().eval()
    with torch.no_grad():
        decoder.mix_z[0].copy_(torch.tensor([0.0, math.log(0.25), math.log(0.75)]))
    mu = torch.tensor([[5.0, 5.0], [1.0, 1.0], [3.0, 3.0]])
    var = torch.tensor([[9.0, 9.0], [1.0, 1.0], [1.0, 1.0]])
    rows = {0: torch.tensor([0]), 1: torch.tensor([1]), 2: torch.tensor([2])}
    prior_mu, prior_var = decoder.latent_prior(mu, var, rows)
    torch.testing.assert_close(prior_mu[0], torch.tensor([2.5, 2.5]))
    torch.testing.assert_close(prior_var[0], torch.tensor([0.625, 0.625]))


def test_task_distances_and_average_linkage_merge_order() -> None:
    n = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 4.0]])
    matrix = task_distances(n)
    assert matrix.tolist() == [[0.0, 1.0, 8.0], [1.0, 0.0, 7.0], [8.0, 7.0, 0.0]]
    info = cluster_tasks(["a", "b", "c"], matrix)
    assert info["merges"] == [
        {"left": ["a"], "right": ["b"], "distance": 1.0},
        {"left": ["c"], "right": ["a", "b"], "distance": 7.5},
    ] or info["merges"] == [
        {"left": ["a"], "right": ["b"], "distance": 1.0},
        {"left": ["a", "b"], "right": ["c"], "distance": 7.5},
    ]
    clusters = info["clusters"]
    assert clusters["1"] == [1, 1, 1] and len(set(clusters["3"])) == 3
    assert clusters["2"][0] == clusters["2"][1] != clusters["2"][2]


def test_hmtl_writes_the_task_clustering_of_its_noise_log_variances(tmp_path: Path) -> None:
    method = _method("hierarchical-mtl", latent_dim=2)
    decoder = method.build_decoder()
    with torch.no_grad():
        for p, value in zip(decoder.noise_logvar, ([0.0, 0.0], [1.0, 0.0], [4.0, 4.0]), strict=True):
            p.copy_(torch.tensor(value))
    method.write_artifacts(tmp_path)
    info = json.loads((tmp_path / "task_distances.json").read_text(encoding="utf-8"))
    assert info["tasks"] == ["alpha", "beta", "gamma"]
    assert info["matrix"] == [[0.0, 1.0, 8.0], [1.0, 0.0, 7.0], [8.0, 7.0, 0.0]]
    assert [m["distance"] for m in info["merges"]] == [1.0, 7.5]
    assert sorted(info["merges"][0]["left"] + info["merges"][0]["right"]) == ["alpha", "beta"]
    assert info["linkage"][0][:3] == [0, 1, 1.0]
    with (tmp_path / "task_distances.csv").open(encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["task", "alpha", "beta", "gamma"]
    assert table[3] == ["gamma", "8", "7", "0"]
    values = method.log_values()["hierarchical-mtl"]["noise_logvar_mean"]
    assert values == pytest.approx({"alpha": 0.0, "beta": 0.5, "gamma": 4.0})


def test_hmtl_clamps_the_log_variances_and_handles_one_task(tmp_path: Path) -> None:
    method = _method("hierarchical-mtl", tasks=TASKS[:1])
    decoder = method.build_decoder()
    with torch.no_grad():
        decoder.noise_logvar[0].fill_(50.0)
    h, batch = _batch((3,))
    extras = decoder(h, batch.rows)[1]
    assert extras["noise_logvar"].max().item() == 10.0
    method.write_artifacts(tmp_path)
    info = json.loads((tmp_path / "task_distances.json").read_text(encoding="utf-8"))
    assert info["matrix"] == [[0.0]] and info["merges"] == [] and info["clusters"] == {"1": [1]}


# --------------------------------------------------------------------------- #
# decoders and loss terms
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", NAMES)
def test_decoder_shapes_in_train_and_eval(name: str) -> None:
    method = _method(name)
    decoder = method.build_decoder()
    h, batch = _batch()
    decoder.train()
    out = _forward(method, decoder, h, batch)
    for t, o in out.heads.items():
        n, c = len(batch.rows[t]), TASKS[t].num_outputs
        assert o.mean.shape == (n, c) and o.sample is not None and o.sample.shape == (n, c)
    if name == "vmtl":
        assert out.extras["samples.0"].shape == (3, 3, 3)
    decoder.eval()
    out = _forward(method, decoder, h, batch)
    for t, o in out.heads.items():
        assert o.mean.shape == (len(batch.rows[t]), TASKS[t].num_outputs) and o.sample is None


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic_and_uses_the_means(name: str) -> None:
    method = _method(name)
    decoder = method.build_decoder().eval()
    h, batch = _batch()
    first = _forward(method, decoder, h, batch)
    second = _forward(method, decoder, h, batch)
    for t in first.heads:
        torch.testing.assert_close(first.heads[t].mean, second.heads[t].mean, rtol=0, atol=0)
    t1 = method.objective.loss_terms(first, batch)
    t2 = method.objective.loss_terms(second, batch)
    for t in t1.task_losses:
        assert t1.task_losses[t].item() == t2.task_losses[t].item()
    # training draws noise, but the prediction path (mean) is the same in both modes
    decoder.train()
    torch.manual_seed(0)
    train = _forward(method, decoder, h, batch)
    for t in first.heads:
        torch.testing.assert_close(train.heads[t].mean, first.heads[t].mean)
        assert not torch.equal(train.heads[t].sample, first.heads[t].mean)


@pytest.mark.parametrize("name", NAMES)
def test_loss_terms_are_finite_for_every_task_kind_and_reach_the_parameters(name: str) -> None:
    method = _method(name)
    decoder = method.build_decoder().train()
    h, batch = _batch()
    h.requires_grad_(True)
    out = _forward(method, decoder, h, batch)
    terms = method.objective.loss_terms(out, batch)
    assert sorted(terms.task_losses) == [0, 1, 2] and sorted(terms.kpis) == [0, 1, 2]
    for t in range(3):
        assert torch.isfinite(terms.task_losses[t]) and 0 <= terms.kpis[t].item() <= 1
        assert ("ce", t) in terms.components
    total, _, _ = method.loss(out, batch)
    total.backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    grads = {n: p.grad for n, p in decoder.named_parameters()}
    if name == "mt-vib":
        assert ("kl", None) in terms.components and terms.aux is not None
        assert terms.aux.item() == pytest.approx(
            1e-3 * vib_kl(out.extras["mu"], out.extras["sigma"]).mean().item()
        )
        assert grads["sigma.weight"].abs().sum() > 0
    elif name == "hierarchical-mtl":
        assert terms.aux is None and all(("kl", t) in terms.components for t in range(3))
        assert all(grads[f"noise_logvar.{t}"].abs().sum() > 0 for t in range(3))
        assert all(grads[f"prior_logvar.{t}"].abs().sum() > 0 for t in range(3))
    else:
        assert all(("kl_z", t) in terms.components and ("kl_w", t) in terms.components for t in range(3))
        assert all(grads[f"mix_z.{t}"].abs().sum() > 0 for t in range(3))
        assert grads["a_mean.0"].abs().sum() > 0 and grads["a_logvar.0"].abs().sum() > 0


@pytest.mark.parametrize(("reduction", "divisor"), [("mean", 5), ("sum", 1)])
def test_hmtl_task_loss_adds_beta_times_the_mean_kl_of_its_rows(reduction: str, divisor: int) -> None:
    method = _method("hierarchical-mtl", hmtl_beta=0.5, kl_reduction=reduction)  # k = 5
    decoder = method.build_decoder().eval()
    h, batch = _batch()
    out = _forward(method, decoder, h, batch)
    terms = method.objective.loss_terms(out, batch)
    n = torch.stack(list(decoder.noise_logvar))
    q = torch.stack(list(decoder.prior_logvar))
    for t in range(3):
        z = decoder.proj(h)[batch.rows[t]]
        kl = hmtl_kl(z, n[t], q[t]).mean() / divisor
        expected = terms.components[("ce", t)] + 0.5 * kl
        assert terms.task_losses[t].item() == pytest.approx(expected.item(), rel=1e-5)
        assert terms.components[("snr", t)].item() == pytest.approx(signal_to_noise(z, n[t]).item())


def test_hmtl_logs_the_epoch_mean_signal_to_noise_ratio_per_task() -> None:
    method = _method("hierarchical-mtl")
    objective = method.objective
    method.build_decoder()
    assert "snr" not in method.log_values()["hierarchical-mtl"]
    for values in ([1.0, 2.0, 3.0], [3.0, 4.0]):  # task 2 absent from the second step
        components = {("snr", t): torch.tensor(v) for t, v in enumerate(values)}
        components[("kl", 0)] = torch.tensor(100.0)
        objective.on_step_end(LossTerms({}, None, components))
    method.on_epoch_end(1, torch.zeros(3))
    assert method.log_values()["hierarchical-mtl"]["snr"] == pytest.approx(
        {"alpha": 2.0, "beta": 3.0, "gamma": 3.0}
    )
    objective.on_step_end(LossTerms({}, None, {("snr", 1): torch.tensor(8.0)}))
    method.on_epoch_end(2, torch.zeros(3))  # a new epoch starts from zero
    assert method.log_values()["hierarchical-mtl"]["snr"] == {"beta": 8.0}


def test_vmtl_averages_the_task_loss_over_its_samples() -> None:
    method = _method("vmtl", kl_z=0.0, kl_w=0.0)
    decoder = method.build_decoder().train()
    h, batch = _batch()
    out = _forward(method, decoder, h, batch)
    terms = method.objective.loss_terms(out, batch)
    samples = out.extras["samples.0"]
    ce = torch.stack([torch.nn.functional.cross_entropy(s, batch.labels[0]) for s in samples]).mean()
    assert terms.task_losses[0].item() == pytest.approx(ce.item(), rel=1e-5)


def _weight_kl_by_hand(decoder, t: int, mixture: bool, b: torch.Tensor | None = None) -> torch.Tensor:
    means = torch.stack(list(decoder.a_mean)).detach()
    variances = torch.stack(list(decoder.a_logvar)).detach().clamp(-20, 10).exp()
    if mixture:
        prior_mu, prior_var = mixture_prior(b, means, variances)
    else:
        prior_mu, prior_var = torch.zeros_like(means[t]), torch.ones_like(variances[t])
    kl = gaussian_kl_between(means[t], variances[t], prior_mu, prior_var).mean()
    return kl + 0.5 * decoder.heads[t].weight.detach().pow(2).mean()


def test_vmtl_weight_kl_is_annealed_from_zero_with_standard_normal_priors_first() -> None:
    method = _method("vmtl", kl_z=0.0, kl_w=0.5, anneal_steps=4, warmup_steps=2)
    objective = method.objective
    decoder = method.build_decoder().eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in decoder.a_mean:
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for p in decoder.a_logvar:
            p.add_(torch.randn(p.shape, generator=gen))
        decoder.mix_a[0].copy_(torch.tensor([0.0, math.log(0.25), math.log(0.75)]))
    h, batch = _batch()
    seen = []
    for step in range(6):
        assert objective.step == step
        out = _forward(method, decoder, h, batch)
        terms = method.objective.loss_terms(out, batch)
        mixture = step >= 2
        kl_w = terms.components[("kl_w", 0)]
        expected = _weight_kl_by_hand(decoder, 0, mixture, torch.tensor([0.0, 0.25, 0.75]))
        assert kl_w.item() == pytest.approx(expected.item(), rel=1e-5)
        factor = min(1.0, step / 4)
        ce = terms.components[("ce", 0)]
        assert terms.task_losses[0].item() == pytest.approx((ce + 0.5 * factor * kl_w).item(), rel=1e-6)
        values = method.log_values()["vmtl"]
        assert values["kl_w_factor"] == factor and values["step"] == step
        assert values["weight_prior"] == ("mixture" if mixture else "standard normal")
        seen.append(kl_w.item())
        method.on_step_end(terms)
    assert seen[1] != pytest.approx(seen[2])  # N(0, I) and the mixture differ here


def test_vmtl_schedule_survives_extra_state() -> None:
    method = _method("vmtl", anneal_steps=10)
    method.build_decoder()
    for _ in range(7):
        method.on_step_end(LossTerms({}))
    state = json.loads(json.dumps(method.extra_state()))
    again = _method("vmtl", anneal_steps=10)
    again.build_decoder()
    assert again.objective.kl_w_factor == 0.0
    again.load_extra_state(state)
    assert again.objective.step == 7 and again.objective.kl_w_factor == pytest.approx(0.7)


class _Crash(Exception):
    pass


def _crash_after(epoch: int):
    def crash(message: str) -> None:
        if message.startswith(f"epoch {epoch}:"):
            raise _Crash

    return on_progress(crash)


def _outcome(run_dir: Path) -> tuple:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results.pop("train_time_s", None)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in log:
        record.pop("epoch_time_s", None)
    return results, log


def test_a_resumed_vmtl_run_continues_the_anneal_and_equals_the_whole_run(tmp_path: Path) -> None:
    args = {**SMALL["vmtl"], "anneal_steps": 10, "warmup_steps": 4}

    def config(folder: Path) -> TrainConfig:
        return TrainConfig(
            benchmark="synthetic", backbone="tiny", max_length=32, batch_size=32, epochs=3,
            max_train_examples=64, max_eval_examples=32, progress=False, patience=0, lr=2e-3,
            output_dir=str(folder), method="vmtl", method_args=args,
        )

    whole = Trainer(config(tmp_path / "whole")).run().run_dir
    log = _outcome(whole)[1]
    factors = [r["method"]["vmtl"]["kl_w_factor"] for r in log]
    assert factors[0] < factors[1] <= 1.0  # the crash below falls inside the ramp
    crashed = tmp_path / "crashed"
    with _crash_after(2), pytest.raises(_Crash):
        Trainer(config(crashed)).run()
    Trainer(resume_config(crashed)).run()
    assert _outcome(crashed) == _outcome(whole)


def test_vmtl_with_one_task_uses_standard_normal_priors() -> None:
    method = _method("vmtl", tasks=TASKS[:1])
    decoder = method.build_decoder().train()
    h, batch = _batch((4,))
    out = _forward(method, decoder, h, batch)
    assert torch.all(out.extras["prior_var"] == 1) and out.extras["prior_mu"].abs().sum() == 0
    terms = method.objective.loss_terms(out, batch)
    assert torch.isfinite(terms.task_losses[0])


# --------------------------------------------------------------------------- #
# registration, weighting and regimes
# --------------------------------------------------------------------------- #


def test_the_three_objectives_are_registered_with_their_references() -> None:
    for name in NAMES:
        cls = OBJECTIVES[name]
        assert cls.reference and cls.__doc__ and cls.Hyper.__doc__
    assert resolve_method("hmtl").objective == "hierarchical-mtl"
    assert resolve_method("MT_VIB").objective == "mt-vib"


def test_mtvib_runs_with_uw_by_default_and_composes_with_another_weighting() -> None:
    spec = resolve_method("mt-vib")
    assert (spec.objective, spec.weighting, spec.name) == ("mt-vib", "uw", "mt-vib")
    assert resolve_method("mt-vib", "uw") == spec
    assert MethodSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    ew = resolve_method("mt-vib", "ew")
    assert ew.name == "mt-vib+ew"
    pc = resolve_method("mt-vib", "pcgrad")
    assert (pc.weighting, pc.name) == ("pcgrad", "mt-vib+pcgrad")
    method = Method(pc, TASKS, D, SIZES)
    assert method.regime(None) == "mixed"
    # objectives without a default weighting keep EW
    assert resolve_method("hierarchical-mtl").weighting == "ew"
    assert resolve_method("vmtl").weighting == "ew"
    assert resolve_method("hmtl", "uw").name == "hierarchical-mtl+uw"


@pytest.mark.parametrize("name", NAMES)
def test_shared_decoder_parameters_work_with_pcgrad(name: str) -> None:
    method = _method(name, "pcgrad")
    decoder = method.build_decoder().train()
    shared = decoder.shared_parameters()
    head_ids = {id(p) for head in decoder.heads for p in head.parameters()}
    assert shared and not head_ids & {id(p) for p in shared}
    h, batch = _batch()
    out = _forward(method, decoder, h, batch)
    total, terms, _ = method.loss(out, batch)
    ctx = BackwardContext(lambda loss: loss.backward(), shared,
                          [list(head.parameters()) for head in decoder.heads])
    method.backward(total, terms, ctx)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in shared)


def test_vmtl_refuses_one_task_per_step_regimes() -> None:
    method = _method("vmtl")
    assert method.regime("mixed") == "mixed" and method.regime("uniform") == "uniform"
    assert method.regime(None) == "mixed"
    for regime in ("per-task", "temperature"):
        with pytest.raises(ConfigError, match="objective vmtl needs every task's rows"):
            method.regime(regime)
    assert _method("vmtl", tasks=TASKS[:1]).regime("per-task") == "per-task"
    assert _method("hierarchical-mtl").regime("per-task") == "per-task"
    with pytest.raises(ConfigError, match="needs every task's loss"):
        _method("mt-vib").regime("per-task")  # UW needs every task's loss


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("mt-vib", {"bottleneck_dim": 0}),
        ("mt-vib", {"vib_beta": float("nan")}),
        ("mt-vib", {"vib_beta": -1.0}),
        ("hierarchical-mtl", {"latent_dim": -3}),
        ("hierarchical-mtl", {"hmtl_beta": float("nan")}),
        ("hierarchical-mtl", {"noise_init": 11.0}),
        ("hierarchical-mtl", {"noise_init": float("nan")}),
        ("vmtl", {"samples": 0}),
        ("vmtl", {"gumbel_tau": 0.0}),
        ("vmtl", {"gumbel_tau": float("nan")}),
        ("vmtl", {"kl_z": float("nan")}),
        ("vmtl", {"kl_w": -1e-3}),
        ("vmtl", {"prior_tau": -0.1}),
        ("vmtl", {"prior_tau": float("inf")}),
        ("vmtl", {"anneal_steps": -1}),
        ("vmtl", {"warmup_steps": -5}),
        ("hierarchical-mtl", {"kl_reduction": "median"}),
    ],
)
def test_invalid_hyperparameters_are_rejected(name: str, args: dict) -> None:
    hp = OBJECTIVES[name].Hyper(**args)
    with pytest.raises(ValueError):
        hp.validate()
    with pytest.raises(ConfigError, match=name):
        resolve_method(name, None, {k: str(v) for k, v in args.items()})


def test_hyperparameters_from_strings() -> None:
    spec = resolve_method("vmtl", None, {"latent_dim": "16", "samples": "10", "kl_z": "1e-4",
                                         "anneal_steps": "50", "prior_tau": "0"})
    assert (spec.objective_hp.latent_dim, spec.objective_hp.samples) == (16, 10)
    assert spec.objective_hp.kl_z == pytest.approx(1e-4)
    assert (spec.objective_hp.anneal_steps, spec.objective_hp.prior_tau) == (50, 0.0)
    defaults = resolve_method("vmtl").objective_hp
    assert (defaults.kl_z, defaults.kl_w, defaults.prior_tau) == (1e-7, 1e-3, 0.1)
    assert resolve_method("hmtl", None, {"kl_reduction": "sum"}).objective_hp.kl_reduction == "sum"
    assert resolve_method("hmtl").objective_hp.kl_reduction == "mean"
    spec = resolve_method("mt-vib", None, {"vib_beta": "0.01", "s_min": "-4"})
    assert spec.objective_hp.vib_beta == 0.01 and spec.weighting_hp.s_min == -4.0


# --------------------------------------------------------------------------- #
# end to end
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", NAMES)
def test_a_tiny_training_run_finishes(name: str, tmp_path: Path) -> None:
    config = TrainConfig(
        benchmark="synthetic", backbone="tiny", max_length=32, batch_size=32, epochs=1,
        max_train_examples=64, max_eval_examples=32, progress=False,
        output_dir=str(tmp_path / name), method=name, method_args=SMALL[name],
    )
    result = Trainer(config).run()
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert math.isfinite(log[-1]["train"]["loss"])
    assert math.isfinite(result.results["val"]["loss"])
    assert result.results["method"] == name
    distances = result.run_dir / "task_distances.json"
    assert distances.exists() is (name == "hierarchical-mtl")
    if name == "hierarchical-mtl":
        info = json.loads(distances.read_text(encoding="utf-8"))
        assert info["tasks"] == ["sentiment", "topic", "urgency"] and len(info["merges"]) == 2
        snr = log[-1]["method"]["hierarchical-mtl"]["snr"]
        assert sorted(snr) == ["sentiment", "topic", "urgency"] and all(v > 0 for v in snr.values())
    if name == "vmtl":
        values = log[-1]["method"]["vmtl"]
        assert sum(values["mix_z"]["sentiment"].values()) == pytest.approx(1.0)
        assert sum(values["mix_a"]["topic"].values()) == pytest.approx(1.0)
        steps = log[-1]["step"]
        assert values["step"] == steps and values["kl_w_factor"] == pytest.approx(steps / 1000)
        assert set(log[-1]["train"]["kl_w"]) == {"sentiment", "topic", "urgency"}
