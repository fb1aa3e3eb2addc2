"""Training curves from log.jsonl and `infomtl analyze curves`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fakes import small_config
from infomtl.analysis.curves import read_curves
from infomtl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from infomtl.training import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("curves")
    ew = train(small_config(out / "ew", epochs=2)).run_dir
    dwa = train(small_config(out / "dwa", epochs=2, method="dwa")).run_dir
    return ew, dwa


def test_read_curves(two_runs):
    ew, dwa = two_runs
    c = read_curves(ew)
    assert c["epochs"] == [0, 1] or len(c["epochs"]) == 2
    assert set(c["tasks"]) == {"sentiment", "topic", "urgency"}
    for s in c["tasks"].values():
        assert len(s["train_ce"]) == 2 and all(not math.isnan(v) for v in s["train_ce"])
        assert all(0.0 <= v <= 100.0 for v in s["val_score"])
    assert c["weights"] == {}  # EW's constant weights are not a curve
    assert len(c["val_loss"]) == 2 and len(c["val_avg"]) == 2


def test_cli_curves_writes_files(two_runs, tmp_path):
    ew, dwa = two_runs
    out = tmp_path / "an"
    assert main(["analyze", "curves", str(ew), str(dwa), "--out", str(out)]) == 0
    for name in ("curves.json", "curves.csv", "curves.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "curves.json").read_text())
    assert len(data) == 2
    if any(c["weights"] for c in data.values()):
        assert (out / "weights.png").stat().st_size > 0
    assert (out / "curves.csv").read_text().splitlines()[0] == "run,epoch,series,task,value"


def test_cli_curves_bad_run_dir(tmp_path, capsys):
    assert main(["analyze", "curves", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "log.jsonl" in err and "\n" not in err


def test_plot_skipped_without_matplotlib(two_runs, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert main(["analyze", "curves", str(two_runs[0]), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "curves.json").exists() and not (tmp_path / "curves.png").exists()
    assert "plot skipped" in capsys.readouterr().err
