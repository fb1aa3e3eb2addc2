"""Property-based fuzzing of the input readers: task folders (JSONL/TSV splits and
task.yaml), ``infomtl predict`` input and ``POST /predict`` bodies.

Whatever the bytes, a reader either parses them or raises the library's own error
(:class:`InfomtlError`; the server's :class:`RequestError` with a 4xx status) with a
one-line message; any other exception fails the test. Examples are derandomized so
that a run is reproducible.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infomtl.data.folder import load_task_folder
from infomtl.errors import DataError, InfomtlError
from infomtl.inference.formats import INPUT_FORMATS, read_inputs
from infomtl.inference.serve import Limits, RequestError, parse_request
from infomtl.tasks import TaskKind

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None)

# --------------------------------------------------------------------------- strategies


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy, odds: int = 4) -> st.SearchStrategy:
    """``good`` in ``odds`` draws out of ``odds + 1``, else ``bad``: files that parse are common
    enough to reach label inference and encoding, broken ones to reach every error."""
    return st.integers(0, odds).flatmap(lambda i: bad if i == 0 else good)


#: Labels of each kind (names, ids, multi-label lists, regression numbers and vectors).
GOOD_LABELS = st.sampled_from(["pos", "neg", " pos ", 0, 1, 2, ["pos"], [0, 1], [], 0.5, -2.0, [0.1, 2.0]])
BAD_LABELS = st.sampled_from(["", -1, 99999, 10**30, True, None, {}, ["pos", None], float("nan"), float("inf")])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
WORDS = st.text(st.characters(codec="utf-8", exclude_characters="\t\n\r"), min_size=1, max_size=12)
#: JSONL lines: mostly row objects with good labels; else bad labels, odd keys, other JSON, text.
JSONL_LINES = mostly(
    st.sampled_from(["label", "labels"]).flatmap(lambda key: st.fixed_dictionaries(
        {"text": WORDS, key: GOOD_LABELS}, optional={"text_pair": WORDS})).map(json.dumps),
    st.fixed_dictionaries({"text": st.text(max_size=8), "label": BAD_LABELS}).map(json.dumps)
    | st.dictionaries(st.sampled_from(["text", "label", "labels", "text_pair"]) | st.text(max_size=5),
                      JSON_VALUES, max_size=4).map(json.dumps)
    | JSON_VALUES.map(json.dumps)
    | st.text(max_size=20),
)
CELLS = st.text(st.sampled_from("ab 01-.,\t\r\x0b\u2028é") | st.characters(codec="utf-8"), max_size=8)
#: TSV lines: mostly ``text<TAB>label`` (multi-label and vector labels comma-separated); else any cells.
TSV_LINES = mostly(
    st.tuples(WORDS, GOOD_LABELS.map(lambda v: ",".join(map(str, v)) if isinstance(v, list) else str(v)))
    .map("\t".join),
    st.lists(CELLS | BAD_LABELS.map(str), max_size=4).map("\t".join),
)


def files(lines: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Files of such lines (with or without a final newline, LF or CRLF), or arbitrary bytes."""
    text = st.tuples(st.lists(lines, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans()).map(
        lambda parts: parts[1].join(parts[0]) + (parts[1] if parts[0] and parts[2] else ""))
    return mostly(text.map(str.encode), st.binary(max_size=120))


TASK_YAML = mostly(
    st.sampled_from([None, "kind: multilabel\n", "kind: regression\n", "labels: [pos, neg]\n",
                     "kind: regression\ntargets: [a, b]\n", "metrics: [accuracy]\n", "threshold: 0.3\n",
                     "kind: multilabel\nlabels: [pos, neg]\nthreshold: 0.7\n"]),
    st.text(max_size=40),
).map(lambda text: None if text is None else text.encode())


def assert_one_line(exc: BaseException) -> None:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, repr(message)


# --------------------------------------------------------------------------- task folders


@FUZZ
@given(fmt=st.sampled_from(["jsonl", "tsv"]), data=st.data(), task_yaml=TASK_YAML, same_val=st.booleans())
def test_task_folder_reader_parses_or_raises_a_data_error(fmt, data, task_yaml, same_val) -> None:
    lines = JSONL_LINES if fmt == "jsonl" else TSV_LINES
    train = data.draw(files(lines), label="train")
    val = train if same_val else data.draw(files(lines), label="val")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "task"
        folder.mkdir()
        (folder / f"train.{fmt}").write_bytes(train)
        (folder / f"val.{fmt}").write_bytes(val)
        if task_yaml is not None:
            (folder / "task.yaml").write_bytes(task_yaml)
        try:
            task, splits = load_task_folder(folder)
        except InfomtlError as exc:
            assert_one_line(exc)
            return
    assert set(splits) == {"train", "val"}
    for part in splits.values():
        assert len(part.texts) == len(part.labels) > 0
        assert all(isinstance(t, str) and t.strip() for t in part.texts)
        if task.kind is TaskKind.CLASSIFICATION:
            assert ((0 <= part.labels) & (part.labels < len(task.labels))).all()
        else:  # one row of 0/1 per label, or of values per regression target
            assert part.labels.shape[1] == len(task.labels or task.targets)


# --------------------------------------------------------------------------- predict input


@FUZZ
@given(fmt=st.sampled_from(INPUT_FORMATS), content=files(JSONL_LINES | TSV_LINES), stdin=st.booleans())
def test_predict_input_parser_parses_or_raises_a_data_error(fmt, content, stdin) -> None:
    try:
        if stdin:
            texts, pairs = read_inputs("-", fmt, stdin=io.TextIOWrapper(io.BytesIO(content)))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"input.{fmt}"
                path.write_bytes(content)
                texts, pairs = read_inputs(str(path), fmt)
    except InfomtlError as exc:
        assert_one_line(exc)
        return
    assert texts and all(isinstance(t, str) and t.strip() for t in texts)
    assert pairs is None or (len(pairs) == len(texts) and all(isinstance(p, str) for p in pairs))


# --------------------------------------------------------------------------- HTTP bodies

LIMITS = Limits(max_body_bytes=1000, max_texts=3, max_text_chars=10)
TASKS = ["sentiment", "topic"]
REQUESTS = st.dictionaries(
    st.sampled_from(["texts", "tasks", "pairs"]) | st.text(max_size=5),
    st.lists(st.text(max_size=12) | st.sampled_from(TASKS), max_size=5) | JSON_VALUES,
    max_size=3,
).map(lambda obj: json.dumps(obj).encode())


@FUZZ
@given(body=REQUESTS | JSON_VALUES.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=100))
def test_http_body_parser_accepts_or_answers_4xx(body) -> None:
    try:
        texts, pairs, tasks = parse_request(body, LIMITS, TASKS)
    except RequestError as exc:
        assert 400 <= exc.status < 500
        assert_one_line(exc)
        return
    assert 1 <= len(texts) <= LIMITS.max_texts
    assert all(isinstance(t, str) and len(t) <= LIMITS.max_text_chars for t in texts)
    assert pairs is None or len(pairs) == len(texts)
    assert tasks is None or (tasks and set(tasks) <= set(TASKS))


@pytest.mark.parametrize("depth", [10, 5000])
def test_deeply_nested_json_is_an_error_not_a_crash(depth, tmp_path) -> None:
    """Deep nesting (a RecursionError inside json) reads as bad input, named by file and line."""
    nested = "[" * depth + "]" * depth + "\n"
    (tmp_path / "in.jsonl").write_text(nested)
    with pytest.raises(DataError, match="in.jsonl:1:"):
        read_inputs(str(tmp_path / "in.jsonl"), "jsonl")
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "train.jsonl").write_text('{"text": "a", "label": "x"}\n' + nested)
    (tmp_path / "task" / "val.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(DataError, match="train.jsonl:2:"):
        load_task_folder(tmp_path / "task")
    with pytest.raises(RequestError) as info:
        parse_request(nested.encode(), Limits(max_body_bytes=20_000), TASKS)
    assert info.value.status in (400, 422)
