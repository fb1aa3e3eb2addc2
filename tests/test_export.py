"""``infomtl export``: a self-contained folder that loads without the run, checked on load."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import infomtl
from fakes import small_config
from infomtl.cli import main
from infomtl.data.loading import prepare_data
from infomtl.errors import InfomtlError
from infomtl.inference.export import MANIFEST, export_run, sha256_file
from infomtl.training import train

pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    return train(small_config(out, method="infomtl")).run_dir


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    return export_run(run_dir, tmp_path_factory.mktemp("exported") / "model")


@pytest.fixture(scope="module")
def val_texts(run_dir) -> list[str]:
    data = prepare_data(small_config(run_dir))
    return data.splits[data.tasks[0].name]["val"].texts


def _labels(run_dir: Path, task: str) -> list[int]:
    return [int(x) for x in (run_dir / "predictions" / "val" / f"{task}.txt").read_text().split()]


def test_export_layout_and_manifest(exported) -> None:
    for name in ("encoder/config.json", "encoder/model.safetensors", "encoder/tokenizer.json",
                 "heads.safetensors", MANIFEST, "README.md", "training-config.yaml"):
        assert (exported / name).is_file(), name
    manifest = json.loads((exported / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format_version"] == 1
    assert [t["name"] for t in manifest["tasks"]] == ["sentiment", "topic", "urgency"]
    assert manifest["method"]["objective"] == "infomtl"
    assert manifest["pairs"] == {"sentiment": "none", "topic": "none", "urgency": "none"}
    assert set(manifest["files"]) >= {"heads.safetensors", "encoder/model.safetensors", "README.md"}
    assert manifest["files"]["heads.safetensors"] == sha256_file(exported / "heads.safetensors")
    assert not list(exported.parent.glob("*.tmp-export"))


def test_export_predicts_like_the_run_without_pickle(run_dir, exported, val_texts, monkeypatch) -> None:
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    from_export = infomtl.load(exported)
    monkeypatch.undo()
    from_run = infomtl.load(run_dir)
    a = from_export.predict(val_texts)
    b = from_run.predict(val_texts)
    for task in from_export.tasks:
        assert [task.labels.index(p[task.name]["label"]) for p in a] == _labels(run_dir, task.name)
    for x, y in zip(a, b, strict=True):
        for name in x:
            assert x[name]["label"] == y[name]["label"]
            assert x[name]["probability"] == pytest.approx(y[name]["probability"], abs=1e-6)


def test_model_card_has_metrics_and_command(run_dir, exported) -> None:
    card = (exported / "README.md").read_text(encoding="utf-8")
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert f"{results['test']['avg']:.2f}" in card and f"{results['val']['avg']:.2f}" in card
    sentiment = results["test"]["tasks"]["sentiment"]["macro_f1"]
    assert f"| test  | sentiment | macro_f1 | {sentiment:5.2f} |" in card
    assert "infomtl train --config training-config.yaml" in card
    assert "--method infomtl" in card and "--benchmark synthetic" in card
    assert "negative, neutral, positive" in card


def test_export_refuses_a_non_empty_folder(run_dir, tmp_path, capsys) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    assert main(["export", str(run_dir), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and err.count("\n") == 1
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "new")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def _copy(exported: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(exported, dest)
    return dest


def test_a_flipped_byte_is_a_checksum_error(exported, tmp_path, capsys) -> None:
    bad = _copy(exported, tmp_path / "bad")
    heads = bad / "heads.safetensors"
    data = bytearray(heads.read_bytes())
    data[len(data) // 2] ^= 0xFF
    heads.write_bytes(bytes(data))
    (tmp_path / "in.txt").write_text("a text\n", encoding="utf-8")
    assert main(["predict", str(bad), "--input", str(tmp_path / "in.txt")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {heads}: checksum mismatch (file changed or truncated)\n"


def test_a_truncated_file_is_a_clear_error(exported, tmp_path) -> None:
    bad = _copy(exported, tmp_path / "trunc")
    weights = bad / "encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(InfomtlError, match="model.safetensors: checksum mismatch"):
        infomtl.load(bad)
    # even with the checksum rewritten, the truncated safetensors file is refused cleanly
    manifest = json.loads((bad / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"]["encoder/model.safetensors"] = sha256_file(weights)
    (bad / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InfomtlError, match="unreadable or truncated weights"):
        infomtl.load(bad)


def test_missing_or_broken_manifest(exported, tmp_path) -> None:
    bad = _copy(exported, tmp_path / "nomanifest")
    (bad / "README.md").unlink()
    with pytest.raises(InfomtlError, match="README.md: missing from the export"):
        infomtl.load(bad)
    (bad / MANIFEST).write_text('{"format": "infomtl-export", "format_', encoding="utf-8")
    with pytest.raises(InfomtlError, match="not valid JSON"):
        infomtl.load(bad)


def test_cli_export_then_predict(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "cli-export"
    assert main(["export", str(run_dir), str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    (tmp_path / "in.txt").write_text("the food was great\n", encoding="utf-8")
    assert main(["predict", str(out), "--input", str(tmp_path / "in.txt"), "--tasks", "topic"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert list(row["predictions"]) == ["topic"]


def test_stl_run_predicts_and_exports(tmp_path) -> None:
    run = train(small_config(tmp_path / "stl", method="stl", tasks=["sentiment", "topic"], max_steps=2)).run_dir
    texts = prepare_data(small_config(run, tasks=["sentiment", "topic"])).splits["sentiment"]["val"].texts
    predictor = infomtl.load(run)
    assert predictor.task_names == ["sentiment", "topic"]
    preds = predictor.predict(texts)
    for task in predictor.tasks:
        got = [task.labels.index(p[task.name]["label"]) for p in preds]
        assert got == _labels(run / task.name, task.name)
    out = export_run(run, tmp_path / "stl-export")
    assert (out / "sentiment" / MANIFEST).is_file() and (out / "README.md").is_file()
    again = infomtl.load(out).predict(texts)
    assert [{k: v["label"] for k, v in p.items()} for p in again] == [
        {k: v["label"] for k, v in p.items()} for p in preds
    ]
