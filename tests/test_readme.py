"""The README's Python example runs as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_readme_python_example_trains_and_predicts(tmp_path: Path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)  # the run folder goes under ./runs
    exec(compile(blocks[0], str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    run_dir, avg = out[0].rsplit(" ", 1)
    assert Path(run_dir).is_relative_to("runs") and (tmp_path / run_dir / "results.json").is_file()
    assert 0.0 <= float(avg) <= 100.0
    prediction = eval(out[1])  # noqa: S307 - the printed list of dicts
    assert isinstance(prediction, list) and len(prediction) == 1 and prediction[0]


def test_the_package_exposes_train_trainconfig_and_load_cheaply() -> None:
    import subprocess
    import sys

    code = ("import sys, infomtl; assert callable(infomtl.train) and callable(infomtl.load); "
            "infomtl.TrainConfig(epochs=1).validate(); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"  # importing infomtl does not import torch
