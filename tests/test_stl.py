"""Single-task baselines (STL, STL-CNN), the TextCNN head and frozen backbones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from infomtl.artifacts.evaluation import evaluate_run
from infomtl.artifacts.run_folder import load_run
from infomtl.config import TrainConfig, flat_options
from infomtl.errors import ConfigError
from infomtl.methods import resolve_method
from infomtl.methods.listing import describe_methods
from infomtl.metrics import average, task_score
from infomtl.modeling.backbones import load_backbone
from infomtl.modeling.heads import TextCNNHead
from infomtl.modeling.model import MultiTaskModel, TaskHeads, TokenTaskHeads
from infomtl.options import load_yaml
from infomtl.tasks import Task
from infomtl.training import train

TASKS = ["emotion", "irony"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(method: str, data_root: Path, output_dir: Path, **kw) -> TrainConfig:
    values = dict(
        benchmark="tweeteval", data_dir=str(data_root), tasks=TASKS, backbone="tiny",
        max_length=32, batch_size=16, epochs=1, max_steps=3, lr=1e-3, max_train_examples=48,
        max_eval_examples=24, method=method, progress=False, output_dir=str(output_dir),
    )
    values.update(kw)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def stl_runs(data_root, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stl")
    return {m: train(_config(m, data_root, root / m)).run_dir for m in ("stl", "stl-cnn")}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- the STL driver ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["stl", "stl-cnn"])
def test_stl_writes_one_normal_run_folder_per_task(stl_runs, method) -> None:
    run_dir = stl_runs[method]
    expected = {"stl": ("ew", False), "stl-cnn": ("textcnn", True)}[method]
    for name in TASKS:
        sub = run_dir / name
        for file in ("config.yaml", "run.json", "log.jsonl", "results.json"):
            assert (sub / file).is_file(), f"{name}/{file}"
        assert (sub / "checkpoint" / "model.safetensors").is_file()
        config = flat_options(load_yaml(sub / "config.yaml"))
        assert config["tasks"] == [name]
        assert (config["method"], config["freeze_backbone"]) == expected
        assert config["weighting"] is None
        assert [t["name"] for t in _json(sub / "run.json")["tasks"]] == [name]
    top = flat_options(load_yaml(run_dir / "config.yaml"))
    assert top["method"] == method and top["tasks"] == TASKS
    assert top["freeze_backbone"] is (method == "stl-cnn")
    assert not (run_dir / "checkpoint").exists()


@pytest.mark.parametrize("method", ["stl", "stl-cnn"])
def test_stl_results_combine_every_task_with_avg_from_metrics(stl_runs, method) -> None:
    run_dir = stl_runs[method]
    results = _json(run_dir / "results.json")
    assert results["method"] == method
    assert results["runs"] == {name: name for name in TASKS}
    assert set(results["best_epoch"]) == set(TASKS)
    assert results["train_sizes"] == {name: 48 for name in TASKS}
    tasks = [Task.from_dict(_json(run_dir / n / "run.json")["tasks"][0]) for n in TASKS]
    for split in ("val", "test"):
        combined = results[split]
        assert list(combined["tasks"]) == TASKS
        for task in tasks:
            own = _json(run_dir / task.name / "results.json")[split]
            assert combined["tasks"][task.name] == own["tasks"][task.name]
            assert combined["scores"][task.name] == pytest.approx(task_score(task, own["tasks"][task.name]))
        assert combined["avg"] == pytest.approx(average(tasks, combined["tasks"]))
        assert combined["avg"] == pytest.approx(sum(combined["scores"].values()) / len(TASKS))
        own_losses = [_json(run_dir / n / "results.json")[split]["loss"] for n in TASKS]
        assert combined["loss"] == pytest.approx(sum(own_losses))


@pytest.mark.parametrize("method", ["stl", "stl-cnn"])
def test_evaluate_on_an_stl_folder_scores_each_task_and_combines(stl_runs, method) -> None:
    run_dir = stl_runs[method]
    saved = _json(run_dir / "results.json")["test"]
    scored = evaluate_run(run_dir, "test")
    for name in TASKS:
        assert scored["tasks"][name] == pytest.approx(saved["tasks"][name])
    assert scored["scores"] == pytest.approx(saved["scores"])
    assert scored["avg"] == pytest.approx(saved["avg"])


def test_stl_cnn_leaves_the_frozen_backbone_unchanged(stl_runs) -> None:
    fresh = load_backbone("tiny").encoder.state_dict()
    for name in TASKS:
        run = load_run(stl_runs["stl-cnn"] / name)
        state = run.model.state_dict()
        for key, value in fresh.items():
            torch.testing.assert_close(state[f"encoder.{key}"], value, rtol=0, atol=0)
        assert isinstance(run.model.decoder, TokenTaskHeads)
        assert isinstance(run.model.decoder.heads[0], TextCNNHead)


def test_stl_trains_the_backbone(stl_runs) -> None:
    fresh = load_backbone("tiny").encoder.state_dict()
    state = load_run(stl_runs["stl"] / "irony").model.state_dict()
    assert any(not torch.equal(state[f"encoder.{k}"], v) for k, v in fresh.items())


@pytest.mark.parametrize(
    ("method", "kw", "match"),
    [
        ("stl", {"weighting": "uw"}, "no task losses to weight"),
        ("stl", {"method_args": {"normalize": "mean"}}, "takes no --method-args"),
        ("stl-cnn", {"method_args": {"alpha": "1"}}, "unknown hyperparameter"),
        ("stl-cnn", {"method_args": {"filters": "0"}}, "filters must be >= 1"),
        ("stl-cnn", {"method_args": {"kernels": "3,x"}}, "kernels must be"),
    ],
)
def test_stl_rejects_meaningless_options_before_creating_anything(
    method, kw, match, data_root, tmp_path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=match):
        train(_config(method, data_root, out, **kw))
    assert not out.exists()


def test_stl_cnn_passes_textcnn_hyperparameters_to_every_task(data_root, tmp_path) -> None:
    config = _config("stl-cnn", data_root, tmp_path / "run", tasks=["irony"], max_steps=1,
                     method_args={"filters": "8", "kernels": "2/3"})
    result = train(config)
    head = load_run(result.run_dir / "irony").model.decoder.heads[0]
    assert head.kernels == (2, 3)
    assert [c.out_channels for c in head.convs] == [8, 8]
    assert result.results["method_spec"]["objective_args"]["filters"] == 8


def test_methods_listing_shows_the_single_task_baselines() -> None:
    text = describe_methods()
    assert "Single-task baselines" in text
    assert "  stl:" in text and "  stl-cnn:" in text
    assert "textcnn" in text


# -- the TextCNN head ---------------------------------------------------------------------


def test_textcnn_parameter_count_matches_the_formula() -> None:
    d, f, c = 768, 216, 3
    head = TextCNNHead(d, c)
    count = sum(p.numel() for p in head.parameters())
    assert count == d * 12 * f + 3 * f + 3 * f * c + c == 1_993_251


def _head(d: int = 6, c: int = 3) -> TextCNNHead:
    torch.manual_seed(0)
    return TextCNNHead(d, c, filters=4).eval()


@pytest.mark.parametrize("length", [1, 2, 4, 7])
def test_textcnn_padding_never_wins_the_max(length) -> None:
    head, width = _head(), 9
    torch.manual_seed(1)
    real = torch.randn(1, length, 6)
    alone = head(real, torch.ones(1, length, dtype=torch.long)).mean
    padded = torch.full((1, width, 6), 1e6)  # padding states hold huge values
    padded[:, :length] = real
    mask = torch.zeros(1, width, dtype=torch.long)
    mask[:, :length] = 1
    torch.testing.assert_close(head(padded, mask).mean, alone)
    padded[:, length:] = -1e6
    torch.testing.assert_close(head(padded, mask).mean, alone)


def test_textcnn_rows_of_a_batch_do_not_interact_and_short_rows_work() -> None:
    head = _head()
    torch.manual_seed(2)
    lengths = [1, 3, 5, 8]
    states = torch.randn(len(lengths), 8, 6)
    mask = (torch.arange(8)[None, :] < torch.tensor(lengths)[:, None]).long()
    batch = head(states, mask).mean
    assert torch.isfinite(batch).all()
    for i, n in enumerate(lengths):
        own = head(states[i : i + 1, :n], torch.ones(1, n, dtype=torch.long)).mean
        torch.testing.assert_close(batch[i : i + 1], own)


def test_textcnn_objective_reads_token_states() -> None:
    spec = resolve_method("textcnn")
    from infomtl.methods import OBJECTIVES

    assert OBJECTIVES["textcnn"].token_states and not OBJECTIVES["linear"].token_states
    assert spec.objective_hp.filters == 216 and spec.objective_hp.kernel_sizes == (3, 4, 5)
    assert spec.objective_hp.dropout == 0.5


# -- frozen backbones ---------------------------------------------------------------------


def test_frozen_encoder_has_no_gradients_and_stays_in_eval_mode() -> None:
    tiny = load_backbone("tiny")
    model = MultiTaskModel(tiny.encoder, TaskHeads([torch.nn.Linear(tiny.hidden_size, 2)]),
                           freeze_encoder=True)
    model.train()
    assert model.training and model.decoder.training
    assert not model.encoder.training
    assert not any(m.training for m in model.encoder.modules())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    ids = torch.tensor([[2, 5, 6, 3]])
    states = model.encode_states(ids, torch.ones_like(ids))
    assert not states.requires_grad


def test_freeze_backbone_option_keeps_a_pooled_method_encoder_fixed(data_root, tmp_path) -> None:
    config = _config("ew", data_root, tmp_path / "run", freeze_backbone=True)
    result = train(config)
    state = load_run(result.run_dir).model.state_dict()
    for key, value in load_backbone("tiny").encoder.state_dict().items():
        assert torch.equal(state[f"encoder.{key}"], value), key
    assert flat_options(load_yaml(result.run_dir / "config.yaml"))["freeze_backbone"] is True
