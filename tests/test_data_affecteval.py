"""AffectEval reader: real files (counts from the data README) and corrupted small copies."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from infomtl.data import load_benchmark
from infomtl.data.affecteval import (
    AFFECTEVAL_ORDER,
    EI_REG_EMOTIONS,
    GOEMOTIONS_LABELS,
    load_affecteval,
)
from infomtl.data.tweeteval import load_tweeteval
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import TWEETEVAL_TASKS, TaskKind

SPLITS = ("train", "val", "test")
ROWS = 12  # data lines kept per file in the small copies


@pytest.fixture(scope="module")
def affecteval_dir(data_root: Path) -> Path:
    folder = data_root / "affecteval"
    if not folder.is_dir():
        pytest.skip(f"AffectEval data not found under {data_root}")
    return folder


@pytest.fixture(scope="module")
def affecteval(affecteval_dir: Path):
    return load_affecteval(affecteval_dir)


def sizes(task_splits) -> list[int]:
    return [len(task_splits[s]) for s in SPLITS]


# --------------------------------------------------------------------------- real data


def test_default_is_all_four_tasks_in_table_order(affecteval) -> None:
    assert tuple(affecteval.task_names) == AFFECTEVAL_ORDER
    assert [t.kind for t in affecteval.tasks] == [
        TaskKind.CLASSIFICATION, TaskKind.CLASSIFICATION, TaskKind.REGRESSION, TaskKind.REGRESSION,
    ]


def test_goemotions_default_is_the_authors_single_label_subset(affecteval, affecteval_dir) -> None:
    goemotions = affecteval["goemotions"]
    assert sizes(goemotions) == [36308, 4548, 4590]
    task = affecteval.tasks[0]
    assert task.labels == GOEMOTIONS_LABELS and len(task.labels) == 28
    assert task.labels[0] == "admiration" and task.labels[27] == "neutral"
    assert [m.name for m in task.official_metrics] == ["macro_f1"]
    assert set(np.unique(goemotions["train"].labels)) == set(range(28))
    # the kept rows are exactly the lines whose label field has no comma, in file order
    lines = (affecteval_dir / "goemotions/val.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    single = [line.split("\t") for line in lines if "," not in line.split("\t")[1]]
    assert goemotions["val"].texts[:50] == [cols[0].strip() for cols in single[:50]]
    assert goemotions["val"].labels[:50].tolist() == [int(cols[1]) for cols in single[:50]]


def test_goemotions_multilabel_keeps_every_row_as_a_28_column_multi_hot(affecteval_dir) -> None:
    data = load_affecteval(affecteval_dir, ["goemotions"], goemotions_multilabel=True)
    task = data.tasks[0]
    assert task.kind is TaskKind.MULTILABEL and task.threshold == 0.5
    assert [m.name for m in task.official_metrics] == ["macro_f1"]
    goemotions = data["goemotions"]
    assert sizes(goemotions) == [43410, 5426, 5427]
    for split, single in zip(SPLITS, (36308, 4548, 4590), strict=True):
        labels = goemotions[split].labels
        assert labels.shape == (len(goemotions[split]), 28) and labels.dtype == np.float32
        assert labels.sum(axis=1).min() >= 1
        assert int((labels.sum(axis=1) == 1).sum()) == single


def test_emotioneval_is_tweeteval_emotion(affecteval, data_root: Path) -> None:
    emotion = load_tweeteval(data_root / "tweeteval", ["emotion"])["emotion"]
    emotioneval = affecteval["emotioneval"]
    assert sizes(emotioneval) == [3257, 374, 1421]
    for split in SPLITS:
        assert emotioneval[split].texts == emotion[split].texts
        assert np.array_equal(emotioneval[split].labels, emotion[split].labels)
    task = affecteval.tasks[1]
    assert task.name == "emotioneval"
    assert task.labels == TWEETEVAL_TASKS["emotion"].labels
    assert task.metrics == TWEETEVAL_TASKS["emotion"].metrics


def test_emobank_is_one_regression_task_with_three_outputs(affecteval) -> None:
    emobank = affecteval["emobank"]
    assert sizes(emobank) == [8062, 1000, 1000]
    task = affecteval.tasks[2]
    assert task.targets == ("V", "A", "D") and task.num_outputs == 3
    assert [m.name for m in task.official_metrics] == ["pearson_V", "pearson_A", "pearson_D"]
    assert {m.name for m in task.metrics if not m.official} == {"spearman_V", "spearman_A", "spearman_D"}
    train = emobank["train"]
    assert train.labels.shape == (8062, 3) and train.labels.dtype == np.float32
    assert train.labels[0].tolist() == pytest.approx([3.0, 3.0, 3.2])
    assert train.texts[0] == 'Remember what she said in my last letter? "'
    assert 1.0 <= train.labels.min() and train.labels.max() <= 5.0


def test_ei_reg_rows_emotions_pairs_and_metrics(affecteval) -> None:
    ei_reg = affecteval["ei_reg"]
    assert sizes(ei_reg) == [7102, 1464, 4068]
    expected = {
        "train": {"anger": 1701, "fear": 2252, "joy": 1616, "sadness": 1533},
        "val": {"anger": 388, "fear": 389, "joy": 290, "sadness": 397},
        "test": {"anger": 1002, "fear": 986, "joy": 1105, "sadness": 975},
    }
    for split in SPLITS:
        part = ei_reg[split]
        assert Counter(part.groups) == expected[split]
        assert list(dict.fromkeys(part.groups)) == list(EI_REG_EMOTIONS)  # files concatenated in order
        assert part.pairs == part.groups and part.pair_first
    task = affecteval.tasks[3]
    assert task.targets == ("intensity",)
    assert [m.name for m in task.official_metrics] == ["pearson", "spearman"]
    train = ei_reg["train"]
    assert train.labels.shape == (7102, 1)
    assert train.texts[0] == "@xandraaa5 @amayaallyn6 shut up hashtags are cool #offended"
    assert train.labels[0, 0] == pytest.approx(0.562)
    assert 0.0 <= train.labels.min() and train.labels.max() <= 1.0


def test_ei_reg_keeps_the_literal_backslash_n(affecteval) -> None:
    texts = affecteval["ei_reg"]["train"].texts
    assert sum("\\n" in t for t in texts) == 395
    assert not any("\n" in t for t in texts)


def test_ei_reg_pair_none_gives_the_tweet_alone_but_keeps_groups(affecteval_dir) -> None:
    data = load_affecteval(affecteval_dir, ["ei_reg"], ei_reg_pair="none")
    test = data["ei_reg"]["test"]
    assert test.pairs is None and not test.pair_first
    assert Counter(test.groups)["joy"] == 1105


def test_subset_comes_in_the_requested_order(affecteval_dir) -> None:
    data = load_affecteval(affecteval_dir, ["ei_reg", "emobank"])
    assert data.task_names == ["ei_reg", "emobank"]


def test_load_benchmark_passes_the_affecteval_options(data_root: Path, affecteval_dir) -> None:
    data = load_benchmark("affecteval", data_dir=data_root, tasks=["goemotions", "ei_reg"],
                          goemotions_multilabel=True, ei_reg_pair="none")
    assert data.tasks[0].kind is TaskKind.MULTILABEL
    assert data["ei_reg"]["val"].pairs is None
    # the options of one benchmark are ignored by the others
    tweets = load_benchmark("tweeteval", data_dir=data_root, tasks=["irony"], goemotions_multilabel=True)
    assert tweets.task_names == ["irony"]


def test_a_data_root_is_accepted_in_place_of_the_affecteval_folder(data_root: Path, affecteval_dir) -> None:
    assert load_affecteval(data_root, ["emobank"]).task_names == ["emobank"]


def test_unknown_task_or_pair_option_is_a_config_error(affecteval_dir) -> None:
    with pytest.raises(ConfigError, match="task: emotion .*; valid tasks: goemotions, emotioneval, emobank, ei_reg"):
        load_affecteval(affecteval_dir, ["emotion"])
    with pytest.raises(ConfigError, match="twice"):
        load_affecteval(affecteval_dir, ["emobank", "emobank"])
    with pytest.raises(ConfigError, match="ei_reg_pair must be one of first, none"):
        load_affecteval(affecteval_dir, ["ei_reg"], ei_reg_pair="second")


# --------------------------------------------------------------------------- corrupted copies


@pytest.fixture
def small(affecteval_dir: Path, tmp_path: Path) -> Path:
    """``tmp/affecteval`` holding the first ROWS data lines of every real file."""
    dst = tmp_path / "affecteval"
    for src in affecteval_dir.iterdir():
        (dst / src.name).mkdir(parents=True)
        for path in src.iterdir():
            if path.name in ("mapping.txt", "emotions.txt"):
                shutil.copy(path, dst / src.name / path.name)
                continue
            header = 1 if src.name in ("emobank", "ei_reg") else 0
            lines = path.read_bytes().split(b"\n")[: ROWS + header]
            (dst / src.name / path.name).write_bytes(b"\n".join(lines) + b"\n")
    return dst


def edit_line(path: Path, lineno: int, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = new
    path.write_bytes(b"\n".join(lines))


def edit_column(path: Path, lineno: int, column: int, value: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    cols = lines[lineno - 1].split("\t")
    cols[column] = value
    lines[lineno - 1] = "\t".join(cols)
    path.write_text("\n".join(lines), encoding="utf-8")


def load_error(folder: Path, task: str, **options) -> str:
    with pytest.raises(DataError) as info:
        load_affecteval(folder, [task], **options)
    return str(info.value)


def test_small_copy_loads(small: Path) -> None:
    data = load_affecteval(small)
    assert len(data["emobank"]["train"]) == ROWS and len(data["ei_reg"]["val"]) == ROWS
    assert len(data["goemotions"]["train"]) <= ROWS


def test_emobank_non_numeric_value_names_file_line_and_dimension(small: Path) -> None:
    edit_column(small / "emobank/train.tsv", 12, 1, "abc")
    message = load_error(small, "emobank")
    assert "emobank/train.tsv:12: expected a number for V, got 'abc'" in message


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_emobank_non_finite_value_is_an_error(small: Path, value: str) -> None:
    edit_column(small / "emobank/val.tsv", 4, 2, value)
    message = load_error(small, "emobank")
    assert f"emobank/val.tsv:4: expected a finite number for A, got '{value}'" in message


def test_emobank_values_outside_the_rating_scale_are_accepted(small: Path) -> None:
    edit_column(small / "emobank/train.tsv", 2, 3, "7.5")
    data = load_affecteval(small, ["emobank"])
    assert data["emobank"]["train"].labels[0, 2] == pytest.approx(7.5)


def test_emobank_wrong_number_of_columns(small: Path) -> None:
    edit_line(small / "emobank/test.tsv", 5, b"someid\t3.0\t3.1\tonly two dimensions")
    message = load_error(small, "emobank")
    assert "emobank/test.tsv:5: expected 5 tab-separated columns (id, V, A, D, text), got 4" in message


def test_emobank_header_is_checked(small: Path) -> None:
    edit_line(small / "emobank/train.tsv", 1, b"id\tA\tV\tD\ttext")
    message = load_error(small, "emobank")
    assert "emobank/train.tsv:1: expected the header 'id<TAB>V<TAB>A<TAB>D<TAB>text'" in message


def test_emobank_empty_text(small: Path) -> None:
    edit_column(small / "emobank/train.tsv", 3, 4, "  ")
    assert "emobank/train.tsv:3: empty text" in load_error(small, "emobank")


def test_ei_reg_non_numeric_intensity(small: Path) -> None:
    edit_column(small / "ei_reg/val.tsv", 7, 3, "high")
    message = load_error(small, "ei_reg")
    assert "ei_reg/val.tsv:7: expected a number for Intensity Score, got 'high'" in message


def test_ei_reg_wrong_number_of_columns(small: Path) -> None:
    edit_line(small / "ei_reg/train.tsv", 3, b"2017-En-1\tjust a tweet\t0.5")
    assert "ei_reg/train.tsv:3: expected 4 tab-separated columns" in load_error(small, "ei_reg")


def test_ei_reg_unknown_emotion(small: Path) -> None:
    edit_column(small / "ei_reg/test.tsv", 2, 2, "surprise")
    message = load_error(small, "ei_reg")
    assert "ei_reg/test.tsv:2: unknown emotion 'surprise'" in message
    assert "anger, fear, joy, sadness" in message


def test_ei_reg_empty_tweet(small: Path) -> None:
    edit_column(small / "ei_reg/train.tsv", 6, 1, "")
    assert "ei_reg/train.tsv:6: empty text" in load_error(small, "ei_reg")


def test_goemotions_unknown_label_id(small: Path) -> None:
    edit_column(small / "goemotions/train.tsv", 4, 1, "3,28")
    message = load_error(small, "goemotions")
    assert "goemotions/train.tsv:4: unknown GoEmotions label id '28'" in message
    assert "0..27" in message


def test_goemotions_multi_label_rows_are_validated_even_when_dropped(small: Path) -> None:
    edit_column(small / "goemotions/val.tsv", 2, 1, "1,x")
    assert "goemotions/val.tsv:2: unknown GoEmotions label id 'x'" in load_error(small, "goemotions")


def test_goemotions_wrong_number_of_columns(small: Path) -> None:
    edit_line(small / "goemotions/test.tsv", 8, b"a comment without an id\t27")
    message = load_error(small, "goemotions", goemotions_multilabel=True)
    assert "goemotions/test.tsv:8: expected 3 tab-separated columns" in message


def test_goemotions_empty_text_and_empty_labels(small: Path) -> None:
    edit_column(small / "goemotions/train.tsv", 5, 0, " ")
    assert "goemotions/train.tsv:5: empty text" in load_error(small, "goemotions")
    edit_column(small / "goemotions/train.tsv", 5, 0, "fine again")
    edit_column(small / "goemotions/train.tsv", 6, 1, "")
    assert "goemotions/train.tsv:6: missing label ids" in load_error(small, "goemotions")


def test_goemotions_label_names_must_match_emotions_txt(small: Path) -> None:
    (small / "goemotions/emotions.txt").write_text("neutral\njoy\n", encoding="utf-8")
    message = load_error(small, "goemotions")
    assert "emotions.txt" in message and "do not match" in message


@pytest.mark.parametrize(
    ("task", "path"),
    [
        ("goemotions", "goemotions/test.tsv"),
        ("goemotions", "goemotions/emotions.txt"),
        ("emobank", "emobank/val.tsv"),
        ("ei_reg", "ei_reg/train.tsv"),
        ("emotioneval", "emotioneval/test_labels.txt"),
    ],
)
def test_missing_file_says_which_file_was_expected(small: Path, task: str, path: str) -> None:
    (small / path).unlink()
    message = load_error(small, task)
    assert path in message and "missing file" in message


def test_missing_task_folder_is_reported(small: Path) -> None:
    shutil.rmtree(small / "emobank")
    with pytest.raises(DataError, match=r"affecteval/emobank: task folder not found"):
        load_affecteval(small, ["goemotions", "emobank"])


def test_emotioneval_is_validated_like_tweeteval(small: Path) -> None:
    edit_line(small / "emotioneval/train_labels.txt", 3, b"9")
    message = load_error(small, "emotioneval")
    assert "emotioneval/train_labels.txt:3:" in message and "label 9" in message


def test_invalid_utf8_gives_the_line(small: Path) -> None:
    edit_line(small / "ei_reg/test.tsv", 4, b"2017-En-1\tcaf\xe9\tanger\t0.5")
    message = load_error(small, "ei_reg")
    assert "ei_reg/test.tsv:4:" in message and "UTF-8" in message


def test_a_file_with_only_its_header_has_no_rows(small: Path) -> None:
    (small / "emobank/test.tsv").write_text("id\tV\tA\tD\ttext\n", encoding="utf-8")
    assert "emobank/test.tsv: no data rows" in load_error(small, "emobank")
