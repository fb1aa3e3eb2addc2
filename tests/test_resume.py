"""Reproducibility (same seed → same results) and ``--resume`` after a crash or a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import on_progress, small_config
from infomtl.artifacts.run_folder import resume_config
from infomtl.cli import main
from infomtl.training import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TIMING = ("train_time_s", "epoch_time_s")


def _config(output_dir: Path, method: str = "ew", **overrides):
    values = dict(epochs=3, method=method, lr=2e-3, pooling="mean", max_train_examples=96, patience=0)
    values.update(overrides)
    return small_config(output_dir, **values)


def _quiet(*_args) -> None:
    pass


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _outcome(run_dir: Path) -> dict:
    """What must not depend on timing or interruptions: results, log, predictions."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    predictions = {
        str(p.relative_to(run_dir)): p.read_bytes() for p in sorted((run_dir / "predictions").rglob("*.txt"))
    }
    return {"results": _without_timing(results), "log": _without_timing(log), "predictions": predictions}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    return {m: Trainer(_config(root / m, m)).run().run_dir for m in ("ew", "infomtl")}


@pytest.mark.parametrize("method", ["ew", "infomtl"])
def test_same_seed_gives_identical_results_and_predictions(reference, tmp_path, method) -> None:
    again = Trainer(_config(tmp_path / "again", method)).run().run_dir
    first, second = _outcome(reference[method]), _outcome(again)
    assert first["predictions"] and first == second
    assert len(first["log"]) == 3
    state = json.loads((again / "last" / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 3 and state["step"] == first["log"][-1]["step"]


class Crash(Exception):
    pass


def _crash_at(epoch: int):
    """A progress callback that raises right after epoch ``epoch``'s log line is written
    (before its checkpoints)."""

    def crash(message: str) -> None:
        if message.startswith(f"epoch {epoch}:"):
            raise Crash

    return on_progress(crash)


@pytest.mark.parametrize("method", ["ew", "infomtl"])
def test_resume_after_a_crash_equals_the_uninterrupted_run(reference, tmp_path, method) -> None:
    run_dir = tmp_path / "crashed"
    with _crash_at(2), pytest.raises(Crash):
        Trainer(_config(run_dir, method)).run()
    assert len((run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert json.loads((run_dir / "last" / "state.json").read_text(encoding="utf-8"))["epoch"] == 1

    Trainer(resume_config(run_dir)).run()
    assert _outcome(run_dir) == _outcome(reference[method])  # the log line of the lost epoch 2 is replaced
    assert not list(run_dir.rglob("*.tmp")) and not list(run_dir.rglob("*.old"))


def test_truncated_state_and_finished_run_are_one_line_errors(tmp_path, capsys) -> None:
    run_dir = tmp_path / "crashed"
    with _crash_at(2), pytest.raises(Crash):
        Trainer(_config(run_dir, epochs=2)).run()
    model_file = run_dir / "last" / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:100])
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--lr", "0.5", "--no-progress", "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("note: --resume") and err[0].endswith("ignoring --lr")  # not the machine's options
    assert len(err) == 2 and err[1].startswith("error: ") and "truncated" in err[1]

    (run_dir / "results.json").write_text("{}", encoding="utf-8")
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already finished" in err[0]
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_resume_without_a_complete_epoch_starts_over(reference, tmp_path) -> None:
    run_dir = tmp_path / "early"
    with _crash_at(1), pytest.raises(Crash):
        Trainer(_config(run_dir)).run()
    assert not (run_dir / "last").exists() and (run_dir / "log.jsonl").exists()
    Trainer(resume_config(run_dir)).run()
    assert _outcome(run_dir) == _outcome(reference["ew"])


# -- a real kill ----------------------------------------------------------------------


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "infomtl", "train", *args]


SLOW = (  # ~60 steps per epoch so that the kill lands inside epoch 2
    "--benchmark", "synthetic", "--backbone", "tiny", "--max-length", "32", "--batch-size", "8",
    "--max-train-examples", "160", "--max-eval-examples", "32", "--epochs", "3", "--patience", "0",
    "--lr", "2e-3", "--pooling", "mean", "--method", "infomtl", "--no-progress", "--seed", "3",
)


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(_command(*SLOW, "--output-dir", str(killed)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "last" / "state.json"
    try:
        deadline = time.monotonic() + 120
        while not state.exists():
            assert proc.poll() is None, "training ended before its first epoch was saved"
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "results.json").exists()
    assert json.loads(state.read_text(encoding="utf-8"))["epoch"] < 3

    resumed = subprocess.run(_command("--resume", str(killed)), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    straight = subprocess.run(_command(*SLOW, "--output-dir", str(whole)), env=env, capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    assert _outcome(killed) == _outcome(whole)


def test_resume_of_a_killed_stl_run_keeps_finished_tasks_and_equals_the_whole_run(tmp_path) -> None:
    from infomtl.training import train

    def crash_in_second_task():
        seen = []

        def crash(message: str) -> None:
            seen.append(message)
            if message.startswith("epoch 2:") and any(m.startswith("stl: task 2/") for m in seen):
                raise Crash

        return on_progress(crash)

    config = dict(method="stl", epochs=2, max_train_examples=48)
    whole = train(_config(tmp_path / "whole", **config)).run_dir
    killed = tmp_path / "killed"
    with crash_in_second_task(), pytest.raises(Crash):
        train(_config(killed, **config))
    tasks = list(json.loads((whole / "results.json").read_text(encoding="utf-8"))["runs"])  # training order
    assert (killed / tasks[0] / "results.json").is_file() and not (killed / "results.json").exists()
    first_task = (killed / tasks[0] / "results.json").read_bytes()

    messages: list[str] = []
    with on_progress(messages.append):
        train(small_config(None, resume=str(killed)))
    assert any("(finished)" in m for m in messages) and any(m.startswith("resuming") for m in messages)
    assert (killed / tasks[0] / "results.json").read_bytes() == first_task  # not trained again
    for task in tasks:
        assert _outcome(killed / task) == _outcome(whole / task)
    combined = [_without_timing(json.loads((d / "results.json").read_text(encoding="utf-8")))
                for d in (killed, whole)]
    assert combined[0] == combined[1]
