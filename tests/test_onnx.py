"""``infomtl export --format onnx``: one ONNX graph per model, run with onnxruntime by
``infomtl.load`` / ``infomtl predict``, outputs equal to the PyTorch model's."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import infomtl
from fakes import small_config
from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.errors import InfomtlError
from infomtl.inference.export import MANIFEST, load_export_units, sha256_file
from infomtl.inference.onnx_export import export_onnx
from infomtl.inference.units import ModelUnit, unit_from_run
from infomtl.tasks import TaskKind
from infomtl.training import train

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.usefixtures("one_thread")

#: Texts of 3 to 30 tokens for the tiny backbone ("a": [CLS] a [SEP], shorter than TextCNN's kernels).
TEXTS = ["a", "the food was great and the service even better, we will come back next week",
         "red blue", "sad slow day", "happy happy fast big loud", "calm", "what a loud big red day"]
WORDS = ["red", "blue", "happy", "sad", "fast", "slow", "big", "loud"]


@pytest.fixture(scope="module")
def kind_dirs(tmp_path_factory) -> list[Path]:
    """Task folders of every kind: topic (classification), mood (regression), vad (3
    regression targets), tags (multi-label), labels computed from the words."""
    root = tmp_path_factory.mktemp("onnx-kinds")
    rng = np.random.default_rng(0)
    rows = [[str(w) for w in rng.choice(WORDS, size=rng.integers(1, 7))] for _ in range(64)]
    label = {
        "topic": lambda w: WORDS.index(w[0]) % 3,
        "mood": lambda w: float(w.count("happy") - w.count("sad")),
        "vad": lambda w: [float(w.count("fast")), float(w.count("big")), float(len(w))],
        "tags": lambda w: sorted({"colour" if x in ("red", "blue") else "other" for x in w}),
    }
    yaml = {"mood": "kind: regression\n", "vad": "kind: regression\ntargets: [V, A, D]\n",
            "tags": "kind: multilabel\nlabels: [colour, other]\n"}
    for name, fn in label.items():
        folder = root / name
        folder.mkdir()
        if name in yaml:
            (folder / "task.yaml").write_text(yaml[name], encoding="utf-8")
        key = "labels" if name == "tags" else "label"
        for split, part in (("train", rows[:40]), ("val", rows[40:52]), ("test", rows[52:])):
            lines = [json.dumps({"text": " ".join(w), key: fn(w)}) for w in part]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [root / name for name in label]


@pytest.fixture(scope="module")
def kinds_run(kind_dirs, tmp_path_factory) -> Path:
    """VIP-MTL in fast mode (a shared MLP above the frozen encoder) on the four kinds."""
    out = tmp_path_factory.mktemp("onnx-kinds-run")
    config = TrainConfig(task_dirs=[str(p) for p in kind_dirs], backbone="tiny", max_length=32, batch_size=16,
                         epochs=1, max_steps=4, lr=1e-3, progress=False, method="vipmtl", freeze_backbone=True,
                         mlp_width=24, feature_cache=str(out / "features"), output_dir=str(out / "run"))
    return train(config).run_dir


@pytest.fixture(scope="module")
def kinds_onnx(kinds_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx-kinds-export") / "model"
    assert main(["export", str(kinds_run), str(out), "--format", "onnx"]) == 0
    return out


def _batch(unit: ModelUnit, texts: list[str]) -> Batch:
    enc = unit.tokenizer(texts, padding=True, truncation=True, max_length=unit.max_length, return_tensors="pt")
    return Batch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                 token_type_ids=enc.get("token_type_ids"), labels={},
                 rows={t: torch.arange(len(texts)) for t in range(len(unit.tasks))},
                 lengths=enc["attention_mask"].sum(1).numpy())


def _gaps(run_dir: Path, export: Path, texts: list[str]) -> dict[str, float]:
    """Per task: the largest difference between the ONNX graph's and the PyTorch model's output."""
    torch_unit, [onnx_unit] = unit_from_run(run_dir), load_export_units(export)
    assert [t.name for t in onnx_unit.tasks] == [t.name for t in torch_unit.tasks]
    batch = _batch(torch_unit, texts)
    assert batch.attention_mask.shape[0] == len(texts)
    with torch.no_grad():
        expected = torch_unit.model(batch).heads
    got = onnx_unit.model(batch).heads
    gaps = {}
    for t, task in enumerate(torch_unit.tasks):
        assert got[t].mean.shape == expected[t].mean.shape == (len(texts), task.num_outputs)
        gaps[task.name] = float((got[t].mean - expected[t].mean.float()).abs().max())
    return gaps


def test_onnx_export_layout_and_manifest(kinds_onnx) -> None:
    import onnx

    for name in ("model.onnx", "model.onnx.data", "tokenizer/tokenizer.json", MANIFEST, "README.md",
                 "training-config.yaml"):
        assert (kinds_onnx / name).is_file(), name
    assert not (kinds_onnx / "encoder").exists() and not (kinds_onnx / "heads.safetensors").exists()
    manifest = json.loads((kinds_onnx / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["model_format"] == "onnx" and manifest["format_version"] == 1
    assert manifest["onnx"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["onnx"]["outputs"] == {"topic": "topic", "mood": "mood", "vad": "vad", "tags": "tags"}
    assert manifest["files"]["model.onnx"] == sha256_file(kinds_onnx / "model.onnx")
    model = onnx.load(str(kinds_onnx / "model.onnx"), load_external_data=False)
    for value in model.graph.input:  # both axes symbolic (dynamic), not fixed sizes
        dims = value.type.tensor_type.shape.dim
        assert len(dims) == 2 and all(d.dim_param and not d.dim_value for d in dims), value.name
    assert [o.name for o in model.graph.output] == ["topic", "mood", "vad", "tags"]


def test_onnx_outputs_equal_pytorch_for_every_task_kind(kinds_run, kinds_onnx) -> None:
    kinds = [t.kind for t in unit_from_run(kinds_run).tasks]
    assert kinds == [TaskKind.CLASSIFICATION, TaskKind.REGRESSION, TaskKind.REGRESSION, TaskKind.MULTILABEL]
    gaps = _gaps(kinds_run, kinds_onnx, TEXTS)  # 7 rows of 3 to 30 tokens: padding
    assert max(gaps.values()) <= 1e-4, gaps


@pytest.mark.parametrize("texts", [TEXTS[1:2], TEXTS[:1], (TEXTS * 2)[3:10], [" ".join(["red"] * 40)]],
                         ids=["batch-1-long", "batch-1-short", "batch-7", "truncated"])
def test_onnx_axes_are_dynamic(kinds_run, kinds_onnx, texts) -> None:
    assert max(_gaps(kinds_run, kinds_onnx, texts).values()) <= 1e-4


def test_cli_predict_on_the_onnx_folder_equals_the_run_folder(kinds_run, kinds_onnx, tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    rows = {}
    for name, folder in (("run", kinds_run), ("onnx", kinds_onnx)):
        assert main(["predict", str(folder), "--input", str(tmp_path / "in.txt"), "--batch-size", "3"]) == 0
        rows[name] = [json.loads(line)["predictions"] for line in capsys.readouterr().out.splitlines()]
    assert len(rows["onnx"]) == len(TEXTS)
    for a, b in zip(rows["onnx"], rows["run"], strict=True):
        assert a["topic"]["label"] == b["topic"]["label"]
        assert a["topic"]["probability"] == pytest.approx(b["topic"]["probability"], abs=1e-5)
        assert a["tags"]["labels"] == b["tags"]["labels"]
        assert a["mood"]["value"] == pytest.approx(b["mood"]["value"], abs=1e-4)
        assert list(a["vad"]["values"]) == ["V", "A", "D"]
        assert a["vad"]["values"] == pytest.approx(b["vad"]["values"], abs=1e-4)


def test_an_onnx_export_runs_on_the_cpu_only(kinds_onnx) -> None:
    with pytest.raises(InfomtlError, match="an ONNX export runs on the CPU"):
        infomtl.load(kinds_onnx, device="meta")


def test_missing_onnx_packages_name_the_extra(kinds_run, kinds_onnx, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with pytest.raises(InfomtlError, match=r'needs the Python package onnxruntime: pip install "infomtl\[onnx\]"'):
        infomtl.load(kinds_onnx)
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # the exporter needs it, loading does not
    assert main(["export", str(kinds_run), str(tmp_path / "out"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: infomtl export --format onnx needs the Python package onnxscript: "
                   'pip install "infomtl[onnx]"\n')
    assert not (tmp_path / "out").exists()


def test_a_tampered_or_corrupt_graph_is_a_one_line_error(kinds_onnx, tmp_path, capsys) -> None:
    bad = Path(shutil.copytree(kinds_onnx, tmp_path / "bad"))
    graph, texts = bad / "model.onnx", tmp_path / "in.txt"
    texts.write_text("a text\n", encoding="utf-8")
    manifest = json.loads((bad / MANIFEST).read_text(encoding="utf-8"))

    def predict_error(content: bytes, rewrite_checksum: bool) -> str:
        graph.write_bytes(content)
        manifest["files"]["model.onnx"] = sha256_file(graph) if rewrite_checksum else "0" * 64
        (bad / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        assert main(["predict", str(bad), "--input", str(texts)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        return err

    original = graph.read_bytes()
    renamed = original.replace(b"topic", b"tOpic")  # every use of the output's name: a valid graph
    assert renamed != original
    assert predict_error(renamed, False) == f"error: {graph}: checksum mismatch (file changed or truncated)\n"
    assert f"{graph}: no graph output for task(s) topic" in predict_error(renamed, True)
    assert f"{graph}: not a valid ONNX model (" in predict_error(original[:4000], True)
    manifest["model_format"] = "tflite"
    assert "unknown model_format 'tflite'" in predict_error(original, True)


def test_textcnn_heads_on_rows_shorter_than_their_kernels(tmp_path) -> None:
    run = train(small_config(tmp_path / "cnn", method="textcnn", max_steps=2)).run_dir
    out = export_onnx(run, tmp_path / "cnn-onnx")
    assert max(_gaps(run, out, TEXTS).values()) <= 1e-4  # "a": 3 tokens, kernels up to 5
    assert max(_gaps(run, out, ["a", "b"]).values()) <= 1e-4  # every row shorter than the kernels


def test_stl_run_exports_one_graph_per_task(tmp_path) -> None:
    tasks = ["sentiment", "topic"]
    run = train(small_config(tmp_path / "stl", method="stl", tasks=tasks, max_steps=2)).run_dir
    out = export_onnx(run, tmp_path / "stl-onnx")
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["model_format"] == "onnx" and manifest["parts"] == {t: t for t in tasks}
    assert all((out / t / "model.onnx").is_file() for t in tasks)
    a, b = infomtl.load(out).predict(TEXTS), infomtl.load(run).predict(TEXTS)
    assert [{k: v["label"] for k, v in p.items()} for p in a] == [{k: v["label"] for k, v in p.items()} for p in b]
    for x, y in zip(a, b, strict=True):
        for name in tasks:
            assert x[name]["probabilities"] == pytest.approx(y[name]["probabilities"], abs=1e-5)


@pytest.mark.parametrize("sharing", [{"share": "cross-stitch", "share_layers": 1}, {"share": "layer-mix"}],
                         ids=["cross-stitch", "layer-mix"])
def test_a_run_that_learns_to_share_exports_a_graph_with_its_units(tmp_path, sharing) -> None:
    run = train(small_config(tmp_path / "share", tasks=["sentiment", "topic"], max_steps=2, **sharing)).run_dir
    out = export_onnx(run, tmp_path / "share-onnx")
    assert max(_gaps(run, out, TEXTS).values()) <= 1e-4
