"""SIGTERM and Ctrl-C (SIGINT): training stops at the next step boundary with ``last/`` saved and
a line giving the command that resumes; a sweep leaves its runs resumable and its index
consistent; resuming gives exactly the results of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from infomtl.cli import main
from infomtl.errors import Interrupted
from infomtl.experiments.plan import load_sweep
from infomtl.experiments.sweep import run_sweep
from infomtl.training import Trainer, signals
from test_resume import SLOW, _config, _outcome

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO / "src")}
STEPS_PER_EPOCH = 9  # _config: 3 tasks x 96 rows, batch 32


def test_the_first_signal_is_recorded_and_a_second_one_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    with signals.graceful_stop():
        with signals.graceful_stop():  # nested: one set of handlers
            assert signals.requested() is None
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert signals.requested() == signal.SIGTERM
        assert signals.requested() == signal.SIGTERM  # the outer block still sees it
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signals.requested() is None and signal.getsignal(signal.SIGINT) is before


def _signal_after(monkeypatch, steps: int, signum: int = signal.SIGINT) -> None:
    """This process receives ``signum`` right after its ``steps``-th training step."""
    done = [0]
    step = Trainer.train_step

    def counting(self, plan, index=0):
        out = step(self, plan, index)
        done[0] += 1
        if done[0] == steps:
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(Trainer, "train_step", counting)


# methods whose state changes within an epoch: running sums of the log (hierarchical-mtl's SNR,
# PCGrad's projection statistics), a step-window loss history (DWA), a random generator (RLW)
METHODS = [("ew", {}), ("pcgrad", {}), ("hierarchical-mtl", {}), ("dwa", {"window": 4}), ("rlw", {})]


@pytest.mark.parametrize(("method", "args"), METHODS, ids=[m for m, _ in METHODS])
def test_ctrl_c_mid_epoch_saves_that_step_and_resuming_equals_the_uninterrupted_run(
        tmp_path, monkeypatch, method, args) -> None:
    extra = {"method_args": args}
    whole = Trainer(_config(tmp_path / "whole", method, **extra)).run().run_dir
    run_dir = tmp_path / "stopped"
    with monkeypatch.context() as m:
        _signal_after(m, STEPS_PER_EPOCH + 4)
        with pytest.raises(Interrupted) as caught:
            Trainer(_config(run_dir, method, **extra)).run()
    assert caught.value.exit_status == 130 and caught.value.signal_name == "SIGINT"
    assert caught.value.resume == f"infomtl train --resume {run_dir}"
    state = json.loads((run_dir / "last" / "state.json").read_text())
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 4, STEPS_PER_EPOCH + 4)
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 1
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert _outcome(run_dir) == _outcome(whole)  # the log's epoch-2 line (loss, weights, method values) too


def test_the_cli_prints_one_line_with_the_resume_command(tmp_path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    _signal_after(monkeypatch, 3, signal.SIGTERM)
    args = ["train", "--benchmark", "synthetic", "--backbone", "tiny", "--max-length", "32", "--epochs", "2",
            "--batch-size", "32", "--max-train-examples", "96", "--max-eval-examples", "32", "--no-progress"]
    assert main([*args, "--output-dir", str(run_dir)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted by SIGTERM: {run_dir}: saved after step 3 of epoch 1; "
                   f"resume with: infomtl train --resume {run_dir}"]


def test_a_signal_between_epochs_keeps_the_last_complete_epoch(tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _signal_after(m, STEPS_PER_EPOCH)  # during the first epoch's validation and saves
        with pytest.raises(Interrupted, match="last/ holds the run after epoch 1"):
            Trainer(_config(run_dir)).run()
    state = json.loads((run_dir / "last" / "state.json").read_text())
    assert (state["epoch"], state["epoch_step"]) == (1, 0)


# -- real processes -------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen, lines: int = 1, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and len(path.read_text().splitlines()) >= lines):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_to_infomtl_train_then_resume_equals_an_uninterrupted_run(tmp_path) -> None:
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    proc = subprocess.Popen([sys.executable, "-m", "infomtl", *(["train", *SLOW]), "--output-dir", str(stopped)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(stopped / "log.jsonl", proc)
        time.sleep(0.2)  # into epoch 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"interrupted by SIGTERM: {stopped}: ") and "Traceback" not in err
    assert line.endswith(f"resume with: infomtl train --resume {stopped}")
    assert not (stopped / "results.json").exists()
    assert json.loads((stopped / "last" / "state.json").read_text())["epoch"] < 3
    assert main(["train", "--resume", str(stopped)]) == 0
    assert main(["train", *SLOW, "--output-dir", str(whole)]) == 0
    assert _outcome(stopped) == _outcome(whole)


def _slow_sweep(tmp_path: Path) -> Path:
    # epochs enough that a run cannot finish between the signal and its stop (a fast machine)
    base = {"benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 8, "epochs": 5,
            "max_train_examples": 160, "max_eval_examples": 32, "lr": 2e-3, "pooling": "mean", "progress": False}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base, "methods": [{"method": "ew"}], "seeds": [0, 1]}))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_infomtl_sweep_leaves_the_run_resumable_and_the_index_consistent(tmp_path, workers) -> None:
    path, store = _slow_sweep(tmp_path), tmp_path / "store"
    runs = load_sweep(path)
    first = store / "runs" / runs[0].run_id
    command = [sys.executable, "-m", "infomtl", "sweep", str(path), "--store", str(store), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(first / "log.jsonl", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    resume = f"infomtl sweep {path} --store {store}" + (f" --workers {workers}" if workers > 1 else "")
    line = err.strip().splitlines()[-1]
    assert line.startswith("interrupted by SIGTERM: ") and line.endswith(f"resume with: {resume}"), err
    assert str(first) in line and "Traceback" not in err
    index = store / "index.jsonl"
    indexed = [json.loads(x)["id"] for x in index.read_text().splitlines()] if index.exists() else []
    finished = [r.run_id for r in runs if (store / "runs" / r.run_id / "results.json").is_file()]
    assert sorted(indexed) == sorted(finished)  # the index holds exactly the finished runs
    assert (first / "last" / "state.json").is_file() and not (first / "results.json").exists()

    summary = run_sweep(path, store)
    assert sorted(summary.finished) == sorted(r.run_id for r in runs if r.run_id not in finished)
    assert sorted(json.loads(x)["id"] for x in index.read_text().splitlines()) == sorted(r.run_id for r in runs)
    reference = Trainer(runs[0].config.__class__.from_dict(
        {**runs[0].config.to_dict(), "output_dir": str(tmp_path / "whole")})).run().run_dir
    assert _outcome(first) == _outcome(reference)
