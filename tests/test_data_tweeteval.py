"""TweetEval reader: real files (counts from the data README) and corrupted small copies."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from infomtl.data.tweeteval import load_tweeteval
from infomtl.errors import ConfigError, DataError
from infomtl.tasks import TWEETEVAL_ORDER, TWEETEVAL_TASKS

ROWS = 12  # lines kept per file in the small copies


def counts(labels: np.ndarray) -> dict[int, int]:
    return dict(sorted(Counter(labels.tolist()).items()))


# --------------------------------------------------------------------------- real data


def test_real_label_counts_match_the_data_readme(data_root: Path) -> None:
    data = load_tweeteval(data_root / "tweeteval", ["emotion", "irony", "stance"])
    emotion, irony, stance = data["emotion"], data["irony"], data["stance"]
    assert counts(emotion["train"].labels) == {0: 1400, 1: 708, 2: 294, 3: 855}
    assert counts(emotion["val"].labels) == {0: 160, 1: 97, 2: 28, 3: 89}
    assert counts(emotion["test"].labels) == {0: 558, 1: 358, 2: 123, 3: 382}
    assert counts(irony["train"].labels) == {0: 1417, 1: 1445}
    assert counts(irony["test"].labels) == {0: 473, 1: 311}
    assert [len(stance[s]) for s in ("train", "val", "test")] == [2620, 294, 1249]
    assert counts(stance["test"].labels) == {0: 230, 1: 715, 2: 304}


def test_sentiment_train_is_the_rebuilt_split_with_its_labels(data_root: Path) -> None:
    sentiment = load_tweeteval(data_root / "tweeteval", ["sentiment"])["sentiment"]
    assert counts(sentiment["train"].labels) == {0: 7094, 1: 20673, 2: 17849}
    assert len(sentiment["val"]) == 2000 and len(sentiment["test"]) == 12284


def test_official_empty_hate_tweets_are_kept_so_counts_match(data_root: Path) -> None:
    hate = load_tweeteval(data_root / "tweeteval", ["hate"])["hate"]
    assert [len(hate[s]) for s in ("train", "val", "test")] == [9000, 1000, 2970]
    assert counts(hate["train"].labels) == {0: 5217, 1: 3783}
    assert sum(not t for t in hate["train"].texts) == 7
    assert hate["val"].texts[264] == ""


def test_stance_targets_are_kept_as_groups_in_the_fixed_order(data_root: Path) -> None:
    stance = load_tweeteval(data_root / "tweeteval", ["stance"])["stance"]
    train = stance["train"]
    assert Counter(train.groups) == {
        "abortion": 587, "atheism": 461, "climate": 355, "feminist": 597, "hillary": 620,
    }
    order = list(dict.fromkeys(train.groups))
    assert order == ["abortion", "atheism", "climate", "feminist", "hillary"]
    assert stance["test"].groups.count("hillary") == 295


def test_tasks_come_in_the_requested_order_with_their_definitions(data_root: Path) -> None:
    data = load_tweeteval(data_root / "tweeteval", ["stance", "irony"])
    assert data.task_names == ["stance", "irony"]
    assert data.tasks[1] is TWEETEVAL_TASKS["irony"]
    assert set(data["irony"]) == {"train", "val", "test"}


def test_default_is_all_six_tasks_in_table_order(data_root: Path) -> None:
    data = load_tweeteval(data_root / "tweeteval")
    assert tuple(data.task_names) == TWEETEVAL_ORDER


def test_texts_are_stripped_of_the_trailing_space(data_root: Path) -> None:
    irony = load_tweeteval(data_root / "tweeteval", ["irony"])["irony"]["train"]
    raw = (data_root / "tweeteval/irony/train_text.txt").read_text(encoding="utf-8")
    assert raw.split("\n")[0].endswith(" ")
    assert irony.texts[0] == raw.split("\n")[0].strip()
    assert irony.labels.dtype == np.int64


def test_a_data_root_is_accepted_in_place_of_the_tweeteval_folder(data_root: Path) -> None:
    assert load_tweeteval(data_root, ["irony"]).task_names == ["irony"]


def test_unknown_task_lists_the_valid_names(data_root: Path) -> None:
    with pytest.raises(ConfigError, match="emoji.*emotion, hate, irony, offensive, sentiment, stance"):
        load_tweeteval(data_root / "tweeteval", ["emoji"])


# --------------------------------------------------------------------------- corrupted copies


def small_copy(data_root: Path, tmp_path: Path, task: str) -> Path:
    """``tmp/tweeteval/<task>`` holding the first ROWS lines of each real file."""
    src = data_root / "tweeteval" / task
    dst = tmp_path / "tweeteval" / task
    dst.mkdir(parents=True)
    for path in src.glob("*.txt"):
        if path.name == "mapping.txt":
            shutil.copy(path, dst / path.name)
        else:
            lines = path.read_bytes().split(b"\n")[:ROWS]
            (dst / path.name).write_bytes(b"\n".join(lines) + b"\n")
    return dst


def edit_line(path: Path, lineno: int, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = new
    path.write_bytes(b"\n".join(lines))


def load_error(folder: Path, task: str) -> str:
    with pytest.raises(DataError) as info:
        load_tweeteval(folder.parent, [task])
    return str(info.value)


def test_small_copy_loads(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "emotion")
    data = load_tweeteval(folder.parent, ["emotion"])
    assert len(data["emotion"]["train"]) == ROWS


def test_unequal_line_counts_name_both_files_and_counts(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "emotion")
    labels = folder / "val_labels.txt"
    labels.write_bytes(b"\n".join(labels.read_bytes().split(b"\n")[: ROWS - 2]) + b"\n")
    message = load_error(folder, "emotion")
    assert "val_labels.txt" in message and "val_text.txt" in message
    assert f"{ROWS - 2} lines" in message and f"{ROWS} lines" in message


def test_label_outside_the_mapping_names_line_value_and_valid_ids(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "emotion")
    edit_line(folder / "train_labels.txt", 3, b"7")
    message = load_error(folder, "emotion")
    assert "train_labels.txt:3:" in message
    assert "label 7" in message and "0, 1, 2, 3" in message


def test_non_integer_label_is_reported_with_its_line(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "emotion")
    edit_line(folder / "test_labels.txt", 5, b"joy")
    message = load_error(folder, "emotion")
    assert "test_labels.txt:5:" in message and "'joy'" in message and "not an integer" in message


def test_whitespace_only_text_is_reported_with_its_line(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "hate")
    edit_line(folder / "train_text.txt", 4, b"   ")
    assert "train_text.txt:4: empty text" in load_error(folder, "hate")


def test_invalid_utf8_gives_the_line_of_the_bad_bytes(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "irony")
    edit_line(folder / "val_text.txt", 6, b"caf\xe9 au lait")
    message = load_error(folder, "irony")
    assert "val_text.txt:6:" in message and "UTF-8" in message


def test_missing_split_file_says_which_file_was_expected(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "irony")
    (folder / "test_labels.txt").unlink()
    message = load_error(folder, "irony")
    assert "test_labels.txt" in message and "missing file" in message


def test_missing_task_folder_is_reported(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "irony")
    with pytest.raises(DataError, match=r"tweeteval/hate: task folder not found"):
        load_tweeteval(folder.parent, ["irony", "hate"])


def test_mapping_that_disagrees_with_the_task_is_an_error(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "irony")
    (folder / "mapping.txt").write_text("0\tirony\n1\tnon_irony\n", encoding="utf-8")
    message = load_error(folder, "irony")
    assert "mapping.txt" in message and "does not match" in message


def test_stance_target_file_must_be_aligned(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "stance")
    target = folder / "train_target.txt"
    target.write_bytes(b"\n".join(target.read_bytes().split(b"\n")[:5]) + b"\n")
    message = load_error(folder, "stance")
    assert "train_target.txt" in message and "train_text.txt" in message


def test_lines_split_on_newline_only(data_root: Path, tmp_path: Path) -> None:
    folder = small_copy(data_root, tmp_path, "irony")
    edit_line(folder / "train_text.txt", 2, "one\x0btwo\u2028three\x1cfour".encode())
    train = load_tweeteval(folder.parent, ["irony"])["irony"]["train"]
    assert len(train) == ROWS
    assert train.texts[1] == "one\x0btwo\u2028three\x1cfour"
