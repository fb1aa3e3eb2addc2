"""Information-plane estimates (``--track-information``) and `infomtl analyze information`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fakes import small_config
from infomtl.analysis.information import information_estimates, read_information
from infomtl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from infomtl.training import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("information")
    kw = dict(epochs=2, method="infomtl", lr=1e-3)
    tracked = train(small_config(out / "tracked", track_information=True, **kw))
    plain = train(small_config(out / "plain", **kw))
    return tracked, plain


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from infomtl.training import Trainer

    torch.set_num_threads(1)
    return Trainer(small_config(tmp_path_factory.mktemp("trainer") / "run", method="infomtl"))


def test_estimates_finite_and_bounded(trainer):
    model = trainer.model
    model.eval()
    state = torch.get_rng_state()
    est = information_estimates(model, trainer.tasks, trainer.encoded["val"], trainer.pad_id, "cpu", batch_size=16)
    assert torch.equal(state, torch.get_rng_state())  # training randomness untouched
    assert not model.training  # mode restored
    b = est["batch_size"]
    assert b == 16 and len(est["ixz_batches"]) >= 2
    assert all(math.isfinite(v) and v <= math.log(b) + 1e-6 for v in est["ixz_batches"])
    assert math.isfinite(est["ixz"]) and est["ixz"] <= math.log(b) + 1e-6
    assert set(est["izzt"]) == {t.name for t in trainer.tasks}
    assert all(math.isfinite(v) and v >= 0.0 for v in est["izzt"].values())
    again = information_estimates(model, trainer.tasks, trainer.encoded["val"], trainer.pad_id, "cpu", batch_size=16)
    assert again["ixz"] == est["ixz"] and again["izzt"] == est["izzt"]  # fixed batches and seed


def test_deterministic_heads_use_unit_variance(trainer):
    from infomtl.analysis.information import _kl_rows
    from infomtl.modeling.heads import HeadOutput

    mu = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    assert torch.allclose(_kl_rows(HeadOutput(mean=mu)), torch.tensor([2.5, 0.0]))
    assert torch.allclose(_kl_rows(HeadOutput(mean=mu, logvar=torch.zeros_like(mu))), torch.tensor([2.5, 0.0]))


def test_tracked_run_logs_and_keeps_results(runs):
    tracked, plain = runs
    records = [json.loads(x) for x in (tracked.run_dir / "log.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        info = r["information"]
        assert math.isfinite(info["ixz"]) and info["ixz"] <= math.log(info["batch_size"]) + 1e-6
        assert all(math.isfinite(v) for v in info["izzt"].values())
    assert all("information" not in json.loads(x) for x in (plain.run_dir / "log.jsonl").read_text().splitlines())
    a = json.loads((tracked.run_dir / "results.json").read_text())
    b = json.loads((plain.run_dir / "results.json").read_text())
    assert a["test"] == b["test"] and a["val"] == b["val"] and a["best_epoch"] == b["best_epoch"]
    data = read_information(tracked.run_dir)
    assert data["epochs"] == [1, 2] and data["selected_epoch"] == a["best_epoch"]


def test_cli_information_writes_png(runs, tmp_path):
    tracked, _ = runs
    out = tmp_path / "an"
    assert main(["analyze", "information", str(tracked.run_dir), "--out", str(out)]) == 0
    for name in ("information.json", "information.csv", "information.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "information.csv").read_text().splitlines()[0] == "run,epoch,selected,ixz,task,izzt"


def test_cli_information_untracked_run(runs, capsys):
    _, plain = runs
    assert main(["analyze", "information", str(plain.run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--track-information" in err and "\n" not in err


def test_information_rows_draws_one_subset_for_both_estimates(trainer):
    from infomtl.analysis.information import _batches

    sizes = [len(s) for s in trainer.encoded["val"]]
    full = _batches(sizes, 8, seed=3, drop_last=False)
    part = _batches(sizes, 8, seed=3, drop_last=False, max_rows=20)
    assert sum(len(r) for step in part for r in step) == 20
    # the subset is the first 20 pairs of the full seeded order, so it does not depend on B
    flat = [(t, int(i)) for step in full for t, rows in enumerate(step) for i in rows]
    other = {(t, int(i)) for step in _batches(sizes, 5, seed=3, drop_last=False, max_rows=20)
             for t, rows in enumerate(step) for i in rows}
    assert {(t, int(i)) for step in part for t, rows in enumerate(step) for i in rows} == other
    assert other <= set(flat)
    est = information_estimates(trainer.model, trainer.tasks, trainer.encoded["val"], trainer.pad_id, "cpu",
                                batch_size=8, max_rows=20)
    assert len(est["ixz_batches"]) == 2  # 20 rows in batches of 8, the partial one dropped
    with pytest.raises(Exception, match="at least 2 validation rows"):
        information_estimates(trainer.model, trainer.tasks, trainer.encoded["val"], trainer.pad_id, "cpu",
                              max_rows=1)


def test_information_rows_is_checked_and_not_part_of_the_run_id():
    from infomtl.config import TrainConfig
    from infomtl.errors import ConfigError
    from infomtl.experiments.store import run_id

    with pytest.raises(ConfigError, match="--information-rows must be >= 2, got 1"):
        TrainConfig(information_rows=1).validate()
    assert run_id(TrainConfig(information_rows=64)) == run_id(TrainConfig())
