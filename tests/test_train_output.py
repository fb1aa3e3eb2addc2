"""What ``infomtl train`` shows: progress bars (on a terminal, or when asked) for training,
validation, test and feature extraction, and a closing summary that ends with the command
that predicts with the run."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys

import pytest

from infomtl.cli import main
from infomtl.logs import show_progress

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("--benchmark", "synthetic", "--backbone", "tiny", "--max-train-examples", "48", "--max-eval-examples", "24",
        "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--lr", "1e-3")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_follow_the_flag_else_whether_stderr_is_a_terminal(monkeypatch) -> None:
    assert show_progress(True) and not show_progress(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not show_progress(None)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert show_progress(None) and not show_progress(False)


def test_train_ends_with_the_scores_the_run_folder_and_a_predict_command_that_works(tmp_path, capsys) -> None:
    out = tmp_path / "my run"
    assert main(["train", *TINY, "--output-dir", str(out)]) == 0
    stdout = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    summary = stdout[stdout.index("| task"):].splitlines()
    assert f"test Avg: {results['test']['avg']:.2f}" in summary
    assert all(f"| {task} " in stdout for task in results["test"]["tasks"])
    assert summary[-2] == f"run folder: {out}"
    command = f"infomtl predict {shlex.quote(str(out))} --input texts.txt"
    assert summary[-1].startswith(f"predict with it: {command}  (")
    (tmp_path / "texts.txt").write_text("the match was great\nthe meeting moved\n")
    args = shlex.split(command)[1:]
    assert main([*args[:-1], str(tmp_path / "texts.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and set(json.loads(lines[0])["predictions"]) == set(results["test"]["tasks"])


def test_a_collapsed_task_is_repeated_in_the_summary(tmp_path, capsys) -> None:
    assert main(["train", *TINY, "--lr", "1e-9", "--output-dir", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    collapse = json.loads((tmp_path / "run" / "results.json").read_text())["collapse"]
    assert collapse
    summary = captured.out[captured.out.index("| task"):]
    assert [line.removeprefix("warning: ") for line in summary.splitlines() if line.startswith("warning: ")] \
        == collapse
    assert f"warning: epoch 1: {collapse[0]}" in captured.err  # the validation's warning, on stderr


def drawn(desc: str, err: str) -> bool:
    """Whether tqdm drew a bar named ``desc`` (``desc:  50%|#####     | 1/2 ...``)."""
    return re.search(rf"{re.escape(desc)}: +\d+%\|", err) is not None


def test_progress_bars_for_features_training_validation_and_test(tmp_path, capsys) -> None:
    cache = tmp_path / "features"
    args = ["train", *TINY, "--freeze-backbone", "--feature-cache", str(cache)]
    assert main([*args, "--output-dir", str(tmp_path / "quiet")]) == 0  # stderr is not a terminal here
    err = capsys.readouterr().err
    assert "%|" not in err
    for f in cache.iterdir():  # extract the features again (the synthetic tasks share their texts)
        f.unlink()
    assert main([*args, "--progress", "--output-dir", str(tmp_path / "bars")]) == 0
    err = capsys.readouterr().err
    for bar in ("features sentiment/train", "features sentiment/val", "features sentiment/test", "epoch 1",
                "epoch 1 val", "best epoch val", "best epoch test"):
        assert drawn(bar, err), bar
    assert main(["--quiet", *args, "--output-dir", str(tmp_path / "q")]) == 0
    assert "%|" not in capsys.readouterr().err
