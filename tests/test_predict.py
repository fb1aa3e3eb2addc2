"""Predictions of a trained run on new texts: the Python API and ``infomtl predict``."""

from __future__ import annotations

import io
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import infomtl
from fakes import small_config
from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.data.loading import prepare_data
from infomtl.errors import InfomtlError
from infomtl.inference.formats import read_inputs
from infomtl.inference.predict import forward_spans
from infomtl.inference.units import pair_modes
from infomtl.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    return train(small_config(out)).run_dir


@pytest.fixture(scope="module")
def predictor(run_dir):
    return infomtl.load(run_dir)


@pytest.fixture(scope="module")
def val_texts(run_dir) -> list[str]:
    data = prepare_data(small_config(run_dir))
    texts = data.splits[data.tasks[0].name]["val"].texts
    assert all(data.splits[t.name]["val"].texts == texts for t in data.tasks)
    return texts


def _run_labels(run_dir: Path, task: str) -> list[int]:
    return [int(x) for x in (run_dir / "predictions" / "val" / f"{task}.txt").read_text().split()]


def test_predictions_equal_the_runs_val_predictions(predictor, run_dir, val_texts) -> None:
    preds = predictor.predict(val_texts, batch_size=7)
    assert len(preds) == len(val_texts)
    for task in predictor.tasks:
        got = [task.labels.index(p[task.name]["label"]) for p in preds]
        assert got == _run_labels(run_dir, task.name), task.name
        for p in preds:
            probs = p[task.name]["probabilities"]
            assert list(probs) == list(task.labels)
            assert sum(probs.values()) == pytest.approx(1.0)
            assert p[task.name]["probability"] == max(probs.values())


def test_order_is_kept_whatever_the_lengths(predictor) -> None:
    rng = random.Random(0)
    words = "the food was great but the trip home took very long please answer soon".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 25))) for _ in range(40)]
    batched = predictor.predict(texts, batch_size=6)
    single = [predictor.predict([t])[0] for t in texts]
    for b, s in zip(batched, single, strict=True):
        assert b.keys() == s.keys()
        for name in b:
            assert b[name]["label"] == s[name]["label"]
            assert b[name]["probability"] == pytest.approx(s[name]["probability"], abs=1e-5)


def test_task_subset_and_errors(predictor) -> None:
    out = predictor.predict(["a text"], tasks=["topic"])
    assert list(out[0]) == ["topic"]
    assert predictor.predict([]) == []
    with pytest.raises(InfomtlError, match="unknown task.*nosuch.*sentiment"):
        predictor.predict(["a text"], tasks=["nosuch"])
    with pytest.raises(InfomtlError, match="2 texts but 1 pairs"):
        predictor.predict(["a", "b"], pairs=["x"])
    with pytest.raises(InfomtlError, match="batch size"):
        predictor.predict(["a"], batch_size=0)


def test_one_rule_for_inputs_a_list_of_non_empty_strings(predictor) -> None:
    # a bare string would otherwise be read as one text per character
    with pytest.raises(InfomtlError, match=r"^texts must be a list of strings, got a single str "
                                           r"\(predict one text with \[text\]\)$"):
        predictor.predict("hello world")
    with pytest.raises(InfomtlError, match="^pairs must be a list of strings, got a single str"):
        predictor.predict(["a"], pairs="joy")
    with pytest.raises(InfomtlError, match=r"^tasks must be a list of task names, got a single string "
                                           r"\(tasks=\['topic'\]\)$"):
        predictor.predict(["a"], tasks="topic")
    # empty texts are refused by index, as infomtl predict refuses them by line and POST /predict by index
    for texts, where in (([""], "texts[0]"), (["a text", " \t "], "texts[1]")):
        with pytest.raises(InfomtlError, match=rf"^{re.escape(where)} is empty \(every text needs a non-space"):
            predictor.predict(texts)
    with pytest.raises(InfomtlError, match=r"^texts\[1\] must be a string, got int$"):
        predictor.predict(["a", 3])
    with pytest.raises(InfomtlError, match=r"^pairs\[0\] must be a string, got NoneType$"):
        predictor.predict(["a"], pairs=[None])
    assert predictor.predict(("a text",)) == predictor.predict(["a text"])  # any sequence of strings
    assert predictor.predict(["a text"], pairs=[""])  # an empty pair is a pair left out


def test_forward_spans_keep_rows_and_padded_tokens_under_their_limits() -> None:
    lengths = np.array([3, 4, 4, 10, 11, 30])
    assert forward_spans(lengths, 4) == [(0, 4), (4, 6)]
    # budget 20: 3,4,4 -> 3 x 4 = 12 (a 4th row: 4 x 10 = 40); 10 (2 x 11 = 22 > 20); 11; 30 alone
    assert forward_spans(lengths, 64, max_tokens=20) == [(0, 3), (3, 4), (4, 5), (5, 6)]
    assert forward_spans(lengths, 2, max_tokens=100) == [(0, 2), (2, 4), (4, 6)]
    assert forward_spans(np.array([], dtype=np.int64), 8, 8) == []


def test_a_token_budget_changes_the_forward_passes_not_the_predictions(predictor) -> None:
    rng = random.Random(1)
    words = "the food was great but the trip home took very long please answer soon".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(24)]
    plain = predictor.predict(texts)
    budget = predictor.predict(texts, max_tokens=64)
    for a, b in zip(plain, budget, strict=True):
        for name in a:
            assert a[name]["label"] == b[name]["label"]
            assert a[name]["probability"] == pytest.approx(b[name]["probability"], abs=1e-6)
    with pytest.raises(InfomtlError, match="max_tokens must be at least 1"):
        predictor.predict(texts, max_tokens=0)


def test_shape_steps_change_the_forward_shapes_not_the_predictions(run_dir, monkeypatch) -> None:
    """Under bf16 the forward passes come in few shapes (widths a multiple of the step, rows
    filled up); padding is masked, so the predictions are those of exact shapes."""
    from infomtl.inference import predict as predict_module

    rng = random.Random(2)
    words = "the food was great but the trip home took very long please answer soon".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(23)]
    exact, stepped = infomtl.load(run_dir, precision="fp32"), infomtl.load(run_dir, precision="fp32")
    stepped.shape_step = 8
    shapes: list[tuple[int, ...]] = []
    model = stepped.units[0].model
    handle = model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        got = stepped.predict(texts, batch_size=10)
    finally:
        handle.remove()
    for a, b in zip(exact.predict(texts, batch_size=10), got, strict=True):
        for name in a:
            assert a[name]["label"] == b[name]["label"]
            assert a[name]["probability"] == pytest.approx(b[name]["probability"], abs=1e-5)
    assert shapes and all(w % 8 == 0 for _, w in shapes) and all(r % 4 == 0 for r, _ in shapes if r >= 4)
    assert predict_module.BF16_SHAPE_STEP > 0
    monkeypatch.setattr(predict_module, "cpu_has_bf16", lambda: True)
    assert infomtl.load(run_dir, precision="bf16").shape_step == predict_module.BF16_SHAPE_STEP


def test_a_task_trained_on_pairs_needs_them(run_dir) -> None:
    pred = infomtl.load(run_dir)
    pred.units[0].pair_modes["sentiment"] = "first"
    with pytest.raises(InfomtlError, match="task sentiment was trained on text pairs"):
        pred.predict(["a text"])
    out = pred.predict(["a text", "another"], pairs=["joy", "anger"])
    assert {"sentiment", "topic", "urgency"} == set(out[0])
    # the other tasks ignore the pair
    plain = pred.predict(["a text", "another"], tasks=["topic"])
    assert plain[0]["topic"] == out[0]["topic"]


def test_pair_modes_from_thesmall_config() -> None:
    from infomtl.tasks import Task

    tasks = [Task("ei_reg", "regression"), Task("emobank", "regression", targets=("V", "A", "D"))]
    cfg = TrainConfig(benchmark="affecteval")
    assert pair_modes(cfg, tasks) == {"ei_reg": "first", "emobank": "none"}
    cfg = TrainConfig(benchmark="affecteval", ei_reg_pair="none")
    assert pair_modes(cfg, tasks) == {"ei_reg": "none", "emobank": "none"}


def test_regression_and_multilabel_outputs() -> None:
    import torch

    from infomtl.inference.predict import _format
    from infomtl.tasks import Task

    reg = _format(Task("r", "regression"), torch.tensor([0.25]).numpy())
    assert reg == {"value": pytest.approx(0.25)}
    vad = _format(Task("v", "regression", targets=("V", "A", "D")), np.array([1.0, 2.0, 3.0]))
    assert vad == {"values": {"V": 1.0, "A": 2.0, "D": 3.0}}
    ml = _format(Task("m", "multilabel", labels=("a", "b", "c")), np.array([2.0, -2.0, 0.1]))
    assert ml["labels"] == ["a", "c"]
    assert ml["probabilities"]["b"] == pytest.approx(1 / (1 + np.exp(2.0)))


def test_load_refuses_other_folders(tmp_path) -> None:
    with pytest.raises(InfomtlError, match="no such run or export folder"):
        infomtl.load(tmp_path / "missing")
    with pytest.raises(InfomtlError, match="not a run folder"):
        infomtl.load(tmp_path)


# -- input parsing --------------------------------------------------------------------


def test_read_inputs_formats(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo words\n", encoding="utf-8")
    assert read_inputs(str(tmp_path / "a.txt")) == (["one", "two words"], None)
    (tmp_path / "a.jsonl").write_text('{"text": "x", "text_pair": "joy"}\n{"text": "y"}\n', encoding="utf-8")
    assert read_inputs(str(tmp_path / "a.jsonl")) == (["x", "y"], ["joy", ""])
    (tmp_path / "a.tsv").write_text("text\ttext_pair\nx\tjoy\ny\tfear\n", encoding="utf-8")
    assert read_inputs(str(tmp_path / "a.tsv")) == (["x", "y"], ["joy", "fear"])
    (tmp_path / "b.tsv").write_text("x\ny\n", encoding="utf-8")
    assert read_inputs(str(tmp_path / "b.tsv")) == (["x", "y"], None)
    assert read_inputs(str(tmp_path / "a.txt"), "text") == (["one", "two words"], None)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.txt", "one\n\nthree\n", r"a\.txt:2: empty text"),
        ("a.jsonl", '{"text": "x"}\n{"text": \n', r"a\.jsonl:2: not valid JSON"),
        ("a.jsonl", '{"text": "x"}\n{"label": 1}\n', r"a\.jsonl:2: expected a JSON object"),
        ("a.tsv", "text\nx\n\t\n", r"a\.tsv:3: empty text"),
        ("a.txt", "", r"a\.txt: no texts"),
    ],
)
def test_bad_input_names_the_line(tmp_path, name, content, message) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InfomtlError, match=message):
        read_inputs(str(tmp_path / name))


# -- the command ------------------------------------------------------------------------


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))


def test_cli_predict_file_and_stdin_in_every_format(run_dir, predictor, tmp_path, capsys, monkeypatch) -> None:
    texts = ["the food was great", "please answer soon", "a long trip home"]
    expected = predictor.predict(texts)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    (tmp_path / "in.tsv").write_text("text\n" + "".join(t + "\n" for t in texts), encoding="utf-8")
    for name in ("in.txt", "in.jsonl", "in.tsv"):
        assert main(["predict", str(run_dir), "--input", str(tmp_path / name)]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["text"] for r in rows] == texts
        assert [r["predictions"] for r in rows] == expected
    for fmt, name in (("text", "in.txt"), ("jsonl", "in.jsonl"), ("tsv", "in.tsv")):
        _stdin(monkeypatch, (tmp_path / name).read_text(encoding="utf-8"))
        assert main(["predict", str(run_dir), "--input", "-", "--input-format", fmt]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["predictions"] for r in rows] == expected, fmt


def test_cli_predict_tsv_output_tasks_and_output_file(run_dir, predictor, tmp_path, capsys) -> None:
    texts = ["the food was great", "please answer soon"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.tsv"
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "in.txt"), "--tasks", "topic,urgency",
                 "--output-format", "tsv", "--output", str(out), "--batch-size", "1"]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["text", "topic", "topic_probability", "urgency", "urgency_probability"]
    expected = predictor.predict(texts, tasks=["topic", "urgency"])
    for line, text, pred in zip(lines[1:], texts, expected, strict=True):
        cells = line.split("\t")
        assert cells[0] == text and cells[1] == pred["topic"]["label"] and cells[3] == pred["urgency"]["label"]
        assert float(cells[2]) == pytest.approx(pred["topic"]["probability"], abs=1e-6)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("one\n\nthree\n", [], r"in\.txt:2: empty text"),
        ("one\n", ["--tasks", "nosuch"], "unknown task"),
    ],
)
def test_cli_predict_errors_are_one_line(run_dir, tmp_path, capsys, content, args, message) -> None:
    (tmp_path / "in.txt").write_text(content, encoding="utf-8")
    assert main(["predict", str(run_dir), "--input", str(tmp_path / "in.txt"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err)


def test_cli_predict_bad_json_on_stdin(run_dir, capsys, monkeypatch) -> None:
    _stdin(monkeypatch, '{"text": "ok"}\nnot json\n')
    assert main(["predict", str(run_dir), "--input", "-", "--input-format", "jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: <stdin>:2: not valid JSON") and err.count("\n") == 1


# -- the documented example (docs/inference.md) ----------------------------------------------


def test_docs_python_example_runs(run_dir, capsys) -> None:
    page = (REPO / "docs" / "inference.md").read_text(encoding="utf-8")
    section = page.split("## From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'RUN_DIR = "runs/demo/ew"' in code
    code = code.replace('RUN_DIR = "runs/demo/ew"', f"RUN_DIR = {str(run_dir)!r}")
    exec(compile(code, "docs/inference.md", "exec"), {})
    out = capsys.readouterr().out
    assert "sentiment" in out and "topic" in out
