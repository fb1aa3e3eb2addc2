"""Generic task-folder reader: JSONL/TSV splits, task.yaml, label inference, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infomtl.data.folder import load_task_folder, load_task_folders
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import TaskKind


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cls_folder(root: Path, name: str = "review", test: bool = True) -> Path:
    folder = root / name
    write_jsonl(folder / "train.jsonl", [
        {"text": "good film", "label": "pos"},
        {"text": " bad film ", "label": "neg"},
        {"text": "fine film", "label": "pos"},
    ])
    write_jsonl(folder / "val.jsonl", [{"text": "great", "label": "pos"}, {"text": "awful", "label": "neg"}])
    if test:
        write_jsonl(folder / "test.jsonl", [{"text": "meh", "label": "neg"}])
    return folder


def error_of(folder: Path) -> str:
    with pytest.raises(DataError) as info:
        load_task_folder(folder)
    return str(info.value)


# --------------------------------------------------------------------------- reading


def test_jsonl_classification_infers_sorted_label_names(tmp_path: Path) -> None:
    task, data = load_task_folder(cls_folder(tmp_path))
    assert task.name == "review" and task.kind is TaskKind.CLASSIFICATION
    assert task.labels == ("neg", "pos")
    assert [m.fn for m in task.metrics] == ["macro_f1"]
    assert data["train"].texts == ["good film", "bad film", "fine film"]
    assert data["train"].labels.tolist() == [1, 0, 1]
    assert data["train"].labels.dtype == np.int64
    assert set(data) == {"train", "val", "test"}
    assert data["val"].source.endswith("val.jsonl")


def test_integer_labels_are_inferred_as_ids(tmp_path: Path) -> None:
    folder = tmp_path / "ids"
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 2}])
    write_jsonl(folder / "val.jsonl", [{"text": "c", "label": 1}])
    task, data = load_task_folder(folder)
    assert task.labels == ("0", "1", "2")
    assert data["val"].labels.tolist() == [1]


def test_task_yaml_sets_name_labels_metrics_and_threshold(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", "\n".join([
        "name: polarity",
        "labels: [pos, neg]",
        "description: movie reviews",
        "metrics:",
        "  - accuracy",
        "  - {name: f1_neg, fn: macro_f1, labels: [neg], official: false}",
    ]))
    task, data = load_task_folder(folder)
    assert task.name == "polarity" and task.labels == ("pos", "neg")
    assert task.description == "movie reviews"
    assert [(m.name, m.fn, m.labels, m.official) for m in task.metrics] == [
        ("accuracy", "accuracy", (), True), ("f1_neg", "macro_f1", ("neg",), False),
    ]
    assert data["train"].labels.tolist() == [0, 1, 0]


def test_yaml_labels_accept_integer_ids_in_rows(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    write(folder / "task.yaml", "labels: [neg, pos]\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "neg"}])
    write(folder / "dev.tsv", "c\t1\n")
    _, data = load_task_folder(folder)
    assert data["train"].labels.tolist() == [1, 0]
    assert data["val"].labels.tolist() == [1]


def test_dev_is_an_alias_of_val_and_test_is_optional(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path, test=False)
    (folder / "val.jsonl").rename(folder / "dev.jsonl")
    _, data = load_task_folder(folder)
    assert set(data) == {"train", "val"}
    assert len(data["val"]) == 2


def test_tsv_with_and_without_header(tmp_path: Path) -> None:
    folder = tmp_path / "tsv"
    write(folder / "train.tsv", "text\tlabel\nhello there\tyes\nbye now\tno\n")
    write(folder / "val.tsv", "ok then\tyes\n\n")
    task, data = load_task_folder(folder)
    assert task.labels == ("no", "yes")
    assert data["train"].texts == ["hello there", "bye now"]
    assert data["val"].labels.tolist() == [1]


def test_text_pairs_from_jsonl_and_tsv(tmp_path: Path) -> None:
    folder = tmp_path / "nli"
    write_jsonl(folder / "train.jsonl", [
        {"text": "a man sleeps", "text_pair": "a person rests", "label": "yes"},
        {"text": "a dog barks", "text_pair": "a cat sleeps", "label": "no"},
    ])
    write(folder / "val.tsv", "text\tlabel\ttext_pair\nx y\tno\tz w\n")
    _, data = load_task_folder(folder)
    assert data["train"].pairs == ["a person rests", "a cat sleeps"]
    assert data["val"].pairs == ["z w"]


def test_multilabel_rows_become_multi_hot(tmp_path: Path) -> None:
    folder = tmp_path / "emo"
    write(folder / "task.yaml", "kind: multilabel\nthreshold: 0.4\n")
    write_jsonl(folder / "train.jsonl", [
        {"text": "a", "labels": ["joy", "fear"]},
        {"text": "b", "labels": []},
        {"text": "c", "labels": ["anger"]},
    ])
    write(folder / "val.tsv", "d\tjoy,anger\ne\t\n")
    task, data = load_task_folder(folder)
    assert task.kind is TaskKind.MULTILABEL and task.threshold == 0.4
    assert task.labels == ("anger", "fear", "joy")
    assert data["train"].labels.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert data["val"].labels.dtype == np.float32
    assert data["val"].labels.tolist() == [[1, 0, 1], [0, 0, 0]]


def test_regression_with_named_targets(tmp_path: Path) -> None:
    folder = tmp_path / "vad"
    write(folder / "task.yaml", "kind: regression\ntargets: [V, A, D]\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": [3.0, 2.5, 1]}])
    write(folder / "val.tsv", "b\t1.5,2,3.25\n")
    task, data = load_task_folder(folder)
    assert task.targets == ("V", "A", "D")
    assert [m.name for m in task.official_metrics] == ["pearson_V", "pearson_A", "pearson_D"]
    assert data["val"].labels.dtype == np.float32
    assert data["val"].labels.tolist() == [[1.5, 2.0, 3.25]]


def test_regression_scalar_target(tmp_path: Path) -> None:
    folder = tmp_path / "intensity"
    write(folder / "task.yaml", "kind: regression\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 0.5}, {"text": "b", "label": 1}])
    write(folder / "val.tsv", "text\tlabel\nc\t0.25\n")
    task, data = load_task_folder(folder)
    assert task.targets == ("score",)
    assert data["train"].labels.shape == (2, 1)


def test_several_folders_keep_their_order(tmp_path: Path) -> None:
    a = cls_folder(tmp_path, "b_task")
    b = cls_folder(tmp_path, "a_task")
    data = load_task_folders([a, b])
    assert data.task_names == ["b_task", "a_task"]


def test_duplicate_task_names_across_folders_are_rejected(tmp_path: Path) -> None:
    a = cls_folder(tmp_path / "x", "same")
    b = cls_folder(tmp_path / "y", "same")
    with pytest.raises(ConfigError, match="both"):
        load_task_folders([a, b])


# --------------------------------------------------------------------------- errors


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "val.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n')
    assert "val.jsonl:2: invalid JSON" in error_of(folder)


def test_missing_text_and_label_keys(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "test.jsonl", '{"label": "pos"}\n')
    assert "test.jsonl:1: missing key 'text'" in error_of(folder)
    write(folder / "test.jsonl", '{"text": "x"}\n')
    assert "test.jsonl:1: missing key 'label'" in error_of(folder)


def test_empty_text_is_an_error(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write_jsonl(folder / "val.jsonl", [{"text": "ok", "label": "pos"}, {"text": "  ", "label": "neg"}])
    assert "val.jsonl:2: empty text" in error_of(folder)
    (folder / "val.jsonl").unlink()
    write(folder / "val.tsv", "x\tpos\n \tneg\n")
    assert "val.tsv:2: empty text" in error_of(folder)


def test_label_not_seen_in_train_is_an_error(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write_jsonl(folder / "test.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "mixed"}])
    message = error_of(folder)
    assert "test.jsonl:2: unknown label 'mixed'" in message and "neg, pos" in message


def test_label_not_in_task_yaml_is_an_error(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", "labels: [neg, pos]\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": "neg"}, {"text": "b", "label": "Pos"}])
    assert "train.jsonl:2: unknown label 'Pos'" in error_of(folder)


def test_label_id_out_of_range(tmp_path: Path) -> None:
    folder = tmp_path / "ids"
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    write_jsonl(folder / "val.jsonl", [{"text": "c", "label": 1}, {"text": "d", "label": 5}])
    assert "val.jsonl:2: label id 5 out of range 0..1" in error_of(folder)
    write_jsonl(folder / "val.jsonl", [{"text": "c", "label": -1}])
    assert "val.jsonl:1: label id -1 out of range" in error_of(folder)


def test_non_numeric_regression_target(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    write(folder / "task.yaml", "kind: regression\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 1.0}])
    write(folder / "val.tsv", "b\t0.5\nc\thigh\n")
    assert "val.tsv:2: regression target must be a finite number, got 'high'" in error_of(folder)
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": "1.0"}])
    assert "train.jsonl:1: regression target" in error_of(folder)


def test_wrong_number_of_regression_outputs(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    write(folder / "task.yaml", "kind: regression\ntargets: [V, A, D]\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": [1, 2, 3]}, {"text": "b", "label": [1, 2]}])
    write(folder / "val.tsv", "c\t1,2,3\n")
    assert "train.jsonl:2: expected 3 regression output(s) (V, A, D), got 2" in error_of(folder)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    (folder / "val.jsonl").write_bytes(b'{"text": "ok", "label": "pos"}\n{"text": "caf\xe9", "label": "pos"}\n')
    message = error_of(folder)
    assert "val.jsonl:2:" in message and "UTF-8" in message


def test_tsv_row_with_wrong_number_of_columns(tmp_path: Path) -> None:
    folder = tmp_path / "tsv"
    write(folder / "train.tsv", "a\tyes\nb\tno\textra\n")
    write(folder / "val.tsv", "c\tyes\n")
    assert "train.tsv:2: expected 2 tab-separated columns, got 3" in error_of(folder)
    write(folder / "train.tsv", "only text\n")
    assert "train.tsv:1: expected 2 tab-separated columns" in error_of(folder)


def test_missing_required_split(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    message = error_of(folder)
    assert "missing required val split" in message and "dev.jsonl" in message


def test_two_files_for_one_split_are_ambiguous(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "dev.tsv", "x\tpos\n")
    assert "val.jsonl and dev.tsv" in error_of(folder)


def test_missing_folder(tmp_path: Path) -> None:
    assert "task folder not found" in error_of(tmp_path / "nope")


def test_unknown_task_yaml_key_names_file_line_and_key(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", "kind: classification\nlabel: [neg, pos]\n")
    message = error_of(folder)
    assert "task.yaml:2:" in message and "unknown key: label (did you mean `labels`?)" in message


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("kind: ranking\n", "'ranking' is not a task kind"),
        ("threshold: 1.5\n", "threshold"),
        ("labels: pos\n", "expected a non-empty list"),
        ("labels: [pos, pos]\n", "duplicate names"),
        ("metrics: [pearson]\n", "'pearson' is not one of macro_f1"),
        ("metrics: [{fn: macro_f1, colour: red}]\n", "unknown metric key 'colour'"),
        ("metrics: [{fn: macro_f1, labels: [maybe]}]\n", "label 'maybe'"),
        ("targets: [V]\n", "only a regression task has targets"),
        ("name: 'bad name!'\n", "letters, digits"),
        ("kind: [\n", "invalid YAML"),
    ],
)
def test_invalid_task_yaml_values(tmp_path: Path, yaml_text: str, expected: str) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", yaml_text)
    message = error_of(folder)
    assert "task.yaml" in message and expected in message


def test_a_single_label_in_train_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "one"
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": "x"}])
    write_jsonl(folder / "val.jsonl", [{"text": "b", "label": "x"}])
    assert "at least 2 labels" in error_of(folder)


def test_text_pair_on_some_rows_only_is_an_error(tmp_path: Path) -> None:
    folder = cls_folder(tmp_path)
    write_jsonl(folder / "val.jsonl", [{"text": "a", "label": "pos", "text_pair": "b"}])
    assert "train.jsonl:1: missing text_pair" in error_of(folder)


def test_numeric_label_names_match_by_name_in_jsonl_and_tsv(tmp_path: Path) -> None:
    folder = tmp_path / "stars"
    write(folder / "task.yaml", "labels: [1, 2, 3]\n")
    write_jsonl(folder / "train.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "3"}])
    write(folder / "val.tsv", "c\t1\n")
    task, data = load_task_folder(folder)
    assert task.labels == ("1", "2", "3")
    assert data["train"].labels.tolist() == [0, 2]
    assert data["val"].labels.tolist() == [0]


@pytest.mark.parametrize("text, reason", [
    ('{"a": ', "Expecting value"), (b"\xff\xfe{", "not UTF-8"), ("[" * 100000, "nested too deeply"),
    ("1" * 5000, "a number with too many digits"),
])
def test_loads_json_turns_every_failure_into_one_error(text, reason) -> None:
    from infomtl.fileio import JSONError, loads_json

    with pytest.raises(JSONError) as info:
        loads_json(text)
    assert info.value.reason.startswith(reason)


def test_read_json_of_a_deeply_nested_file_is_a_one_line_error(tmp_path) -> None:
    from infomtl.errors import InfomtlError
    from infomtl.fileio import read_json

    path = tmp_path / "state.json"
    path.write_text("[" * 100000, encoding="utf-8")
    with pytest.raises(InfomtlError, match="state.json: not valid JSON \\(nested too deeply\\)"):
        read_json(path)


# --------------------------------------------------------------------------- the LLM baseline's keys


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("labels: [pos, neg]\nanswers: [good]\n", "task.yaml:2: answers: 1 answers for 2 labels"),
        ("labels: [pos, neg]\nanswers: {pos: good, meh: so-so}\n", "task.yaml:2: answers: 'meh' is not one of"),
        ("answers: {pos: good, maybe: so-so}\n", "task.yaml:1: answers: 'maybe' is not a label of the task"),
        ("answers: [Good, good]\n", "task.yaml:1: answers: answers ['Good', 'good'] are the same answer"),
        ("answers: yes\n", "task.yaml:1: answers: expected a list of answers in label order or a mapping"),
        ("template: 'Review {review}'\n", "task.yaml:1: template: template 'Review {review}' must show {text}"),
        ("instruction: ''\n", "task.yaml:1: instruction: expected a non-empty string"),
        ("scale: [0, 1]\n", "task.yaml:1: scale: only a regression task has a scale"),
        ("kind: regression\nanswers: [a, b]\n", "task.yaml:2: answers: a regression task is answered with numbers"),
        ("kind: regression\nscale: [5, 1]\n", "task.yaml:2: scale: expected [low, high] with low < high"),
    ],
)
def test_the_llm_baselines_task_yaml_keys_are_checked_with_the_rest(tmp_path: Path, yaml_text: str,
                                                                    expected: str) -> None:
    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", yaml_text)
    assert expected in error_of(folder)


def test_the_llm_baselines_prompt_comes_from_task_yaml_over_the_defaults(tmp_path: Path) -> None:
    from infomtl.data.folder import load_task_prompts

    folder = cls_folder(tmp_path)
    write(folder / "task.yaml", "name: films\ndescription: Film reviews.\nanswers: {pos: positive}\n")
    data = load_task_folders([folder])
    (prompt,) = load_task_prompts([folder], data.tasks).values()
    assert prompt.description == "Film reviews." and prompt.instruction == "Which label fits the text best?"
    assert data.tasks[0].labels == ("neg", "pos") and prompt.answers == ("neg", "positive")
    assert prompt.template == "Text: {text}" and list(load_task_prompts([folder], data.tasks)) == ["films"]
