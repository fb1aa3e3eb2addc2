"""Hugging Face datasets as a task source, offline: datasets written by save_to_disk, local
parquet/CSV through load_dataset, tweet_eval's shape as a source of TweetEval, and bad input."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.data import load_task_folder, prepare_data
from infomtl.data.hf_source import load_hf_flag
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import TaskKind

datasets = pytest.importorskip("datasets")
D = datasets

TEXTS = ["good film", "bad film", "fine film", "awful film", "great film", "poor film"]


def saved(path: Path, features, columns: dict, splits=("train", "validation", "test"), **per_split) -> Path:
    """A DatasetDict written by save_to_disk: ``columns`` in every split unless ``per_split`` overrides."""
    parts = {s: D.Dataset.from_dict(per_split.get(s, columns), features=D.Features(features)) for s in splits}
    D.DatasetDict(parts).save_to_disk(str(path))
    return path


def cls_dataset(path: Path, **per_split) -> Path:
    return saved(path, {"text": D.Value("string"), "label": D.ClassLabel(names=["neg", "pos"])},
                 {"text": TEXTS, "label": [1, 0, 1, 0, 1, 0]}, **per_split)


def test_classlabel_names_become_the_labels_and_an_unlabelled_test_split_is_left_out(tmp_path: Path) -> None:
    path = cls_dataset(tmp_path / "ds", test={"text": TEXTS[:2], "label": [-1, -1]})
    task, splits = load_hf_flag({"dataset": str(path)})
    assert task.name == "ds" and task.kind is TaskKind.CLASSIFICATION and task.labels == ("neg", "pos")
    assert sorted(splits) == ["train", "val"]
    assert splits["val"].labels.tolist() == [1, 0, 1, 0, 1, 0] and splits["train"].texts == TEXTS


def test_multilabel_regression_and_pairs_from_saved_datasets(tmp_path: Path) -> None:
    ml = saved(tmp_path / "ml", {"text": D.Value("string"), "tags": D.Sequence(D.ClassLabel(names=["a", "b", "c"]))},
               {"text": TEXTS[:3], "tags": [[0, 2], [], [1]]}, splits=("train", "dev"))
    task, splits = load_hf_flag({"dataset": str(ml), "label": "tags", "name": "tags"})
    assert task.kind is TaskKind.MULTILABEL and task.labels == ("a", "b", "c")
    assert splits["val"].labels.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]

    vad = saved(tmp_path / "vad", {"s": D.Value("string"), "q": D.Value("string"), "V": D.Value("float32"),
                                   "A": D.Value("float64"), "D": D.Value("int32")},
                {"s": TEXTS[:2], "q": ["x", "y"], "V": [1.5, 2.5], "A": [3.0, 4.0], "D": [1, 2]})
    task, splits = load_hf_flag({"dataset": str(vad), "text": "s", "pair": "q", "label": "V+A+D"})
    assert task.kind is TaskKind.REGRESSION and task.targets == ("V", "A", "D")
    assert np.allclose(splits["test"].labels, [[1.5, 3.0, 1.0], [2.5, 4.0, 2.0]])
    assert splits["train"].pairs == ["x", "y"] and not splits["train"].pair_first


def test_local_parquet_and_csv_through_load_dataset(tmp_path: Path) -> None:
    import pandas as pd

    pq = tmp_path / "pq"
    pq.mkdir()
    for split in ("train", "validation"):
        pd.DataFrame({"sentence": TEXTS, "score": np.linspace(0, 1, 6)}).to_parquet(pq / f"{split}.parquet")
    task, splits = load_hf_flag({"dataset": str(pq), "text": "sentence", "label": "score", "name": "pq"})
    assert task.kind is TaskKind.REGRESSION and task.targets == ("score",)
    assert splits["val"].labels.ravel().tolist() == pytest.approx(np.linspace(0, 1, 6).tolist())

    # a task folder whose task.yaml names CSV files beside it (relative paths)
    folder = tmp_path / "csvtask"
    folder.mkdir()
    for name, labels in (("tr.csv", "joy,anger,joy"), ("dv.csv", "anger,joy,anger")):
        rows = "".join(f"{t},{lab}\n" for t, lab in zip(TEXTS[:3], labels.split(","), strict=True))
        (folder / name).write_text("text,emotion\n" + rows, encoding="utf-8")
    (folder / "task.yaml").write_text(
        "source: hf\ndataset: csv\ndata_files: {train: tr.csv, validation: dv.csv}\n"
        "columns: {label: emotion}\nlabels: [joy, anger, fear]\nmetrics: [accuracy]\n", encoding="utf-8")
    task, splits = load_task_folder(folder)
    assert task.name == "csvtask" and task.labels == ("joy", "anger", "fear") and task.metrics[0].fn == "accuracy"
    assert splits["val"].labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize(("flag", "build", "needle"), [
    ({"text": "sentence"}, None, "ds[train]: no text column 'sentence' (columns: text, label)"),
    ({"label": "y"}, None, "no label column 'y'"),
    ({"pair": "q"}, None, "no pair column 'q'"),
    ({"val": "valid"}, None, "no split 'valid' for val (splits: train, validation, test)"),
    ({}, {"validation": {"text": TEXTS[:2], "label": [1, -1]}}, "ds[validation]: 1 of 2 rows have no label"),
    ({}, {"train": {"text": ["ok", " "], "label": [0, 1]}}, "ds[train] row 1: empty text in column 'text'"),
    ({"kind": "regression"}, None, None),  # ClassLabel ids as numbers: allowed
    ({"kind": "multilabel"}, None, "ds[train] row 0: a multi-label row needs a list of labels, got 1"),
    ({"config": "nope"}, None, "is one saved dataset; it has no config 'nope'"),
])
def test_bad_columns_splits_and_values_are_one_line_errors(tmp_path: Path, flag, build, needle) -> None:
    path = cls_dataset(tmp_path / "ds", **(build or {}))
    spec = {"dataset": str(path), **flag}
    if needle is None:
        assert load_hf_flag(spec)[0].kind is TaskKind.REGRESSION
        return
    with pytest.raises(DataError) as info:
        load_hf_flag(spec)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_label_values_name_the_row(tmp_path: Path) -> None:
    strings = saved(tmp_path / "s", {"text": D.Value("string"), "label": D.Value("string")},
                    {"text": TEXTS[:2], "label": ["pos", "neg"]},
                    validation={"text": TEXTS[:2], "label": ["pos", "meh"]})
    with pytest.raises(DataError, match=r"s\[validation\] row 1: unknown label 'meh' \(valid: neg, pos; labels seen"):
        load_hf_flag({"dataset": str(strings)})
    floats = saved(tmp_path / "f", {"text": D.Value("string"), "label": D.Value("float32")},
                   {"text": TEXTS[:2], "label": [0.5, float("nan")]})
    with pytest.raises(DataError, match=r"f\[train\] row 1: regression target must be a finite number"):
        load_hf_flag({"dataset": str(floats)})
    with pytest.raises(DataError, match="label must be a label name or an integer id, got 0.5"):
        load_hf_flag({"dataset": str(floats), "kind": "classification"})


def test_a_hub_id_offline_and_a_missing_package_are_one_line_errors(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(DataError, match=r"^no-such/dataset-xyz: cannot load the dataset") as info:
        load_hf_flag({"dataset": "no-such/dataset-xyz"})
    assert "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"needs the datasets package: pip install 'infomtl\[datasets\]'"):
        load_hf_flag({"dataset": str(tmp_path)})


def test_the_cli_refuses_bad_hf_tasks_with_exit_2(tmp_path: Path, capsys) -> None:
    path = cls_dataset(tmp_path / "ds")
    base = ["train", "--backbone", "tiny", "--epochs", "1", "--max-steps", "1", "--no-progress",
            "--output-dir", str(tmp_path / "out")]
    assert main([*base, "--hf-task", f"dataset={path},label=stars"]) == 2
    assert "ds[train]: no label column 'stars'" in capsys.readouterr().err
    assert main([*base, "--hf-task", f"dataset={path},lable=label"]) == 2
    assert "unknown key 'lable' (did you mean `label`?)" in capsys.readouterr().err
    assert main([*base, "--hf-task", "name=x"]) == 2
    assert "no dataset" in capsys.readouterr().err


# --------------------------------------------------------------------------- tweet_eval's shape


HUB_NAMES = {"emotion": ["anger", "joy", "optimism", "sadness"], "hate": ["non-hate", "hate"],
             "stance": ["none", "against", "favor"]}


def tweet_eval_copy(data_root: Path, dest: Path) -> Path:
    """Folders saved by save_to_disk in the Hub dataset's shape, one per config (stance per target)."""
    src = data_root / "tweeteval"
    for task, names in HUB_NAMES.items():
        features = D.Features({"text": D.Value("string"), "label": D.ClassLabel(names=names)})
        per_config: dict[str, dict[str, D.Dataset]] = {}
        for split, hub_split in (("train", "train"), ("val", "validation"), ("test", "test")):
            texts = (src / task / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")[:-1]
            labels = [int(x) for x in (src / task / f"{split}_labels.txt").read_text(encoding="utf-8").split()]
            targets = ((src / task / f"{split}_target.txt").read_text(encoding="utf-8").split("\n")[: len(texts)]
                       if task == "stance" else [None] * len(texts))
            for config in dict.fromkeys(f"stance_{t}" if t else task for t in targets):
                rows = [(x.strip(), y) for x, y, t in zip(texts, labels, targets, strict=True)
                        if (f"stance_{t}" if t else task) == config]
                per_config.setdefault(config, {})[hub_split] = D.Dataset.from_dict(
                    {"text": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features)
        for config, parts in per_config.items():
            D.DatasetDict(parts).save_to_disk(str(dest / config))
    return dest


@pytest.fixture(scope="module")
def tweet_eval(data_root: Path, tmp_path_factory) -> Path:
    return tweet_eval_copy(data_root, tmp_path_factory.mktemp("hub") / "tweet_eval")


def test_tweet_eval_from_a_local_copy_equals_the_official_files(tweet_eval: Path, data_root: Path) -> None:
    copy = tweet_eval
    tasks = ["stance", "hate", "emotion"]
    hub = prepare_data(TrainConfig(tasks=tasks, tweeteval_source=f"hf:{copy}"))
    files = prepare_data(TrainConfig(tasks=tasks, data_dir=str(data_root)))
    assert hub.task_names == tasks and [t.labels for t in hub.tasks] == [t.labels for t in files.tasks]
    for task in tasks:
        for split in ("train", "val", "test"):
            assert hub[task][split].texts == files[task][split].texts
            assert hub[task][split].labels.tolist() == files[task][split].labels.tolist()
            assert hub[task][split].groups == files[task][split].groups
    assert Counter(hub["stance"]["train"].groups)["abortion"] == 587
    assert hub["hate"]["train"].texts.count("") == 7  # the official empty tweets, as from the files


def test_tweet_eval_copy_missing_a_target_names_it(tweet_eval: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(tweet_eval, tmp_path / "tweet_eval"))
    shutil.rmtree(copy / "stance_climate")
    with pytest.raises(DataError, match=r"tweet_eval:stance_climate: cannot load the dataset"):
        prepare_data(TrainConfig(tasks=["stance"], tweeteval_source=f"hf:{copy}"))
    with pytest.raises(ConfigError, match="--benchmark-args source must be files, hf or hf:ID_OR_PATH, got 'hub'"):
        prepare_data(TrainConfig(tweeteval_source="hub"))
