"""``--report-to``: the epoch values of log.jsonl mirrored to experiment trackers (infomtl.training.tracking)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fakes import small_config
from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.errors import ConfigError
from infomtl.training import tracking

pytestmark = pytest.mark.usefixtures("one_thread")


def test_flatten_keeps_the_finite_numbers_under_slash_names() -> None:
    record = {"epoch": 2, "best": True, "lr": 1e-3, "val": {"avg": 61.5, "tasks": {"irony": {"f1_irony": 70.0}}},
              "train": {"ce": {"hate": 0.5, "odd": math.nan}}, "note": "x", "per_class": [1.0, 2.0]}
    assert tracking.flatten(record) == {"epoch": 2.0, "lr": 1e-3, "val/avg": 61.5,
                                        "val/tasks/irony/f1_irony": 70.0, "train/ce/hate": 0.5}
    assert tracking.hyperparameters({"lr": 0.1, "tasks": ["a", "b"], "method_args": {"b": 1}, "x": None}) == {
        "lr": 0.1, "tasks": '["a", "b"]', "method_args": '{"b": 1}', "x": None}


def test_unknown_tracker_and_missing_package_are_one_line_errors(monkeypatch, tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match=r"--report-to: unknown tracker: tensorbord \(did you mean `tensorboard`\?\)"):
        TrainConfig(report_to=["tensorbord"]).validate()
    assert tracking.check_trackers(["none"]) == [] and tracking.check_trackers([]) == []
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"--report-to wandb needs the wandb package: pip install wandb"):
        tracking.check_trackers(["wandb"])
    code = main(["train", "--benchmark", "synthetic", "--backbone", "tiny", "--epochs", "1",
                 "--report-to", "tensorboard", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install "infomtl[tracking]"' in err
    assert not (tmp_path / "run").exists()  # stopped before any work


def test_report_to_does_not_change_the_run_id() -> None:
    from infomtl.experiments.store import run_id

    assert run_id(TrainConfig(report_to=["tensorboard"])) == run_id(TrainConfig())


def test_tensorboard_events_hold_the_log_values(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from infomtl.training import train

    result = train(small_config(tmp_path / "run", epochs=2, lr=1e-3, report_to=["tensorboard"]))
    lines = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(result.run_dir / "tensorboard" / result.run_dir.name))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for name, pick in (("val/avg", lambda r: r["val"]["avg"]), ("train/loss", lambda r: r["train"]["loss"])):
        assert name in scalars
        logged = [(e.step, e.value) for e in events.Scalars(name)]
        assert [step for step, _ in logged] == [r["epoch"] for r in lines]
        assert [value for _, value in logged] == pytest.approx([pick(r) for r in lines], rel=1e-6)
    task = result.results["test"]["tasks"]
    name, metrics = next(iter(task.items()))
    metric, value = next(iter(metrics.items()))
    best = events.Scalars(f"best/test/tasks/{name}/{metric}")
    assert [e.step for e in best] == [2] and best[0].value == pytest.approx(value, rel=1e-6)
    assert events.Scalars("best/test/avg")[0].value == pytest.approx(result.results["test"]["avg"], rel=1e-6)
    hparams = list((result.run_dir / "tensorboard" / result.run_dir.name).glob("*/hparams.yml"))
    assert len(hparams) == 1 and "report_to" in hparams[0].read_text()
