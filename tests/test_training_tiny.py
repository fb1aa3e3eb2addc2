"""Trainer end to end on the built-in synthetic benchmark with the tiny backbone (in-process)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from infomtl.artifacts.evaluation import evaluate_run, predict_splits
from infomtl.artifacts.run_folder import load_run
from infomtl.config import TrainConfig
from infomtl.data.loading import prepare_data
from infomtl.errors import InfomtlError
from infomtl.modeling.backbones import load_backbone
from infomtl.options import load_yaml
from infomtl.training import Trainer

METHODS = ("ew", "infomtl")
TASK_NAMES = ("sentiment", "topic", "urgency")
EVAL_ROWS = 60


def _config(method: str, output_dir: Path) -> TrainConfig:
    return TrainConfig(
        benchmark="synthetic", backbone="tiny", max_length=32, batch_size=32, epochs=2, lr=2e-3,
        pooling="mean", progress=False, output_dir=str(output_dir), max_train_examples=120,
        max_eval_examples=EVAL_ROWS, method=method,
    )


def _train(method: str, output_dir: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    trainer = Trainer(_config(method, output_dir))
    initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.run()
    return result.run_dir, initial


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    root = tmp_path_factory.mktemp("train")
    return {m: _train(m, root / m) for m in METHODS}


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("method", METHODS)
def test_run_folder_holds_config_log_checkpoint_results_and_predictions(runs, method) -> None:
    run_dir, _ = runs[method]
    for name in ("config.yaml", "run.json", "log.jsonl", "results.json"):
        assert (run_dir / name).is_file(), name
    ckpt = run_dir / "checkpoint"
    assert (ckpt / "model.safetensors").is_file()
    assert (ckpt / "state.json").is_file()
    assert (ckpt / "encoder").is_dir() and (ckpt / "encoder" / "config.json").is_file()
    assert not list(run_dir.rglob("*.tmp"))
    config = load_yaml(run_dir / "config.yaml")  # by section
    assert config["method"]["name"] == method and config["model"]["backbone"] == "tiny"
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert [t["name"] for t in meta["tasks"]] == list(TASK_NAMES)
    assert meta["train_sizes"] == [120, 120, 120]
    assert meta["regime"] == "mixed"
    state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] in (1, 2)


@pytest.mark.parametrize("method", METHODS)
def test_log_has_one_line_per_epoch_with_the_loss_components(runs, method) -> None:
    run_dir, _ = runs[method]
    lines = (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        train = r["train"]
        assert np.isfinite(train["loss"])
        assert set(train["ce"]) == set(TASK_NAMES)
        # the papers' balance: the mean over the tasks present (1/T each in a mixed step)
        assert train["weights"] == pytest.approx({name: 1 / len(TASK_NAMES) for name in TASK_NAMES})
        if method == "infomtl":
            assert set(train["kl"]) == set(TASK_NAMES)
            assert all(v >= 0 for v in train["kl"].values())
            assert np.isfinite(train["nce"]) and train["nce"] > 0
        else:
            assert "kl" not in train and "nce" not in train
        assert set(r["val"]["tasks"]) == set(TASK_NAMES)
        assert "avg" in r["val"] and "loss" in r["val"]


@pytest.mark.parametrize("method", METHODS)
def test_results_hold_val_and_test_scores(runs, method) -> None:
    run_dir, _ = runs[method]
    results = _results(run_dir)
    assert results["method"] == method
    assert results["epochs_run"] == 2
    assert results["best_epoch"] in (1, 2)
    for split in ("val", "test"):
        scored = results[split]
        assert set(scored["scores"]) == set(TASK_NAMES)
        assert 0 <= scored["avg"] <= 100
        assert scored["avg"] == pytest.approx(np.mean(list(scored["scores"].values())))


@pytest.mark.parametrize("method", METHODS)
def test_predictions_have_one_line_per_evaluated_row(runs, method) -> None:
    run_dir, _ = runs[method]
    for split in ("val", "test"):
        for name in TASK_NAMES:
            lines = (run_dir / "predictions" / split / f"{name}.txt").read_text().splitlines()
            assert len(lines) == EVAL_ROWS
            assert all(line.isdigit() for line in lines)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_gives_identical_results(runs, method, tmp_path) -> None:
    first, _ = runs[method]
    second, _ = _train(method, tmp_path / "again")
    a, b = _results(first), _results(second)
    assert a["test"] == b["test"]
    assert a["val"] == b["val"]
    for split in ("val", "test"):
        for name in TASK_NAMES:
            path = Path("predictions") / split / f"{name}.txt"
            assert (first / path).read_text() == (second / path).read_text()


@pytest.mark.parametrize("method", METHODS)
def test_load_run_rebuilds_a_model_that_reproduces_the_saved_predictions(runs, method) -> None:
    run_dir, _ = runs[method]
    run = load_run(run_dir)
    assert run.spec.name == method
    assert [t.name for t in run.tasks] == list(TASK_NAMES)
    assert not run.model.training
    data = prepare_data(run.config)
    from infomtl.data.encoding import encode

    tok = run.backbone.tokenizer
    for split in ("val", "test"):
        splits = [encode(data.splits[t.name][split], tok, run.config.model.max_length) for t in run.tasks]
        preds, _ = predict_splits(
            run.model, run.method, run.tasks, splits, 256, int(tok.pad_token_id), torch.device("cpu")
        )
        for task, pred in zip(run.tasks, preds, strict=True):
            saved = (run_dir / "predictions" / split / f"{task.name}.txt").read_text().split()
            assert [int(p) for p in pred] == [int(s) for s in saved]


@pytest.mark.parametrize("method", METHODS)
def test_evaluate_run_scores_equal_the_saved_results(runs, method) -> None:
    run_dir, _ = runs[method]
    results = _results(run_dir)
    for split in ("val", "test"):
        scored = evaluate_run(run_dir, split)
        assert scored["scores"] == pytest.approx(results[split]["scores"])
        assert scored["avg"] == pytest.approx(results[split]["avg"])
        assert scored["loss"] == pytest.approx(results[split]["loss"], rel=1e-5)


def test_truncated_checkpoint_is_an_infomtl_error(runs, tmp_path) -> None:
    run_dir, _ = runs["infomtl"]
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    weights = copy / "checkpoint" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InfomtlError, match="model.safetensors|checkpoint"):
        load_run(copy)
    weights.write_bytes(data[:4])
    with pytest.raises(InfomtlError):
        load_run(copy)


def test_missing_run_folder_or_checkpoint_is_an_infomtl_error(runs, tmp_path) -> None:
    with pytest.raises(InfomtlError, match="no such run folder"):
        load_run(tmp_path / "absent")
    copy = tmp_path / "run"
    shutil.copytree(runs["ew"][0], copy)
    (copy / "checkpoint" / "model.safetensors").unlink()
    with pytest.raises(InfomtlError, match="no checkpoint"):
        load_run(copy)


@pytest.mark.parametrize("method", METHODS)
def test_training_changes_the_shared_encoder_and_the_heads(runs, method) -> None:
    run_dir, initial = runs[method]
    trained = load_run(run_dir).model.state_dict()
    fresh = load_backbone("tiny").encoder.state_dict()
    encoder_keys = [k for k in trained if k.startswith("encoder.")]
    head_keys = [k for k in trained if k.startswith("decoder.")]
    assert encoder_keys and head_keys
    # the trainer starts from the tiny backbone's fixed initial weights
    for k in encoder_keys:
        torch.testing.assert_close(initial[k], fresh[k.removeprefix("encoder.")])
    changed = [k for k in encoder_keys if not torch.equal(trained[k], fresh[k.removeprefix("encoder.")])]
    assert len(changed) > len(encoder_keys) // 2
    assert any("embeddings.word_embeddings" in k for k in changed)
    assert any("encoder.layer.1." in k for k in changed)
    for k in head_keys:
        assert not torch.equal(trained[k], initial[k]), f"{k} did not change"


def test_one_process_trains_runs_with_different_mixed_precisions(tmp_path) -> None:
    """A sweep worker trains run after run in one process; each keeps its own precision."""
    from fakes import small_config

    for precision in ("no", "bf16", "no"):
        config = small_config(tmp_path / precision / str(len(list(tmp_path.rglob("results.json")))),
                              mixed_precision=precision, max_steps=1)
        trainer = Trainer(config)
        assert trainer.amp.dtype == {"no": None, "bf16": torch.bfloat16}[precision]
        assert trainer.accelerator.mixed_precision == "no"  # the precision is the run's own (training/amp.py)
        trainer.run()
