"""One run's tasks from several sources: --tasks entries, task folders (TweetEval's layout too),
unique names, suggestions; --data-dir used alone; duplicate YAML keys; stratified eval rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from infomtl.config import TrainConfig
from infomtl.data import load_task_folder, prepare_data
from infomtl.data.loading import BENCHMARKS, load_data, task_refs
from infomtl.data.refs import config_for_task, resolve_task_refs, task_entries
from infomtl.data.subsample import eval_strata, eval_subset
from infomtl.data.task_yaml import read_task_spec
from infomtl.data.types import TaskData
from infomtl.errors import ConfigError, DataError
from infomtl.experiments.plan import expand_sweep
from infomtl.options import load_yaml
from infomtl.tasks import Task, TaskKind


def folder(root: Path, name: str, labels=("pos", "neg"), yaml: str | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    rows = [{"text": f"{name} text {i}", "label": labels[i % len(labels)]} for i in range(6)]
    for split in ("train", "val"):
        (path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if yaml is not None:
        (path / "task.yaml").write_text(yaml, encoding="utf-8")
    return path


def names(**config) -> list[str]:
    return [r.name for r in resolve_task_refs(TrainConfig(benchmark="synthetic", **config), list(BENCHMARKS))]


# --------------------------------------------------------------------------- which tasks


def test_task_folders_are_added_to_benchmark_tasks(tmp_path: Path) -> None:
    a, b = folder(tmp_path, "a"), folder(tmp_path, "b")
    dirs = [str(a), str(b)]
    assert names(tasks=["topic"], task_dirs=dirs) == ["topic", "a", "b"]  # the failing command
    assert names(tasks=["a", "topic"], task_dirs=dirs) == ["a", "topic"]  # names a folder: the whole list
    assert names(tasks=["b"], task_dirs=dirs) == ["b"]  # as before: a subset of the folders
    assert names(task_dirs=dirs) == ["a", "b"]
    assert names() == ["sentiment", "topic", "urgency"]
    assert names(tasks=["tweeteval:irony", str(b), "affecteval:emobank"], task_dirs=[str(a)]) == [
        "irony", "b", "emobank", "a"]


def test_mixed_tasks_load_with_their_sources(tmp_path: Path, data_root: Path) -> None:
    review = folder(tmp_path, "review", yaml="name: reviews\n")
    config = TrainConfig(benchmark="synthetic", data_dir=str(data_root), max_eval_examples=4,
                         tasks=["tweeteval:irony", "topic", str(review)])
    data = prepare_data(config)
    assert data.task_names == ["irony", "topic", "reviews"]
    assert data.sources == {"irony": "tweeteval", "topic": "synthetic", "reviews": f"folder:{config.data.tasks[2]}"}
    assert data.source_label() == "tweeteval+synthetic+folders"
    assert [len(data[t]["val"]) for t in data.task_names] == [4, 4, 4]
    assert data["irony"]["train"].task.metrics[0].name == "f1_irony"  # the benchmark's own definition
    # the entries name the same tasks again; one task's config trains it alone
    refs = task_refs(config)
    again = TrainConfig(**{**vars(config), "tasks": task_entries(config, refs)})
    assert load_data(again).task_names == data.task_names
    for ref in refs:
        assert load_data(config_for_task(config, ref)).task_names == [ref.name]


@pytest.mark.parametrize(("config", "needle"), [
    ({"tasks": ["topik"]}, "unknown task 'topik' (did you mean `topic`?)"),
    ({"tasks": ["emobank"]}, "(did you mean `affecteval:emobank`?)"),
    ({"tasks": ["tweeteval:ironny"]}, "(did you mean `tweeteval:irony`?)"),
    ({"tasks": ["tweteval:irony"]}, "unknown benchmark 'tweteval' (did you mean `tweeteval`?)"),
    ({"tasks": ["topic", "synthetic:topic"]}, "task 'topic' (synthetic) is listed twice"),
])
def test_bad_task_entries_name_the_closest_valid_one(config, needle) -> None:
    with pytest.raises(ConfigError) as info:
        names(**config)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_folder_task_name_typo_suggests_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean `emoji`\?"):
        names(tasks=["emoij"], task_dirs=[str(folder(tmp_path, "emoji"))])


def test_two_sources_of_one_name_are_an_error_naming_both(tmp_path: Path) -> None:
    topic = folder(tmp_path, "topic")
    with pytest.raises(ConfigError, match=r"'topic' is given by both synthetic and folder:.*topic; task names"):
        names(tasks=["synthetic:topic"], task_dirs=[str(topic)])
    other = folder(tmp_path / "x", "other", yaml="name: topic\n")
    with pytest.raises(ConfigError, match="given by both folder:"):
        names(task_dirs=[str(topic), str(other)])


def test_sweep_task_sets_mix_sources_and_keep_to_the_set(tmp_path: Path) -> None:
    emoji = str(folder(tmp_path, "emoji"))
    base = {"benchmark": "synthetic", "backbone": "tiny", "task_dirs": [emoji], "tasks": ["topic", "urgency", "emoji"]}
    runs = expand_sweep({"base": base, "methods": [{"method": "ew"}], "seeds": [0], "task_sets": "pairs"})
    got = {r.task_set: [t.name for t in load_data(r.config).tasks] for r in runs}
    assert got == {("topic", "urgency"): ["topic", "urgency"], ("topic", "emoji"): ["topic", "emoji"],
                   ("urgency", "emoji"): ["urgency", "emoji"]}
    with pytest.raises(ConfigError, match=r"methods\[1\].*did you mean `topic`"):
        expand_sweep({"base": {**base, "tasks": ["topik"]}, "methods": [{"method": "ew"}], "seeds": [0]})


# --------------------------------------------------------------------------- TweetEval's layout as a task folder


def test_a_copy_of_an_official_tweeteval_folder_is_a_task_folder(tmp_path: Path, data_root: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(data_root / "tweeteval" / "hate", tmp_path / "hate"))
    task, splits = load_task_folder(copy)
    official = prepare_data(TrainConfig(tasks=["hate"], data_dir=str(data_root)))["hate"]
    assert task.labels == ("not-hate", "hate") and task.kind is TaskKind.CLASSIFICATION
    for split in ("train", "val", "test"):  # the official empty tweets are kept, as the built-in reader does
        assert splits[split].texts == official[split].texts
        assert splits[split].labels.tolist() == official[split].labels.tolist()
    stance = Path(shutil.copytree(data_root / "tweeteval" / "stance", tmp_path / "stance"))
    _, parts = load_task_folder(stance)
    assert Counter(parts["test"].groups)["hillary"] == 295


def tweeteval_folder(root: Path, texts: str = "a\nb\nc\n", labels: str = "0\n1\n0\n") -> Path:
    path = root / "emo"
    path.mkdir()
    (path / "mapping.txt").write_text("0\tsad\n1\thappy", encoding="utf-8")
    for split in ("train", "val"):
        (path / f"{split}_text.txt").write_text(texts, encoding="utf-8")
        (path / f"{split}_labels.txt").write_text(labels, encoding="utf-8")
    return path


def test_tweeteval_layout_reads_mapping_names_and_optional_test(tmp_path: Path) -> None:
    path = tweeteval_folder(tmp_path)
    (path / "task.yaml").write_text("metrics: [accuracy]\n", encoding="utf-8")
    task, splits = load_task_folder(path)
    assert task.name == "emo" and task.labels == ("sad", "happy") and [m.fn for m in task.metrics] == ["accuracy"]
    assert sorted(splits) == ["train", "val"] and splits["val"].labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize(("change", "needle"), [
    (lambda p: (p / "val_labels.txt").write_text("0\n1\n"), "val_labels.txt: 2 lines but"),
    (lambda p: (p / "train_labels.txt").write_text("0\n2\n0\n"), "train_labels.txt:2: label 2 is not in mapping.txt"),
    (lambda p: (p / "train_text.txt").write_text("a\n \nc\n"), "train_text.txt:2: empty text"),
    (lambda p: (p / "mapping.txt").write_text("0\tsad\n2\thappy\n"), "mapping.txt: label ids must be 0..1"),
    (lambda p: (p / "mapping.txt").unlink(), "mapping.txt: missing file"),
    (lambda p: (p / "val_text.txt").unlink(), "val_text.txt: missing file"),
    (lambda p: (p / "task.yaml").write_text("kind: regression\n"), "task.yaml: kind: TweetEval's layout"),
    (lambda p: (p / "task.yaml").write_text("labels: [happy, sad]\n"), "labels: happy, sad differ from mapping"),
    (lambda p: (p / "train_target.txt").write_text("x\ny\nz\n"), "val_target.txt: missing file"),
])
def test_tweeteval_layout_errors_name_file_and_line(tmp_path: Path, change, needle) -> None:
    path = tweeteval_folder(tmp_path)
    change(path)
    with pytest.raises(DataError) as info:
        load_task_folder(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- --data-dir, YAML keys


def test_a_data_dir_without_the_benchmark_does_not_fall_back(tmp_path: Path, data_root: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOMTL_DATA", str(data_root))  # would hold it
    with pytest.raises(Exception, match=rf"--data-dir {tmp_path} holds no tweeteval/ folder"):
        prepare_data(TrainConfig(tasks=["irony"], data_dir=str(tmp_path)))


@pytest.mark.parametrize("where", ["config", "task", "sweep"])
def test_duplicate_yaml_keys_are_an_error_with_the_line(tmp_path: Path, where: str) -> None:
    if where == "task":
        path = folder(tmp_path, "t", yaml="kind: classification\nlabels: [pos, neg]\nkind: regression\n")
        with pytest.raises(DataError, match=r"task.yaml:3: invalid YAML: duplicate key 'kind' \(first given on line 1"):
            read_task_spec(path)
        return
    text = ("epochs: 1\nlr: 0.1\nepochs: 2\n" if where == "config"
            else "base:\n  epochs: 1\nmethods:\n  - method: ew\n    lr: 0.1\n    lr: 0.2\n")
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    line = 3 if where == "config" else 6
    with pytest.raises(ConfigError, match=rf"x.yaml:{line}: duplicate key '(epochs|lr)' \(first given on line"):
        load_yaml(path)


# --------------------------------------------------------------------------- stratified evaluation rows


def test_eval_subset_is_stratified_by_group_and_label_and_the_same_every_time() -> None:
    task = Task("t", TaskKind.CLASSIFICATION, labels=("a", "b"))
    # sorted by group then label, as EI-reg's and stance's files are: the first rows are all group g0
    groups = ["g0"] * 60 + ["g1"] * 30 + ["g2"] * 10
    labels = np.array([0] * 45 + [1] * 15 + [0] * 15 + [1] * 15 + [0] * 5 + [1] * 5)
    data = TaskData(task, "val", [f"t{i}" for i in range(100)], labels, groups=groups)
    part = eval_subset(data, 20)
    assert Counter(zip(part.groups, part.labels.tolist(), strict=True)) == {
        ("g0", 0): 9, ("g0", 1): 3, ("g1", 0): 3, ("g1", 1): 3, ("g2", 0): 1, ("g2", 1): 1}
    assert part.texts == eval_subset(data, 20).texts  # deterministic
    assert part.texts == sorted(part.texts, key=lambda t: int(t[1:]))  # file order kept
    assert eval_subset(data, 500).texts == data.texts


def test_regression_eval_strata_are_quartiles_within_groups() -> None:
    task = Task("r", TaskKind.REGRESSION)
    values = np.arange(16, dtype=np.float32)[::-1].copy()
    data = TaskData(task, "val", [str(i) for i in range(16)], values, groups=["x"] * 8 + ["y"] * 8)
    strata = eval_strata(data)
    assert strata.tolist() == [3, 3, 2, 2, 1, 1, 0, 0, 7, 7, 6, 6, 5, 5, 4, 4]
    chosen = [int(t) for t in eval_subset(data, 8).texts]
    assert sorted(strata[chosen].tolist()) == list(range(8))  # one row of each group's quartile


def test_tasks_labelling_one_text_set_keep_one_eval_subset() -> None:
    data = prepare_data(TrainConfig(benchmark="synthetic", max_eval_examples=10))
    texts = data["sentiment"]["val"].texts
    assert len(texts) == 10 and all(data[t]["val"].texts == texts for t in data.task_names)
