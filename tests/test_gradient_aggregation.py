"""The gradient aggregators' options: ``grads=split|loop|batched`` (the per-task gradients in
T backward passes over a step encoded task by task, over the step's one graph, or in one
vmapped backward) and ``grad_space=params|rep`` (gradients of the
shared parameters, or LibMTL's gradients of the representation h with one encoder backward).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from infomtl.config import TrainConfig
from infomtl.errors import ConfigError
from infomtl.experiments.store import run_id
from infomtl.methods import OBJECTIVES, WEIGHTINGS, BackwardContext, LossTerms, resolve_method
from infomtl.methods.task_gradients import BatchedGradientsError, batched_gradients, loop_gradients
from infomtl.methods.weightings.pcgrad import PCGrad, draw_orders, pcgrad_coefficients
from infomtl.tasks import Task, TaskKind
from infomtl.training import Trainer, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes import dropout_free, small_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def tasks_of(n: int) -> list[Task]:
    return [Task(f"t{i}", TaskKind.REGRESSION, targets=("v",)) for i in range(n)]


def pcgrad(n: int, **args) -> PCGrad:
    args.setdefault("normalize", "sum")  # the hand-computed numbers are in the sum convention
    spec = resolve_method("pcgrad", None, args)
    method = WEIGHTINGS["pcgrad"](spec.weighting_hp, tasks_of(n), [1] * n)
    assert isinstance(method, PCGrad)
    return method


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


# --------------------------------------------------------------------------- #
# hand-computed: two tasks with known conflicting gradients on a linear model
# --------------------------------------------------------------------------- #


class Linear2(nn.Module):
    """h_b = x_b · θ (θ ∈ R², one scalar input per row); task t reads rows ``rows[t]`` with
    the fixed head u_t: ℓ_t = Σ_{b ∈ rows[t]} u_t · h_b. So ∂ℓ_t/∂θ = (Σ_b x_b) u_t and
    ∂ℓ_t/∂h_b = u_t on its rows (0 elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.3, -0.2]))
        self.heads = nn.ModuleList([nn.Linear(2, 1, bias=False) for _ in range(2)])
        with torch.no_grad():
            self.heads[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
            self.heads[1].weight.copy_(torch.tensor([[-1.0, 1.0]]))

    def terms(self, x: torch.Tensor, rows: list[list[int]]) -> LossTerms:
        h = x[:, None] * self.theta
        losses = {t: self.heads[t](h[r]).sum() for t, r in enumerate(rows)}
        return LossTerms(losses, representation=h)


def _step(method: PCGrad, model: Linear2, x: torch.Tensor, rows: list[list[int]]) -> None:
    terms = model.terms(x, rows)
    total, _ = method.combine(terms)
    ctx = BackwardContext(lambda loss: loss.backward(), [model.theta], [list(h.parameters()) for h in model.heads])
    method.backward(total, terms, ctx)


@pytest.mark.parametrize("grads", ["loop", "batched"])
def test_two_conflicting_tasks_get_the_hand_computed_pcgrad_update(grads: str) -> None:
    # one row x = 1 read by both tasks: g_1 = u_1 = (1, 0), g_2 = u_2 = (−1, 1), g_1·g_2 = −1
    # g̃_1 = g_1 − (−1/2) g_2 = (0.5, 0.5);  g̃_2 = g_2 − (−1/1) g_1 = (0, 1);  Σ = (0.5, 1.5)
    model, method = Linear2(), pcgrad(2, grads=grads)
    _step(method, model, torch.tensor([1.0]), [[0], [0]])
    torch.testing.assert_close(model.theta.grad, torch.tensor([0.5, 1.5]))
    for head in model.heads:  # each head its own gradient ∂ℓ_t/∂u_t = h = θ
        torch.testing.assert_close(head.weight.grad, model.theta.detach()[None])
    method.on_epoch_end(1, torch.ones(2))
    logged = method.log_values()["pcgrad"]
    assert logged["projected_fraction"] == 1.0 and logged["grads"] == grads
    assert logged["mean_cosine"] == pytest.approx(-1 / 2**0.5)


def test_rep_space_on_disjoint_rows_sums_the_rows_before_projecting() -> None:
    # rows x = (1, 2), task 1 reads row 0, task 2 row 1: r_1 = [u_1; 0], r_2 = [0; u_2]
    # r̄ = (u_1, u_2) = ((1, 0), (−1, 1)): A = [[1, 0.5], [1, 1]], c = 1ᵀA = (2, 1.5)
    # Σ c_t r_t = [(2, 0); (−1.5, 1.5)], θ gets Jᵀ· = 1·(2, 0) + 2·(−1.5, 1.5) = (−1, 3)
    x, rows = torch.tensor([1.0, 2.0]), [[0], [1]]
    model, method = Linear2(), pcgrad(2, grad_space="rep")
    _step(method, model, x, rows)
    torch.testing.assert_close(model.theta.grad, torch.tensor([-1.0, 3.0]))
    # the parameter space is another update: g_1 = (1, 0), g_2 = 2 u_2 = (−2, 2)
    # g̃_1 = g_1 + ¼ g_2 = (0.5, 0.5), g̃_2 = g_2 + 2 g_1 = (0, 2): Σ = (0.5, 2.5)
    model, method = Linear2(), pcgrad(2)
    _step(method, model, x, rows)
    torch.testing.assert_close(model.theta.grad, torch.tensor([0.5, 2.5]))
    # (the flattened r_t are orthogonal: projecting them would leave the plain sum (−1, 2))


# --------------------------------------------------------------------------- #
# rep space: Jᵀ · the aggregated representation gradient, explicitly
# --------------------------------------------------------------------------- #


class Small(nn.Module):
    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4))
        self.heads = nn.ModuleList(
            [nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1)) for _ in range(num_tasks)]
        )

    def terms(self, x: torch.Tensor, ys: list[torch.Tensor], rows: list[torch.Tensor], aux: float) -> LossTerms:
        h = self.encoder(x)
        losses = {t: ((self.heads[t](h[r]).squeeze(-1) - ys[t]) ** 2).mean() for t, r in enumerate(rows)}
        return LossTerms(losses, aux * h.pow(2).mean(), representation=h)


def _small_data(num_tasks: int):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 3, generator=g)
    rows = [torch.arange(t, 12, num_tasks) for t in range(num_tasks)]
    ys = [(5 if t % 2 else -5) * x[r, 0] + torch.randn(len(r), generator=g) for t, r in enumerate(rows)]
    return x, ys, rows


def test_rep_space_gives_the_encoder_j_transpose_of_the_aggregated_rep_gradient() -> None:
    num_tasks, aux, seed = 3, 0.2, 7
    model, method = Small(num_tasks), pcgrad(num_tasks, grad_space="rep", seed=seed, normalize="mean")
    x, ys, rows = _small_data(num_tasks)
    enc = list(model.encoder.parameters())
    # explicitly: r_t = ∂(ℓ_t/T)/∂h, c = 1ᵀA(r̄), encoder ← Jᵀ Σ c_t r_t + ∇aux
    terms = model.terms(x, ys, rows, aux)
    h = terms.representation
    r = torch.stack([torch.autograd.grad(terms.task_losses[t] / num_tasks, h, retain_graph=True)[0]
                     for t in range(num_tasks)])
    summed = r.sum(dim=1)
    order = draw_orders(num_tasks, torch.Generator().manual_seed(seed), torch.device("cpu"))
    coef, _ = pcgrad_coefficients(summed @ summed.T, order)
    c = coef.sum(dim=0)
    aggregated = torch.einsum("t,tbd->bd", c, r)
    expected = _flat(torch.autograd.grad(h, enc, grad_outputs=aggregated, retain_graph=True))
    expected = expected + _flat(torch.autograd.grad(terms.aux, enc, retain_graph=True))
    heads = [_flat(torch.autograd.grad(terms.task_losses[t] / num_tasks, list(model.heads[t].parameters()),
                                       retain_graph=True)) for t in range(num_tasks)]
    assert not torch.allclose(c, torch.ones(num_tasks))  # a projection fired: c differs from the plain sum
    terms = model.terms(x, ys, rows, aux)
    total, _ = method.combine(terms)
    ctx = BackwardContext(lambda loss: loss.backward(), enc, [list(hd.parameters()) for hd in model.heads])
    method.backward(total, terms, ctx)
    torch.testing.assert_close(_flat(p.grad for p in enc), expected)
    for t in range(num_tasks):
        torch.testing.assert_close(_flat(p.grad for p in model.heads[t].parameters()), heads[t])


def test_rep_space_counts_one_encoder_backward() -> None:
    calls = []
    model, method = Small(3), pcgrad(3, grad_space="rep")
    model.encoder[0].weight.register_hook(lambda grad: calls.append(1))
    x, ys, rows = _small_data(3)
    terms = model.terms(x, ys, rows, 0.0)
    total, _ = method.combine(terms)
    method.backward(total, terms, BackwardContext(lambda loss: loss.backward(), list(model.encoder.parameters()),
                                                  [list(h.parameters()) for h in model.heads]))
    assert len(calls) == 1
    calls.clear()
    model, method = Small(3), pcgrad(3)
    model.encoder[0].weight.register_hook(lambda grad: calls.append(1))
    terms = model.terms(x, ys, rows, 0.0)
    total, _ = method.combine(terms)
    method.backward(total, terms, BackwardContext(lambda loss: loss.backward(), list(model.encoder.parameters()),
                                                  [list(h.parameters()) for h in model.heads]))
    assert len(calls) == 4  # T per-task passes + the update's


# --------------------------------------------------------------------------- #
# batched == loop
# --------------------------------------------------------------------------- #


def test_batched_and_loop_fill_the_same_rows_with_an_absent_task_and_an_unused_input() -> None:
    model = Small(3)
    x, ys, rows = _small_data(3)
    terms = model.terms(x, ys, rows, 0.0)
    unused = nn.Parameter(torch.ones(2))
    inputs = [*model.encoder.parameters(), unused]
    losses = [terms.task_losses[0], None, terms.task_losses[2]]
    size = sum(p.numel() for p in inputs)
    a, b = torch.full((3, size), 7.0), torch.full((3, size), 7.0)
    used_a, used_b = loop_gradients(losses, inputs, a), batched_gradients(losses, inputs, b)
    assert used_a == used_b == [True] * 4 + [False]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert float(a[1].abs().max()) == 0.0 and float(a[:, -2:].abs().max()) == 0.0
    first = _flat(torch.autograd.grad(terms.task_losses[0], list(model.encoder.parameters()), retain_graph=True))
    torch.testing.assert_close(a[0, : first.numel()], first)


def _minilm_style():
    """A BERT encoder of MiniLM's shape (12 heads, GELU, post-LN, dropout 0.1 in the
    attention and hidden states), at a small width."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
                        intermediate_size=96, max_position_embeddings=64)
    return BertModel(config, add_pooling_layer=False)


@pytest.mark.parametrize("backbone", ["tiny", "minilm-style"])
def test_batched_gradients_equal_the_loop_on_bert_encoders_with_dropout(backbone: str) -> None:
    from infomtl.modeling.backbones import load_backbone, pool

    encoder = load_backbone("tiny").encoder if backbone == "tiny" else _minilm_style()
    encoder.train()  # dropout on: the one forward's masks serve every task's backward
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (9, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[::2, 10:] = 0
    h = pool(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask, "mean")
    heads = [nn.Linear(h.shape[1], 2) for _ in range(3)]
    losses = [nn.functional.cross_entropy(heads[t](h[t::3]), torch.randint(0, 2, (3,), generator=g))
              for t in range(3)]
    shared = [p for p in encoder.parameters() if p.requires_grad]
    size = sum(p.numel() for p in shared)
    a, b = torch.zeros(3, size), torch.zeros(3, size)
    loop_gradients(losses, shared, a)
    batched_gradients(losses, shared, b)
    assert float(a.norm()) > 0
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def _one_step_gradients(tmp_path: Path, args: dict, **overrides) -> tuple[torch.Tensor, Trainer]:
    trainer = Trainer(small_config(tmp_path / "run", method="pcgrad", method_args=args, seed=0, **overrides))
    trainer.setup(2)
    plan = trainer.batcher.epoch(1)[0]
    torch.manual_seed(11)  # the same dropout masks in both runs
    trainer.backward_step(plan)
    model = trainer.accelerator.unwrap_model(trainer.model)
    return _flat(p.grad for p in model.parameters() if p.grad is not None), trainer


def test_batched_equals_loop_through_the_trainer(tmp_path: Path) -> None:
    loop, _ = _one_step_gradients(tmp_path / "a", {"grads": "loop"})
    batched, trainer = _one_step_gradients(tmp_path / "b", {"grads": "batched"})
    assert trainer.method.weighting.grads_mode == "batched"
    torch.testing.assert_close(batched, loop, atol=1e-5, rtol=1e-5)


@pytest.fixture
def no_dropout(monkeypatch):
    """The tiny encoder without dropout, so that split and loop steps compute the same numbers."""
    import infomtl.modeling.backbones as backbones

    monkeypatch.setattr(backbones, "_tiny", dropout_free(backbones._tiny))


def test_split_equals_loop_through_the_trainer(tmp_path: Path, no_dropout) -> None:
    loop, reference = _one_step_gradients(tmp_path / "a", {"grads": "loop"}, head_dropout=0.0)
    split, trainer = _one_step_gradients(tmp_path / "b", {}, head_dropout=0.0)  # split: the default
    assert trainer.method.weighting.grads_mode == "split"
    assert trainer.accelerator.unwrap_model(trainer.model).task_graphs
    assert not reference.accelerator.unwrap_model(reference.model).task_graphs
    torch.testing.assert_close(split, loop, atol=1e-5, rtol=1e-5)


def test_a_split_step_gives_each_task_loss_a_graph_of_its_own_rows(tmp_path: Path) -> None:
    from infomtl.data.encoding import collate

    trainer = Trainer(small_config(tmp_path / "run", method="pcgrad", seed=0))
    trainer.setup(2)
    model = trainer.accelerator.unwrap_model(trainer.model).train()
    batch = collate(trainer.encoded["train"], trainer.batcher.epoch(1)[0], trainer.pad_id)
    rep = model.represent(batch)
    assert rep.pieces is not None and len(rep.pieces) == len(batch.rows) > 1
    assert [p.shape[0] for p in rep.pieces.values()] == [len(r) for r in batch.rows.values()]
    out = model.decode(rep, batch)
    pieces = list(rep.pieces.values())
    for t in rep.pieces:
        reached = torch.autograd.grad(out.heads[t].train_output.sum(), pieces, retain_graph=True, allow_unused=True)
        assert [g is not None for g in reached] == [s == t for s in rep.pieces]  # no other task's rows
    model.eval()  # validation: the whole batch in one forward, as always
    assert model.represent(batch).pieces is None


@pytest.mark.parametrize(("method", "overrides", "why"), [
    ("mt-vib", {"weighting": "pcgrad"}, "objective mt-vib has terms across rows or a shared decoder"),
    ("pcgrad", {"grad_accumulation": 2}, "--grad-accumulation encodes in micro-batches"),
])
def test_split_falls_back_to_the_loop_where_a_step_cannot_be_cut_by_task(tmp_path: Path, caplog, method, overrides,
                                                                          why) -> None:
    with caplog.at_level(logging.INFO, logger="infomtl.methods.aggregation"):
        trainer = Trainer(small_config(tmp_path / "run", method=method, seed=0, **overrides))
        trainer.setup(2)
    assert trainer.method.weighting.grads_mode == "loop"
    assert not trainer.accelerator.unwrap_model(trainer.model).task_graphs
    assert any(why in r.getMessage() and "grads=loop" in r.getMessage() for r in caplog.records)


def test_batched_falls_back_to_the_loop_under_checkpointed_micro_batches(tmp_path: Path, caplog) -> None:
    # --grad-accumulation recomputes the encoder (with its dropout) inside the backward: vmap refuses
    loop, _ = _one_step_gradients(tmp_path / "a", {"grads": "loop"}, grad_accumulation=2)
    with caplog.at_level(logging.WARNING, logger="infomtl.methods.aggregation"):
        batched, trainer = _one_step_gradients(tmp_path / "b", {"grads": "batched"}, grad_accumulation=2)
    assert trainer.method.weighting.grads_mode == "loop"
    lines = [r.getMessage() for r in caplog.records if "grads=batched" in r.getMessage()]
    assert len(lines) == 1 and "using grads=loop" in lines[0] and "\n" not in lines[0]
    torch.testing.assert_close(batched, loop, atol=1e-5, rtol=1e-5)


class _Branchy(torch.autograd.Function):
    """Identity whose backward branches on a value: vmap cannot run it."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad if bool(grad.sum() != 12345.0) else grad * 2


def test_a_backward_vmap_cannot_run_raises_then_the_aggregator_uses_the_loop(caplog) -> None:
    model = Small(2)
    x, ys, rows = _small_data(2)
    shared = list(model.encoder.parameters())

    def terms_of() -> LossTerms:
        h = _Branchy.apply(model.encoder(x))
        return LossTerms({t: ((model.heads[t](h[r]).squeeze(-1) - ys[t]) ** 2).mean() for t, r in enumerate(rows)})

    terms = terms_of()
    with pytest.raises(BatchedGradientsError):
        batched_gradients(list(terms.task_losses.values()), shared, torch.zeros(2, sum(p.numel() for p in shared)))
    method, reference = pcgrad(2, grads="batched", seed=1), pcgrad(2, seed=1)
    ctx = BackwardContext(lambda loss: loss.backward(), shared, [list(h.parameters()) for h in model.heads])
    with caplog.at_level(logging.WARNING, logger="infomtl.methods.aggregation"):
        terms = terms_of()
        method.backward(method.combine(terms)[0], terms, ctx)
    got = _flat(p.grad for p in shared)
    model.zero_grad()
    terms = terms_of()
    reference.backward(reference.combine(terms)[0], terms, ctx)
    torch.testing.assert_close(got, _flat(p.grad for p in shared))
    assert method.grads_mode == "loop"
    assert any("grads=batched cannot run" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- #
# options: validation, run ids, training
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("method", "weighting", "args", "message"),
    [
        ("pcgrad", None, {"grads": "vmap"}, "method pcgrad: grads must be one of loop, batched, split, got 'vmap'"),
        ("pcgrad", None, {"grad_space": "h"}, "grad_space must be one of params, rep, got 'h'"),
        ("textcnn", "pcgrad", {"grad_space": "rep"}, "grad_space=rep needs heads that read the pooled h"),
        ("mt-vib", "pcgrad", {"grad_space": "rep"}, "mt-vib shares decoder layers above h"),
    ],
)
def test_bad_option_values_are_one_line_errors(method, weighting, args, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve_method(method, weighting, args)
    assert "\n" not in str(info.value)


def test_every_objective_declares_a_decoder_shared_above_h() -> None:
    for name, cls in OBJECTIVES.items():
        spec = resolve_method(name, "ew", {})
        decoder = cls(spec.objective_hp, tasks_of(2), 8, 0.0, 0).build_decoder()
        assert cls.shared_decoder == hasattr(decoder, "shared_parameters"), name


def test_grads_is_not_part_of_the_run_id_but_grad_space_is() -> None:
    base = TrainConfig(method="pcgrad")
    assert run_id(TrainConfig(method="pcgrad", method_args={"grads": "batched"})) == run_id(base)
    assert run_id(TrainConfig(method="pcgrad", method_args={"grad_space": "rep"})) != run_id(base)


@pytest.mark.parametrize("args", [{}, {"grads": "loop"}, {"grads": "batched"}, {"grad_space": "rep"}],
                         ids=["split", "loop", "batched", "rep"])
def test_a_tiny_run_trains_and_logs_the_projections_in_every_mode(tmp_path: Path, args: dict) -> None:
    result = train(small_config(tmp_path / "run", method="pcgrad", method_args=args, epochs=4, lr=3e-3,
                                max_train_examples=96, seed=0))
    logs = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    losses = [entry["train"]["loss"] for entry in logs]
    assert losses[-1] < losses[0] - 0.05, losses
    logged = logs[-1]["method"]["pcgrad"]
    assert logged["grads"] == args.get("grads", "loop" if args.get("grad_space") == "rep" else "split")
    assert logged["grad_space"] == args.get("grad_space", "params")
    assert 0 < logged["projected_fraction"] <= 1 and -1 <= logged["mean_cosine"] <= 1
