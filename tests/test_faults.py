"""Writes that fail: a disk that fills (ENOSPC), a read-only folder, a file-size limit (EFBIG).

Every write of a run (config.yaml, run.json, log.jsonl, checkpoint/, last/, predictions,
results.json), of a sweep (sweep.yaml, plan.json, index.jsonl), of the feature cache and of an
export: the command fails with one line naming the file and the cause (exit 2, no traceback),
leaves nothing half-written and the previous state readable, and a rerun or ``--resume``
ends with the results of an undisturbed run. The feature cache is the exception that goes
on: it warns and keeps the features in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from faults import DiskFull, leftovers, one_error_line, read_only, with_file_size_limit
from infomtl.cli import main
from infomtl.fileio import WriteError, describe_os_error, write_json, write_text, writing
from infomtl.inference.predict import load
from test_resume import Crash, _crash_at, _outcome

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = ["train", "--benchmark", "synthetic", "--backbone", "tiny", "--max-length", "32", "--batch-size", "32",
         "--max-train-examples", "64", "--max-eval-examples", "32", "--epochs", "2", "--patience", "0",
         "--lr", "2e-3", "--pooling", "mean", "--no-progress", "--seed", "1"]
FAST = [*TRAIN, "--freeze-backbone", "--mlp-width", "8", "--lr", "1e-2"]
SWEEP_BASE = {"benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 32, "epochs": 1,
              "max_train_examples": 48, "max_eval_examples": 24, "lr": 2e-3, "progress": False}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread) -> Path:
    """The undisturbed run of :data:`TRAIN`."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main([*TRAIN, "--output-dir", str(run)]) == 0
    return run


def _readable(run: Path) -> None:
    """Everything complete in a run folder reads back: JSON, safetensors, every log line."""
    for path in run.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    for path in run.rglob("*.safetensors"):
        load_file(str(path))
    if (run / "log.jsonl").exists():
        for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
            json.loads(line)


def _sweep_file(tmp_path: Path, seeds: tuple[int, ...], name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"base": SWEEP_BASE, "methods": [{"method": "ew"}], "seeds": list(seeds)}))
    return path


def _index(store: Path) -> list[str]:
    path = store / "index.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


# -- the writers themselves ---------------------------------------------------------------


def test_a_failed_write_names_the_file_and_the_cause_and_keeps_the_old_content(tmp_path, monkeypatch) -> None:
    path = tmp_path / "state.json"
    write_json(path, {"epoch": 1})
    with monkeypatch.context() as m:
        DiskFull(m, "state.json")
        with pytest.raises(WriteError) as caught:
            write_json(path, {"epoch": 2, "padding": "x" * 100})
    assert str(caught.value) == f"{path}: cannot write (disk full)"
    assert json.loads(path.read_text()) == {"epoch": 1} and not leftovers(tmp_path)
    with read_only(tmp_path), pytest.raises(WriteError, match="permission denied"):
        write_text(path, "{}")
    assert json.loads(path.read_text()) == {"epoch": 1}
    # safetensors and tokenizers report the OS error in their message
    with pytest.raises(WriteError, match="file too large for the file-size limit"):
        with writing(path):
            raise RuntimeError("Error while serializing: I/O error: File too large (os error 27)")
    with pytest.raises(RuntimeError, match="not an OS error"), writing(path):
        raise RuntimeError("not an OS error")
    assert describe_os_error(28) == "disk full" and describe_os_error(30) == "read-only file system"


# -- a disk that fills, at every write of a run ----------------------------------------------

#: (where the write goes, how many such files are written before the failing one, the file named)
RUN_WRITES = [
    ("config.yaml", 0, "config.yaml"),
    ("run.json", 0, "run.json"),
    ("log.jsonl", 1, "log.jsonl"),  # the second epoch's line
    ("checkpoint.tmp/state.json", 0, "checkpoint/state.json"),
    ("last.tmp/state.json", 1, "last/state.json"),  # the second epoch's state: the first one's stays
    ("predictions", 0, "predictions/val/"),
    ("results.json", 0, "results.json"),
]


@pytest.mark.parametrize(("target", "skip", "named"), RUN_WRITES, ids=[w[0] for w in RUN_WRITES])
def test_a_full_disk_at_any_write_of_a_run_is_one_line_and_resuming_gives_the_same_run(
        reference, tmp_path, monkeypatch, capsys, target, skip, named) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        full = DiskFull(m, target, skip)
        assert main([*TRAIN, "--output-dir", str(run)]) == 2
    assert full.hits == 1
    line = one_error_line(capsys.readouterr().err, f"{run / named}", "cannot write (disk full)")
    assert not leftovers(run) and not (run / "results.json").exists()
    _readable(run)
    if target == "last.tmp/state.json":  # the previous complete state is still there
        assert json.loads((run / "last" / "state.json").read_text())["epoch"] == 1
    if target == "config.yaml":  # nothing to resume yet: the same command starts again
        assert "run the same command again" in line and not any(run.iterdir())
        assert main([*TRAIN, "--output-dir", str(run)]) == 0
    else:
        assert line.endswith(f"resume with: infomtl train --resume {run}")
        assert main(["train", "--resume", str(run)]) == 0
    assert _outcome(run) == _outcome(reference)


def test_a_read_only_run_folder_is_one_line_and_the_run_resumes_once_writable(reference, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    with _crash_at(2), pytest.raises(Crash):
        main([*TRAIN, "--output-dir", str(run)])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    with read_only(run):
        assert main(["train", "--resume", str(run)]) == 2
    one_error_line(capsys.readouterr().err, str(run), "permission denied", "infomtl train --resume")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert main(["train", "--resume", str(run)]) == 0
    assert _outcome(run) == _outcome(reference)


# -- the sweep's plan and index -------------------------------------------------------------


@pytest.mark.parametrize("target", ["plan.json", "index.jsonl", "sweep.yaml"])
def test_a_full_disk_or_a_read_only_store_keeps_the_plan_and_the_index(tmp_path, monkeypatch, capsys, target):
    store = tmp_path / "store"
    assert main(["sweep", str(_sweep_file(tmp_path, (0,))), "--store", str(store)]) == 0
    plan, index = (store / "plan.json").read_bytes(), (store / "index.jsonl").read_bytes()
    grown = _sweep_file(tmp_path, (0, 1), "grown.yaml")
    capsys.readouterr()
    if target == "sweep.yaml":
        with read_only(store):
            assert main(["sweep", str(grown), "--store", str(store)]) == 2
        cause = "permission denied"
    else:
        with monkeypatch.context() as m:
            DiskFull(m, target)
            assert main(["sweep", str(grown), "--store", str(store)]) == 2
        cause = "disk full"
    one_error_line(capsys.readouterr().err, str(store / target), cause,
                   f"resume the sweep with: infomtl sweep {grown} --store {store}")
    if target != "index.jsonl":  # (a failed index line comes after the new run was planned)
        assert (store / "plan.json").read_bytes() == plan
    assert (store / "index.jsonl").read_bytes() == index
    assert not leftovers(store)
    assert main(["sweep", str(grown), "--store", str(store)]) == 0
    ids = sorted(json.loads((store / "plan.json").read_text()))
    assert len(ids) == 2 and sorted(_index(store)) == ids  # every run indexed once
    assert all((store / "runs" / rid / "results.json").is_file() for rid in ids)


# -- exports and the feature cache ------------------------------------------------------------


def test_an_export_that_cannot_be_written_leaves_no_folder(tiny_run, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "export"
    with monkeypatch.context() as m:
        DiskFull(m, "infomtl.json")
        assert main(["export", str(tiny_run), str(out)]) == 2
    one_error_line(capsys.readouterr().err, str(out / "infomtl.json"), "disk full")
    assert not out.exists() and not leftovers(tmp_path)
    with read_only(tmp_path):
        assert main(["export", str(tiny_run), str(out)]) == 2
    one_error_line(capsys.readouterr().err, str(out), "permission denied")
    assert main(["export", str(tiny_run), str(out)]) == 0
    assert load(out).predict(["a text"])


def test_a_read_only_feature_cache_warns_and_the_run_is_the_same(tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    assert main([*FAST, "--feature-cache", str(cache), "--output-dir", str(tmp_path / "cached")]) == 0
    for file in cache.glob("*.safetensors"):
        file.unlink()
    with read_only(cache):
        assert main([*FAST, "--feature-cache", str(cache), "--output-dir", str(tmp_path / "uncached")]) == 0
    assert not list(cache.glob("*.safetensors"))
    assert "features are kept in memory" in caplog.text and "permission denied" in caplog.text
    assert _outcome(tmp_path / "uncached") == _outcome(tmp_path / "cached")


# -- a file-size limit: the kernel refuses the write (EFBIG), whoever writes ---------------------


@pytest.mark.slow
def test_a_file_size_limit_at_each_kind_of_write(reference, tiny_run, tmp_path) -> None:
    run, fast, out, store, cache = (tmp_path / name for name in ("run", "fast", "export", "store", "cache"))
    sweep = _sweep_file(tmp_path, (0,))
    limit = 150_000  # over config, logs and tokenizer files; under the tiny model's weights
    got = with_file_size_limit([
        (limit, [*TRAIN, "--output-dir", str(run)]),
        (limit, ["export", str(tiny_run), str(out)]),
        (limit, ["sweep", str(sweep), "--store", str(store)]),
        (50_000, [*FAST, "--feature-cache", str(cache), "--output-dir", str(fast)]),  # under a split's features
    ])
    too_large = "cannot write (file too large for the file-size limit (ulimit -f))"
    # a run: its first checkpoint fails; what came before stays, and --resume finishes it
    assert got[0]["code"] == 2
    one_error_line(got[0]["stderr"], str(run / "checkpoint" / "model.safetensors"), too_large,
                   f"resume with: infomtl train --resume {run}")
    assert not leftovers(run) and (run / "config.yaml").is_file() and (run / "log.jsonl").is_file()
    _readable(run)
    assert main(["train", "--resume", str(run)]) == 0
    assert _outcome(run) == _outcome(reference)
    # an export: no folder at all, then a good one
    assert got[1]["code"] == 2
    one_error_line(got[1]["stderr"], str(out / "encoder"), too_large)
    assert not out.exists() and not leftovers(tmp_path)
    assert main(["export", str(tiny_run), str(out)]) == 0 and load(out).predict(["a text"])
    # a sweep: stops at the failed run with the command that resumes; nothing indexed
    assert got[2]["code"] == 2
    one_error_line(got[2]["stderr"], str(store / "runs"), too_large, f"infomtl sweep {sweep} --store {store}")
    assert _index(store) == [] and (store / "plan.json").is_file()
    assert main(["sweep", str(sweep), "--store", str(store)]) == 0
    (rid,) = json.loads((store / "plan.json").read_text())
    assert _index(store) == [rid] and (store / "runs" / rid / "results.json").is_file()
    # the feature cache: a warning, the run goes on with the same results as with a cache
    assert got[3]["code"] == 0, got[3]["stderr"]
    warned = [line for line in got[3]["stderr"].splitlines() if "features are kept in memory" in line]
    assert warned and all(str(cache) in line and "file too large" in line for line in warned)
    assert not leftovers(cache)  # the splits over the limit are not in the cache, the others are whole
    _readable(cache)
    assert main([*FAST, "--feature-cache", str(cache), "--output-dir", str(tmp_path / "cached")]) == 0
    assert _outcome(fast) == _outcome(tmp_path / "cached")
