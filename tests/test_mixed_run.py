"""A run mixing a built-in task, a task folder (with text pairs) and a Hugging Face dataset,
end to end through the CLI: run.json, results, evaluate, export, predict, STL and a sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import infomtl
from infomtl.cli import main
from infomtl.fileio import read_json

pytestmark = pytest.mark.usefixtures("one_thread")
datasets = pytest.importorskip("datasets")

SMALL = ["--backbone", "tiny", "--max-length", "32", "--batch-size", "16", "--epochs", "1", "--max-steps", "2",
         "--max-train-examples", "32", "--max-eval-examples", "12", "--no-progress"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sources")
    pairs = root / "pairs"
    pairs.mkdir()
    rows = [{"text": f"claim {i}", "text_pair": "yes" if i % 2 else "no", "label": "agree" if i % 2 else "disagree"}
            for i in range(24)]
    for split in ("train", "val", "test"):
        (pairs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["short", "long"])})
    texts = [("word " * (1 + i % 6)).strip() for i in range(24)]
    part = datasets.Dataset.from_dict({"text": texts, "label": [int(len(t) > 12) for t in texts]}, features=features)
    datasets.DatasetDict({"train": part, "validation": part, "test": part}).save_to_disk(str(root / "length"))
    return {"pairs": str(pairs), "hf": f"dataset={root / 'length'},name=length"}


@pytest.fixture(scope="module")
def mixed_run(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mixed") / "run"
    argv = ["train", *SMALL, "--benchmark", "synthetic", "--tasks", "topic", "--task-dirs", sources["pairs"],
            "--hf-task", sources["hf"], "--output-dir", str(out)]
    assert main(argv) == 0
    return out


def test_run_records_each_task_source_and_pair_mode(mixed_run: Path, sources) -> None:
    meta = read_json(mixed_run / "run.json")
    assert [t["name"] for t in meta["tasks"]] == ["topic", "pairs", "length"]
    assert meta["sources"] == {"topic": "synthetic", "pairs": f"folder:{sources['pairs']}",
                               "length": f"hf:{sources['hf'].split(',')[0][len('dataset='):]}"}
    assert meta["pairs"] == {"topic": "none", "pairs": "second", "length": "none"}
    results = read_json(mixed_run / "results.json")
    assert results["benchmark"] == "synthetic+folders"
    assert set(results["test"]["tasks"]) == {"topic", "pairs", "length"}


def test_evaluate_export_and_predict_a_mixed_run(mixed_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(mixed_run), "--split", "val"]) == 0
    assert "length" in capsys.readouterr().out
    export = tmp_path / "export"
    assert main(["export", str(mixed_run), str(export)]) == 0
    manifest = read_json(export / "infomtl.json")
    assert manifest["pairs"] == {"topic": "none", "pairs": "second", "length": "none"}
    texts, pairs = ["claim 3", "word word"], ["yes", "no"]
    from_run = infomtl.load(mixed_run).predict(texts, pairs=pairs)
    from_export = infomtl.load(export).predict(texts, pairs=pairs)
    assert [{t: p["label"] for t, p in row.items()} for row in from_run] == [
        {t: p["label"] for t, p in row.items()} for row in from_export]
    assert set(from_run[0]) == {"topic", "pairs", "length"}


def test_stl_on_mixed_sources_trains_each_task_from_its_own_source(sources, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "stl"
    argv = ["train", *SMALL, "--method", "stl", "--benchmark", "synthetic", "--tasks", "affecteval:emobank",
            "--task-dirs", sources["pairs"], "--data-dir", str(data_root), "--output-dir", str(out)]
    assert main(argv) == 0
    for name, source in (("emobank", "affecteval"), ("pairs", f"folder:{sources['pairs']}")):
        meta = read_json(out / name / "run.json")
        assert [t["name"] for t in meta["tasks"]] == [name] and meta["sources"] == {name: source}
    assert read_json(out / "results.json")["benchmark"] == "affecteval+folders"


def test_a_sweep_over_mixed_sources_reports_its_tasks(sources, tmp_path: Path, capsys) -> None:
    import yaml

    base = {"benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 16, "epochs": 1,
            "max_steps": 2, "max_train_examples": 32, "max_eval_examples": 12, "progress": False,
            "tasks": ["topic", sources["pairs"]]}
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": base, "methods": [{"method": "ew"}], "seeds": [0],
                                     "task_sets": ["all", ["topic"]]}), encoding="utf-8")
    store = tmp_path / "store"
    assert main(["sweep", str(sweep), "--store", str(store)]) == 0
    runs = [json.loads(line) for line in (store / "index.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(runs) == 2
    tasks = {tuple(t["name"] for t in read_json(store / "runs" / r["id"] / "run.json")["tasks"]) for r in runs}
    assert tasks == {("topic", "pairs"), ("topic",)}
    assert main(["report", str(store), "--no-plots"]) == 0
    report = capsys.readouterr().out
    assert "pairs" in report and "topic" in report
