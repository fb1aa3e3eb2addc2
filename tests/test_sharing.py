"""Learning to share: layer mixture per task, task at a layer, cross-stitch units, successive
regularisation (infomtl.modeling.sharing), their rules by hand, their equivalences with the
plain model, a planted-signal mechanism test, and runs that save, reload and export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.errors import ConfigError
from infomtl.modeling.backbones import load_backbone, pool
from infomtl.modeling.building import build_model
from infomtl.modeling.heads import LinearHead
from infomtl.modeling.model import MultiTaskModel, TaskHeads
from infomtl.modeling.sharing import (
    CrossStitch,
    LayerSharing,
    SuccessiveRegularizer,
    gather,
    successive_limits,
)
from infomtl.training.optim import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(backbone, texts: list[str], rows: dict[int, list[int]]) -> Batch:
    enc = backbone.tokenizer(texts, padding=True, return_tensors="pt")
    return Batch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                 token_type_ids=enc.get("token_type_ids"),
                 rows={t: torch.tensor(r) for t, r in rows.items()}, labels={})


def _heads(d: int, tasks: int = 2) -> TaskHeads:
    torch.manual_seed(1)
    return TaskHeads([LinearHead(d, 3) for _ in range(tasks)])


TEXTS = ["the food was great", "an awful day at the airport", "ok", "what a game"]


# -- the rules, by hand ---------------------------------------------------------------


def test_layer_mixture_is_the_scaled_softmax_mixture_of_the_layers() -> None:
    sharing = LayerSharing(2, 3, mix=True, head_layers={})
    with torch.no_grad():
        sharing.weights.copy_(torch.tensor([[0.0, math.log(3.0), 0.0], [0.0, 0.0, 0.0]]))
        sharing.scale.copy_(torch.tensor([2.0, 1.0]))
    sources = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # one row, S=3, d=2
    # task 0: softmax = (1, 3, 1)/5 -> 2 * (1/5·(1,0) + 3/5·(0,1) + 1/5·(5,5)) = (2.4, 3.2)
    assert torch.allclose(sharing.task_representation(sources, 0), torch.tensor([[2.4, 3.2]]))
    # task 1: uniform -> (6/3, 6/3)
    assert torch.allclose(sharing.task_representation(sources, 1), torch.tensor([[2.0, 2.0]]))
    assert sharing.log_values(["a", "b"])["layers"]["a"] == pytest.approx([0.2, 0.6, 0.2])


def test_a_task_at_a_layer_reads_that_layer_alone() -> None:
    sharing = LayerSharing(2, 3, mix=True, head_layers={1: 1})
    sources = torch.arange(12.0).view(2, 3, 2)
    assert torch.equal(sharing.task_representation(sources, 1), sources[:, 1])
    assert sharing.log_values(["a", "b"])["layers"]["b"] == [0.0, 1.0, 0.0]
    assert "b" not in sharing.log_values(["a", "b"])["scale"]


def test_gather_gives_one_row_per_task_row_pair_and_renumbers_the_heads_rows() -> None:
    sharing = LayerSharing(2, 2, mix=False, head_layers={0: 0})  # task 0 reads source 0, task 1 the last
    sources = torch.arange(16.0).view(4, 2, 2)  # 2 views × 2 rows
    h, rows = gather(sharing, sources, {0: torch.tensor([1]), 1: torch.tensor([0, 1])}, views=2)
    assert [r.tolist() for r in rows.values()] == [[0], [1, 2]]
    expected = torch.stack([sources[1, 0], sources[0, 1], sources[1, 1],     # view 1
                            sources[3, 0], sources[2, 1], sources[3, 1]])    # view 2 (rows + 2)
    assert torch.equal(h, expected)


def test_cross_stitch_units_start_at_0_9_on_the_diagonal_and_rows_sum_to_one() -> None:
    backbone = load_backbone("tiny")
    stitch = CrossStitch(backbone.encoder, 3, 1)
    alpha = stitch.alpha.detach()[0]
    assert torch.allclose(alpha.diagonal(), torch.full((3,), 0.9))
    assert torch.allclose(alpha.sum(1), torch.ones(3))
    assert alpha[0, 1] == pytest.approx(0.05)


def test_successive_regularisation_by_hand() -> None:
    # tasks at layers 1, 2 and the top (3): task 1 covers group ≤ 1, task 2 group ≤ 2, task 0 none
    assert successive_limits({0: 1, 1: 2}, 3, top=3) == [-1, 1, 2]
    assert successive_limits({}, 2, top=3) == [-1, -1]
    groups = [[torch.nn.Parameter(torch.zeros(2))], [torch.nn.Parameter(torch.zeros(1))],
              [torch.nn.Parameter(torch.zeros(3))]]
    reg = SuccessiveRegularizer(groups, [-1, 0, 2], delta=0.5)
    with torch.no_grad():
        groups[0][0].add_(torch.tensor([1.0, 2.0]))   # ‖Δ_0‖² = 5
        groups[1][0].add_(3.0)                        # ‖Δ_1‖² = 9
        groups[2][0].add_(1.0)                        # ‖Δ_2‖² = 3
    assert reg([0]) is None
    assert float(reg([1]).detach()) == pytest.approx(0.5 * 5)
    assert float(reg([1, 2]).detach()) == pytest.approx(0.5 * (5 + (5 + 9 + 3)) / 2)
    reg.anchor()
    assert float(reg([2]).detach()) == 0.0


# -- equivalences with the plain model -----------------------------------------------


def test_a_one_hot_last_layer_mixture_equals_the_plain_model() -> None:
    backbone = load_backbone("tiny")
    plain = MultiTaskModel(backbone.encoder, _heads(backbone.hidden_size), "mean").eval()
    sharing = LayerSharing(2, 3, mix=True, head_layers={})
    with torch.no_grad():
        sharing.weights.copy_(torch.tensor([[-1e9, -1e9, 0.0]] * 2))
    shared = MultiTaskModel(backbone.encoder, plain.decoder, "mean", sharing=sharing).eval()
    batch = _batch(backbone, TEXTS, {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]})  # overlapping rows: prediction
    a, b = plain(batch), shared(batch)
    for t in (0, 1):
        assert torch.allclose(a.heads[t].mean, b.heads[t].mean, atol=1e-6)


def test_a_head_layer_reads_the_pooled_states_of_that_layer() -> None:
    backbone = load_backbone("tiny")
    model = MultiTaskModel(backbone.encoder, _heads(backbone.hidden_size), "cls",
                           sharing=LayerSharing(2, 3, mix=False, head_layers={0: 1})).eval()
    batch = _batch(backbone, TEXTS, {0: [0, 1], 1: [2, 3]})
    out = model(batch)
    states = backbone.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                              token_type_ids=batch.token_type_ids, output_hidden_states=True).hidden_states
    assert torch.allclose(out.h[:2], pool(states[1], batch.attention_mask, "cls")[:2], atol=1e-6)
    assert torch.allclose(out.h[2:], pool(states[2], batch.attention_mask, "cls")[2:], atol=1e-6)


def test_cross_stitch_at_init_equals_the_plain_encoder_and_copies_then_diverge() -> None:
    backbone = load_backbone("tiny")
    batch = _batch(backbone, TEXTS, {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]})
    plain = MultiTaskModel(backbone.encoder, _heads(backbone.hidden_size), "mean").eval()
    with torch.no_grad():
        reference = plain.encode(batch.input_ids, batch.attention_mask, batch.token_type_ids)
    stitched = MultiTaskModel(backbone.encoder, plain.decoder, "mean",
                              sharing=CrossStitch(backbone.encoder, 2, 1)).eval()
    with torch.no_grad():
        sources = stitched.encode(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        assert sources.shape == (4, 2, backbone.hidden_size)
        # identical copies and rows of α summing to 1: every task sees the plain encoder's output
        assert torch.allclose(sources[:, 0], reference, atol=1e-5)
        assert torch.allclose(sources[:, 1], reference, atol=1e-5)
        for p in stitched.sharing.copies[1].parameters():
            p.add_(0.05 * torch.randn_like(p))
        moved = stitched.encode(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        assert not torch.allclose(moved[:, 0], moved[:, 1], atol=1e-4)
        # task 0 takes 0.9 of its own copy and 0.1 of task 1's: it moved, by less than task 1
        assert (moved[:, 0] - reference).norm() < (moved[:, 1] - reference).norm()
    names = [n for n, _ in stitched.named_parameters()]
    assert not any(n.startswith("encoder.encoder.layer.1.") for n in names)  # the top layer lives in the copies
    assert sum(n.startswith("sharing.copies.1.") for n in names) > 0


# -- the mechanism: the mixture finds the layer that carries the signal -------------------


def test_the_layer_mixture_learns_to_prefer_the_layer_with_a_planted_signal() -> None:
    """Sources of 4 'layers'; only layer 2 carries the label (a direction), the others are
    noise of the same scale. A mixture trained with its head puts most weight on layer 2."""
    gen = torch.Generator().manual_seed(0)
    n, d, S = 512, 16, 4
    labels = torch.randint(0, 2, (n,), generator=gen)
    sources = torch.randn(n, S, d, generator=gen)
    sources[:, 2, 0] += 3.0 * (2 * labels.float() - 1)
    sharing = LayerSharing(1, S, mix=True, head_layers={})
    head = torch.nn.Linear(d, 2)
    opt = torch.optim.Adam([{"params": head.parameters(), "lr": 1e-2},
                            {"params": sharing.unit_parameters(), "lr": 5e-2}])
    for _ in range(300):
        idx = torch.randint(0, n, (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(head(sharing.task_representation(sources[idx], 0)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    weights = sharing.mixture(0).detach()
    assert int(weights.argmax()) == 2
    assert float(weights[2]) > 0.6, weights


# -- runs: train, log, reload, export, errors -------------------------------------------


def _config(tmp_path: Path, name: str, **extra) -> TrainConfig:
    options = dict(benchmark="synthetic", tasks=["sentiment", "topic"], backbone="tiny", max_length=32,
                   batch_size=16, epochs=2, lr=2e-3, pooling="mean", progress=False,
                   output_dir=str(tmp_path / name), max_train_examples=48, max_eval_examples=24,
                   feature_cache=str(tmp_path / "features"))
    return TrainConfig(**{**options, **extra})


@pytest.mark.parametrize("extra", [
    {"share": "layer-mix"},
    {"share": "cross-stitch", "share_layers": 1, "method": "infomtl"},
    {"head_layers": {"sentiment": 1}, "successive_reg": 0.01},
    {"share": "layer-mix", "freeze_backbone": True},
], ids=["layer-mix", "cross-stitch-infomtl", "head-layer-successive", "layer-mix-fast-mode"])
def test_a_sharing_run_logs_its_units_reloads_and_exports_with_the_same_predictions(tmp_path, extra) -> None:
    from infomtl.artifacts.evaluation import evaluate_run
    from infomtl.inference.export import export_run
    from infomtl.inference.predict import load
    from infomtl.training import train

    result = train(_config(tmp_path, "run", **extra))
    records = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    logged = [r["sharing"] for r in records]
    assert len(logged) == 2
    if extra.get("share") == "layer-mix":
        first, last = (np.array(x["layers"]["sentiment"]) for x in logged)
        assert first.shape == (3,) and abs(first.sum() - 1) < 1e-5  # the embeddings and 2 layers
        assert not np.allclose(last, 1 / 3, atol=1e-3)  # the mixture moved away from uniform
    if extra.get("share") == "cross-stitch":
        alpha = logged[-1]["alpha"][0]
        assert alpha["sentiment"]["sentiment"] != pytest.approx(0.9)
    if "successive_reg" in extra:
        assert records[-1]["train"]["successive_reg"] > 0
        assert logged[-1]["layers"]["sentiment"] == [0.0, 1.0, 0.0]
    saved = json.loads((result.run_dir / "results.json").read_text())["test"]
    assert evaluate_run(result.run_dir, "test")["avg"] == pytest.approx(saved["avg"], abs=1e-9)  # reloaded
    export = export_run(result.run_dir, tmp_path / "export")
    texts = ["what a great match", "my flight was late again"]
    from_run = load(result.run_dir).predict(texts)
    from_export = load(export).predict(texts)
    assert from_run == from_export


def test_sharing_units_get_their_own_learning_rate(tmp_path) -> None:
    config = _config(tmp_path, "opt", share="cross-stitch", share_layers=1, lr=1e-4)
    backbone = load_backbone("tiny")
    model = build_model(config, backbone, _heads(backbone.hidden_size), ["sentiment", "topic"])

    class NoMethod(torch.nn.Module):
        pass

    groups = build_optimizer(config, model, NoMethod()).param_groups  # type: ignore[arg-type]
    units = [g for g in groups if any(p is model.sharing.alpha for p in g["params"])]
    assert len(units) == 1 and units[0]["lr"] == 5e-3 and len(units[0]["params"]) == 1
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize(("extra", "message"), [
    ({"head_layers": {"sentiment": 0}}, "--head-layer sentiment=0: the layer must be >= 1"),
    ({"head_layers": {"sentiment": "x"}}, "--head-layer sentiment=x: the layer must be an integer"),
    ({"head_layers": {"sentimnt": 1}}, "unknown task: sentimnt (did you mean `sentiment`?)"),
    ({"head_layers": {"sentiment": 3}}, "--head-layer sentiment=3: the encoder has 2 layers"),
    ({"successive_reg": 0.1}, "--successive-reg needs --head-layer"),
    ({"share": "cross-stitch", "freeze_backbone": True}, "--share cross-stitch needs a trainable encoder"),
    ({"share": "cross-stitch", "share_layers": 2}, "--share-layers must be in [1, 1]"),
    ({"share": "cross-stitch", "head_layers": {"topic": 1}}, "cannot be combined"),
    ({"share": "layer-mix", "method": "textcnn"}, "need heads that read the pooled representation"),
])
def test_bad_sharing_options_are_one_line_errors(tmp_path, extra, message) -> None:
    from infomtl.training import Trainer

    with pytest.raises(ConfigError) as err:
        Trainer(_config(tmp_path, "bad", **extra))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cross_stitch_needs_two_tasks() -> None:
    with pytest.raises(ConfigError, match="at least two tasks"):
        CrossStitch(load_backbone("tiny").encoder, 1, 1)


def test_the_cli_trains_each_way_of_sharing_on_tweeteval_and_analyzes_it(data_root, tmp_path) -> None:
    from infomtl.cli import main

    smoke = ["--backbone", "tiny", "--max-train-examples", "32", "--max-eval-examples", "24", "--epochs", "1",
             "--batch-size", "16", "--max-length", "32", "--no-progress", "--data-dir", str(data_root)]
    ways = {"mix": ["--share", "layer-mix"],
            "stitch": ["--share", "cross-stitch", "--share-layers", "1"],
            "layer": ["--head-layer", "irony=1", "--head-layer", "emotion=2", "--successive-reg", "0.01"]}
    for name, flags in ways.items():
        out = tmp_path / name
        assert main(["train", "--tasks", "emotion,irony", *smoke, "--output-dir", str(out), *flags]) == 0
        assert (out / "results.json").is_file()
    assert main(["analyze", "sharing", str(tmp_path / "mix"), str(tmp_path / "stitch"), str(tmp_path / "layer"),
                 "--out", str(tmp_path / "analysis")]) == 0
    import csv

    with open(tmp_path / "analysis" / "sharing.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    kinds = {(r["run"], r["kind"]) for r in table}
    assert {("mix", "layer"), ("stitch", "alpha"), ("layer", "layer")} <= kinds
    irony = [float(r["value"]) for r in table if r["run"] == "layer" and r["task"] == "irony"]
    assert irony == [0.0, 1.0, 0.0]
    config = (tmp_path / "layer" / "config.yaml").read_text(encoding="utf-8")
    assert "  head_layers:\n    irony: 1\n    emotion: 2\n" in config


def test_analyze_sharing_on_a_run_without_sharing_is_a_one_line_error(tiny_run, capsys) -> None:
    from infomtl.cli import main

    assert main(["analyze", "sharing", str(tiny_run)]) != 0
    err = capsys.readouterr().err.strip()
    assert "no sharing weights in log.jsonl; train with --share or --head-layer" in err and "\n" not in err


def test_every_layers_features_are_cached_once_and_give_the_last_layers_features_too(tmp_path) -> None:
    from infomtl.data.loading import prepare_data
    from infomtl.modeling.feature_cache import FeatureCache, extract

    backbone = load_backbone("tiny", pooling="mean", max_length=32)
    data = prepare_data(TrainConfig(benchmark="synthetic", tasks=["topic"], max_train_examples=40))
    split = data.splits["topic"]["train"]
    layered = FeatureCache(backbone, tmp_path, progress=False, layers=True).features(split)
    assert layered.shape == (len(split), 3, backbone.hidden_size)
    plain = extract(backbone, split)
    assert torch.equal(layered[:, -1], plain)
    files = sorted(tmp_path.glob("*.safetensors"))
    last = FeatureCache(backbone, tmp_path, progress=False).features(split)  # read from the layered file
    assert torch.equal(last, plain) and sorted(tmp_path.glob("*.safetensors")) == files
