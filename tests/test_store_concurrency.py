"""The results store under change and under load: run ids that stay put when options are
added, stores from the first id scheme adopted, runs claimed by one process at a time, and two
real sweep processes on one store."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infomtl.config import TrainConfig
from infomtl.experiments.plan import load_sweep
from infomtl.experiments.store import ID_SCHEMA, Store, digest, legacy_run_id, run_id
from infomtl.experiments.sweep import run_sweep
from test_experiments import _index_ids as _index_lines
from test_experiments import _sweep

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
FIXED = {"method": "ew", "epochs": 3, "seed": 1}
FIXED_ID = "c70156dcf26b"  # held: a change here re-trains every store


def test_the_id_of_a_fixed_config_is_held() -> None:
    config = TrainConfig(**FIXED)
    # what is hashed: the schema, the options that differ from their defaults, the canonical method
    expected = {"epochs": 3, "seed": 1, "id_schema": ID_SCHEMA, "method": "linear", "weighting": "ew"}
    assert run_id(config) == digest(expected) == FIXED_ID


def test_a_benchmark_arg_hashes_as_the_option_it_was() -> None:
    """``--benchmark-args goemotions_multilabel=true`` (or its shorthand) is the run that
    ``--goemotions-multilabel`` was, id included; a default given explicitly changes nothing."""
    expected = {"epochs": 3, "seed": 1, "id_schema": ID_SCHEMA, "method": "linear", "weighting": "ew",
                "goemotions_multilabel": True, "tweeteval_source": "hf"}
    for config in (TrainConfig(**FIXED, benchmark_args={"goemotions_multilabel": "true", "source": "hf"}),
                   TrainConfig(**FIXED, goemotions_multilabel=True, tweeteval_source="hf")):
        assert run_id(config) == digest(expected)
    assert run_id(TrainConfig(**FIXED, benchmark_args={"ei_reg_pair": "first", "source": "files"})) == FIXED_ID


def test_adding_an_option_keeps_every_id(monkeypatch) -> None:
    from infomtl.config.sections import KEYS, SECTIONS, RunOptions

    extended = dataclasses.make_dataclass(
        "ExtendedRun", [("a_new_option", int, dataclasses.field(default=7))], bases=(RunOptions,))
    monkeypatch.setitem(SECTIONS, "run", extended)
    monkeypatch.setitem(KEYS, "a_new_option", ("run", "a_new_option"))
    assert run_id(TrainConfig(**FIXED)) == FIXED_ID
    assert run_id(TrainConfig(**FIXED, a_new_option=8)) != FIXED_ID  # a non-default value is part of the id


def test_equivalent_spellings_of_one_run_share_an_id() -> None:
    plain = run_id(TrainConfig(method="infomtl", seed=0))
    assert run_id(TrainConfig(method="infomtl", seed=0, method_args={"simax": True, "normalize": "mean"})) == plain
    assert run_id(TrainConfig(method="infomtl", weighting="ew", seed=0)) == plain
    assert run_id(TrainConfig(method="infomtl", seed=0, method_args={"alpha": 0.5})) != plain
    # options that do not change results are not hashed
    assert run_id(TrainConfig(method="infomtl", seed=0, output_dir="x", progress=False)) == plain


def test_a_store_of_the_first_id_scheme_is_adopted_without_training(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path, seeds=(0,)), tmp_path / "store"
    runs = load_sweep(path)
    run_sweep(path, store)
    # turn the store into one written under the first scheme: folders, index and plan by legacy id
    legacy = {r.run_id: legacy_run_id(r.config) for r in runs}
    for new, old in legacy.items():
        os.replace(store / "runs" / new, store / "runs" / old)
    index = [{**json.loads(line), "id": legacy[json.loads(line)["id"]]}
             for line in (store / "index.jsonl").read_text().splitlines()]
    (store / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in index))
    (store / "plan.json").write_text(json.dumps({legacy[k]: v for k, v in json.loads(
        (store / "plan.json").read_text()).items()}))
    stamps = {new: (store / "runs" / old / "results.json").stat().st_mtime_ns for new, old in legacy.items()}

    summary = run_sweep(path, store)
    assert summary.skipped == len(runs) and not summary.finished
    assert sorted(_index_lines(store)) == sorted(legacy)
    assert set(json.loads((store / "plan.json").read_text())) == set(legacy)
    for new in legacy:
        assert (store / "runs" / new / "results.json").stat().st_mtime_ns == stamps[new]


def test_a_run_is_claimed_by_one_holder_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with store.claim("abc") as first, store.claim("abc") as second:
        assert first and not second
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom infomtl.experiments.store import Store\n"
         f"with Store({str(store.root)!r}).claim('abc') as mine:\n"
         "    print(mine, flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        with store.claim("abc") as mine:
            assert not mine
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with store.claim("abc") as mine:
            assert mine  # no stale lock to clean up after a kill
    finally:
        holder.kill()


def test_the_index_takes_each_run_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.root.mkdir()
    assert store.append_index({"id": "a", "status": "finished"})
    assert not store.append_index({"id": "a", "status": "finished"})
    assert store.append_index({"id": "b", "status": "finished"})
    assert _index_lines(store.root) == ["a", "b"]


@pytest.mark.slow
def test_two_sweep_processes_on_one_store_train_each_run_once(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path, seeds=(0, 1, 2)), tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "infomtl", "sweep", str(path), "--store", str(store)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    trained = [int(re.search(r"(\d+) trained", out).group(1)) for out, _ in outputs]
    ids = sorted(r.run_id for r in load_sweep(path))
    assert sum(trained) == len(ids), outputs  # no run trained twice
    assert sorted(_index_lines(store)) == ids  # no index line lost or duplicated
    for rid in ids:
        assert (store / "runs" / rid / "results.json").is_file()
