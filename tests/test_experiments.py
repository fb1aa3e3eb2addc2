"""Sweeps: expansion, stable run ids, the results store, resume after a kill, workers."""

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
from infomtl.errors import ConfigError
from infomtl.experiments.plan import expand_sweep, load_sweep
from infomtl.experiments.store import Store, run_id
from infomtl.experiments.sweep import run_sweep
from infomtl.fileio import WriteError

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 32, "epochs": 1,
    "max_train_examples": 48, "max_eval_examples": 24, "lr": 2e-3, "progress": False,
}


def _sweep(tmp_path: Path, seeds=(0, 1), methods=None, name="sweep.yaml") -> Path:
    data = {"base": BASE, "methods": methods or [{"method": "ew"}, {"method": "infomtl"}], "seeds": list(seeds)}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _index_ids(store: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (store / "index.jsonl").read_text().splitlines()]


def test_expansion_covers_the_grid_with_stable_ids() -> None:
    data = {"base": BASE, "seeds": [0, 1, 2], "train_ratios": [0.5, 1.0],
            "methods": [{"method": "ew"}, {"method": "infomtl", "grid": {"alpha": [0.01, 0.1], "tau": [1.0]}},
                        {"method": "infomtl", "label": "infomtl w/o TIMin", "method_args": {"timin": False}}]}
    runs = expand_sweep(data)
    assert len(runs) == (1 + 2 + 1) * 3 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert [r.run_id for r in expand_sweep(data)] == [r.run_id for r in runs]
    grid_run = next(r for r in runs if r.label == "infomtl" and r.point == {"alpha": 0.1, "tau": 1.0})
    assert grid_run.config.method.args == {"alpha": 0.1, "tau": 1.0}
    ablation = next(r for r in runs if r.label == "infomtl w/o TIMin")
    assert ablation.config.method.args == {"timin": False}
    # output folder and progress bars do not change what a run computes, so not its id
    config = runs[0].config
    same = type(config).from_dict({**config.to_dict(), "output_dir": "elsewhere", "progress": True})
    assert run_id(same) == runs[0].run_id
    assert run_id(type(config).from_dict({**config.to_dict(), "lr": 1e-3})) != runs[0].run_id
    assert len(runs[0].run_id) == 12


def test_default_seeds_are_0_1_2() -> None:
    runs = expand_sweep({"base": BASE, "methods": [{"method": "ew"}]})
    assert [r.config.run.seed for r in runs] == [0, 1, 2]


@pytest.mark.parametrize(("entry", "needle"), [
    ({"method": "nope"}, "nope"),
    ({"method": "infomtl", "grid": {"alpha": [0.1], "not_a_hyperparameter": [1]}}, "not_a_hyperparameter"),
    ({"method": "ew", "lr": -1}, "--lr must be > 0"),
    ({"method": "ew", "bogus_option": 1}, "bogus_option"),
])
def test_a_bad_entry_fails_before_anything_runs(tmp_path: Path, entry, needle, capsys) -> None:
    path = _sweep(tmp_path, methods=[{"method": "uw"}, entry])
    with pytest.raises(ConfigError, match=r"methods\[2\]") as info:
        load_sweep(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert main(["sweep", str(path), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "store").exists()


def test_two_entries_with_one_label_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"methods\[2\]: label 'ew' already used by methods\[1\]"):
        expand_sweep({"base": BASE, "methods": [{"method": "ew"}, {"method": "ew", "lr": 1e-3}]})


def test_sweep_trains_every_run_once_and_a_rerun_skips_them(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path), tmp_path / "store"
    summary = run_sweep(path, store)
    runs = load_sweep(path)
    assert len(summary.finished) == 4 and not summary.failed
    assert sorted(_index_ids(store)) == sorted(r.run_id for r in runs)
    for run in runs:
        results = json.loads((store / "runs" / run.run_id / "results.json").read_text())
        assert results["seed"] == run.config.run.seed and results["method"] == run.config.method.name
    stamps = {r.run_id: (store / "runs" / r.run_id / "results.json").stat().st_mtime_ns for r in runs}

    again = run_sweep(path, store)
    assert again.skipped == 4 and not again.finished
    assert sorted(_index_ids(store)) == sorted(r.run_id for r in runs)

    # a changed config adds runs and never overwrites finished ones
    bigger = _sweep(tmp_path, seeds=(0, 1, 2), name="bigger.yaml")
    added = run_sweep(bigger, store)
    assert added.skipped == 4 and len(added.finished) == 2
    assert len(_index_ids(store)) == 6 == len(set(_index_ids(store)))
    for rid, stamp in stamps.items():
        assert (store / "runs" / rid / "results.json").stat().st_mtime_ns == stamp
    assert len(Store(store).read_plan()) == 6


def test_an_unfinished_run_folder_is_restarted(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path, seeds=(0,), methods=[{"method": "ew"}]), tmp_path / "store"
    rid = load_sweep(path)[0].run_id
    folder = store / "runs" / rid
    folder.mkdir(parents=True)
    (folder / "log.jsonl").write_text("half a run\n")
    summary = run_sweep(path, store)
    assert summary.finished == [rid]
    assert (folder / "results.json").is_file()
    assert "half a run" not in (folder / "log.jsonl").read_text()


def test_killed_sweep_resumes_without_losing_or_duplicating_runs(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path), tmp_path / "store"
    command = [sys.executable, "-m", "infomtl", "sweep", str(path), "--store", str(store)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not list(store.glob("runs/*/results.json")):
            assert proc.poll() is None, "the sweep ended before its first run finished"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    finished_before = {p.parent.name for p in store.glob("runs/*/results.json")}
    assert 1 <= len(finished_before) < 4

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ids = sorted(r.run_id for r in load_sweep(path))
    assert sorted(_index_ids(store)) == ids  # every run exactly once
    assert all((store / "runs" / rid / "results.json").is_file() for rid in ids)
    assert sorted(p.name for p in (store / "runs").iterdir()) == ids  # no stray folders
    assert f"{len(finished_before)} finished" in resumed.stdout


def test_parallel_workers_fill_the_same_store(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path, methods=[{"method": "ew"}]), tmp_path / "store"
    summary = run_sweep(path, store, workers=2)
    assert len(summary.finished) == 2 and not summary.failed
    assert sorted(_index_ids(store)) == sorted(r.run_id for r in load_sweep(path))


class _FakeRay:
    """The part of Ray's API the engine uses; tasks run synchronously, in order."""

    def __init__(self, fail: str | None = None, error: Exception | None = None) -> None:
        self.init_args: dict = {}
        self.resources: dict = {}
        self.fail = fail
        self.error = error or RuntimeError("worker lost")
        self.cancelled: list = []

    def init(self, **kwargs) -> None:
        self.init_args = kwargs

    def remote(self, **resources):
        self.resources = resources

        def wrap(fn):
            class Remote:
                @staticmethod
                def remote(config, store, threads):
                    if config["method"] == self.fail:
                        return ("error", self.error)
                    return ("ok", fn(config, store, threads))

            return Remote

        return wrap

    @staticmethod
    def wait(refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    @staticmethod
    def get(ref):
        status, value = ref
        if status == "error":
            raise value
        return value

    def cancel(self, ref) -> None:
        self.cancelled.append(ref)


def test_ray_engine_trains_each_run_as_a_task(tmp_path: Path, monkeypatch) -> None:
    from infomtl.experiments.sweep import RayOptions

    fake = _FakeRay(fail="infomtl")
    monkeypatch.setitem(sys.modules, "ray", fake)
    path, store = _sweep(tmp_path, seeds=(0,)), tmp_path / "store"
    summary = run_sweep(path, store, ray=RayOptions("auto", 2.0, 0.5))
    assert fake.init_args["address"] == "auto"
    assert fake.resources == {"num_cpus": 2.0, "num_gpus": 0.5, "max_retries": 0}  # a dead worker: reported
    ew, infomtl = load_sweep(path)
    assert summary.finished == [ew.run_id] and list(summary.failed) == [infomtl.run_id]
    assert "worker lost" in summary.failed[infomtl.run_id]
    assert _index_ids(store) == [ew.run_id]


def test_a_failed_write_in_a_ray_task_stops_the_sweep(tmp_path: Path, monkeypatch) -> None:
    from infomtl.experiments.sweep import RayOptions

    fake = _FakeRay(fail="ew", error=WriteError("/shared/runs/x/last", "disk full", 28))
    monkeypatch.setitem(sys.modules, "ray", fake)
    path, store = _sweep(tmp_path, seeds=(0,)), tmp_path / "store"
    with pytest.raises(WriteError, match=r"disk full.*resume the sweep with: infomtl sweep .* --engine ray"):
        run_sweep(path, store, ray=RayOptions())
    assert len(fake.cancelled) == 1  # the task still pending when the error came back
    ew, infomtl = load_sweep(path)
    assert _index_ids(store) == [infomtl.run_id]  # it ended meanwhile: indexed


def test_ray_engine_without_ray_is_a_one_line_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["sweep", str(_sweep(tmp_path)), "--store", str(tmp_path / "s"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "infomtl[ray]" in err[0]


def test_dry_run_lists_runs_and_trains_nothing(tmp_path: Path, capsys) -> None:
    path, store = _sweep(tmp_path), tmp_path / "store"
    assert main(["sweep", str(path), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs, 0 finished, 4 to run" in out
    assert not (store / "runs").exists()


@pytest.mark.parametrize("preset", sorted((REPO / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_sweep_presets_expand(preset: Path) -> None:
    runs = load_sweep(preset)
    assert runs and len({r.run_id for r in runs}) == len(runs)


def test_only_and_seed_order_pick_the_runs_without_changing_them(tmp_path: Path, capsys) -> None:
    from infomtl.experiments.plan import select_runs

    methods = [{"method": "ew"}, {"method": "infomtl"}, {"method": "uw"}]
    runs = load_sweep(_sweep(tmp_path, seeds=(0, 1), methods=methods))
    assert [(r.label, r.config.run.seed) for r in select_runs(runs)] == [
        ("ew", 0), ("ew", 1), ("infomtl", 0), ("infomtl", 1), ("uw", 0), ("uw", 1)]
    picked = select_runs(runs, only=["uw", "ew"], order="seeds")
    assert [(r.label, r.config.run.seed) for r in picked] == [("ew", 0), ("uw", 0), ("ew", 1), ("uw", 1)]
    assert {r.run_id for r in picked} <= {r.run_id for r in runs}
    with pytest.raises(ConfigError, match=r"--only: unknown row label: infomtll \(did you mean `infomtl`\?\)"):
        select_runs(runs, only=["infomtll"])
    with pytest.raises(ConfigError, match="--order"):
        select_runs(runs, order="random")
    path = _sweep(tmp_path, seeds=(0, 1), methods=methods)
    assert main(["sweep", str(path), "--store", str(tmp_path / "s"), "--only", "uw", "--order", "seeds",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in out[:-1]] == ["uw", "uw"] and out[-1] == "2 runs, 0 finished, 2 to run"


def test_a_sweep_with_only_trains_those_rows_and_plans_all(tmp_path: Path) -> None:
    path, store = _sweep(tmp_path, seeds=(0,)), tmp_path / "store"
    summary = run_sweep(path, store, only=["infomtl"])
    runs = load_sweep(path)
    assert summary.finished == [next(r.run_id for r in runs if r.label == "infomtl")]
    assert len(Store(store).read_plan()) == 2  # the plan (and the report) know the other row


def test_the_sweep_process_reports_a_collapsed_run_whoever_trained_it(tmp_path: Path) -> None:
    """The collapse of a run's final model is read from its results.json by the sweep process,
    one warning line per collapsed task: here the runs train in worker processes, whose own log
    (like a Ray worker's) does not reach this process's handlers."""
    from fakes import on_progress

    base = {"benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 32, "epochs": 1,
            "max_train_examples": 32, "max_eval_examples": 24, "lr": 1e-9, "progress": False, "patience": 0}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base, "methods": [{"method": "ew"}], "seeds": [0, 1]}))
    lines: list[str] = []
    with on_progress(lines.append):
        summary = run_sweep(path, tmp_path / "store", workers=2)
    assert len(summary.finished) == 2
    for rid in summary.finished:
        results = json.loads((tmp_path / "store" / "runs" / rid / "results.json").read_text())
        assert results.get("collapse"), "these runs (lr 1e-9, one epoch) should collapse"
        warned = [line for line in lines if line.startswith(f"warning: run {rid}: ")]
        assert warned == [f"warning: run {rid}: {m}" for m in results["collapse"]]
