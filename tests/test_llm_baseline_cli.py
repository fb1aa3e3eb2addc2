"""`infomtl baseline llm` end to end: TweetEval through a chat-completions server on 127.0.0.1,
scores recomputed by hand, a killed run resumed without a repeated request, a results store
that `infomtl report` shows as a row, users' task folders, and a local causal LM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.data.loading import limit_data, load_benchmark
from infomtl.metrics import average, score_task
from infomtl.prompts import BENCHMARK_PROMPTS
from infomtl.tasks import TWEETEVAL_ORDER
from llm_fakes import ChatStub, Reply, chat_server, completion, tiny_causal_lm

pytest.importorskip("httpx")
REPO = Path(__file__).resolve().parents[1]
ROWS = 6


def row_text(question: str) -> str:
    """The row's text: the last line of the question, after its 'Tweet: ' (or other) prefix."""
    return question.rsplit("\n", 1)[-1].split(": ", 1)[1]


def task_of(question: str, benchmark: str = "tweeteval") -> str:
    return next(name for name, p in BENCHMARK_PROMPTS[benchmark].items() if question.startswith(p.description + "\n"))


def policy(task, gold: int, i: int) -> str:
    """What the stub answers for a row: the gold answer, another allowed answer, or no answer."""
    answers = BENCHMARK_PROMPTS["tweeteval"][task.name].answers_for(task)
    return [answers[gold].upper() + ".", f"I'd say {answers[(gold + 1) % len(answers)]}", "no idea"][i % 3]


def test_tweeteval_scores_are_the_official_metrics_of_the_read_answers(data_root, tmp_path, capsys) -> None:
    # the rows --max-eval-examples picks (stratified, the same as a trained run's)
    data = limit_data(TrainConfig(benchmark="tweeteval", data_dir=str(data_root), max_eval_examples=ROWS),
                      load_benchmark("tweeteval", data_root))
    say: dict[tuple[str, str], str] = {}
    expected: dict[str, dict] = {"val": {}, "test": {}}
    for task in data.tasks:
        majority = int(np.bincount(data.splits[task.name]["train"].labels).argmax())
        for split in ("val", "test"):
            part = data.splits[task.name][split]
            preds, invalid = [], 0
            for i, (text, gold) in enumerate(zip(part.texts, part.labels, strict=True)):
                answer = say.setdefault((task.name, text), policy(task, int(gold), i))
                label = int(gold) if answer.endswith(".") else (int(gold) + 1) % len(task.labels)
                if answer == "no idea":
                    label, invalid = majority, invalid + 1
                preds.append(label)
            expected[split][task.name] = (score_task(task, part.labels, np.array(preds)), invalid)

    with chat_server(ChatStub(answer=lambda q: say[(task_of(q), row_text(q))])) as stub:
        code = main(["baseline", "llm", "--model", "stub-model", "--base-url", stub.url, "--data-dir", str(data_root),
                     "--max-eval-examples", str(ROWS), "--output-dir", str(tmp_path / "run"), "--no-progress"])
    assert code == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["method"] == "llm-zero-shot" and results["model"] == "stub-model"
    distinct = {(t, text) for (t, text) in say}
    assert len(stub.requests) == len(distinct)  # one request per distinct question, none repeated
    for split in ("val", "test"):
        for name in TWEETEVAL_ORDER:
            scores, invalid = expected[split][name]
            assert results[split]["tasks"][name] == pytest.approx(scores), (split, name)
            assert results[split]["invalid"][name] == invalid
            assert results[split]["invalid_rate"][name] == pytest.approx(invalid / ROWS)
        by_hand = average(data.tasks, {n: expected[split][n][0] for n in TWEETEVAL_ORDER})
        assert results[split]["avg"] == pytest.approx(by_hand)
    out = capsys.readouterr().out
    assert f"test Avg: {results['test']['avg']:.2f}" in out and "test invalid answers" in out
    lines = (tmp_path / "run" / "predictions" / "test" / "emotion.txt").read_text().split()
    assert len(lines) == ROWS
    baseline = json.loads((tmp_path / "run" / "baseline.json").read_text())
    assert baseline["prompts"]["offensive"]["answers"] == {"not-offensive": "not offensive", "offensive": "offensive"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "infomtl", "baseline", "llm", *args]


def test_a_killed_run_resumes_without_asking_an_answered_question_again(data_root, tmp_path) -> None:
    """Kill the command (SIGKILL) while a request hangs, tear the cache's last line, resume:
    the resumed run asks exactly the questions that had no answer."""
    run = tmp_path / "run"
    hang = threading_event()
    answered_first = 7

    def script(n: int, body: dict) -> Reply:
        if n >= answered_first:
            hang.wait(30)  # the run is killed while it waits for this reply
        return Reply(body=completion("negative"))

    args = ["--model", "stub-model", "--tasks", "sentiment,irony", "--data-dir", str(data_root),
            "--max-eval-examples", "5", "--concurrency", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with chat_server(ChatStub(script=script)) as stub:
        proc = subprocess.Popen(_cli(*args, "--base-url", stub.url, "--output-dir", str(run)), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while sum(_lines(run / "answers")) < answered_first or len(stub.requests) <= answered_first:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the run did not get to its hanging request"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            hang.set()
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()
        first = stub.questions()
    assert not (run / "results.json").exists()
    answered = set(first[:answered_first])
    with open(next((run / "answers").glob("*.jsonl")), "ab") as fh:
        fh.write(b'{"key": "0123", "rep')  # as if killed in the middle of a write

    with chat_server(ChatStub(answer=lambda q: "negative")) as again:
        assert main(["baseline", "llm", "--resume", str(run), "--base-url", again.url]) == 0
        second = again.questions()
    assert not answered & set(second) and len(set(second)) == len(second)  # zero repeated requests
    results = json.loads((run / "results.json").read_text())
    assert results["requests"]["cached"] == answered_first and results["requests"]["asked"] == len(second)

    with chat_server(ChatStub()) as third:  # a new run sharing the cache asks nothing
        assert main(["baseline", "llm", *args, "--base-url", third.url, "--cache-dir", str(run / "answers"),
                     "--output-dir", str(tmp_path / "again")]) == 0
        assert third.requests == []
    assert json.loads((tmp_path / "again" / "results.json").read_text())["test"] == results["test"]


def threading_event():
    import threading

    return threading.Event()


def _lines(folder: Path) -> list[int]:
    return [p.read_text().count("\n") for p in folder.glob("*.jsonl")] if folder.is_dir() else [0]


def _fake_store(root: Path, tasks, test_scores: dict[str, float]) -> None:
    """A store with EW on the synthetic benchmark (backbone tiny) at ratios 1 and 0.5, three seeds."""
    plan = {}
    for ratio in (1.0, 0.5):
        for seed in (0, 1, 2):
            rid = f"ew-{ratio}-{seed}"
            plan[rid] = {"id": rid, "label": "ew", "point": {}, "seed": seed, "train_ratio": ratio,
                         "benchmark": "synthetic", "backbone": "tiny", "method": "ew", "weighting": None}
            folder = root / "runs" / rid
            folder.mkdir(parents=True)
            split = {"tasks": {t.name: {"macro_f1": test_scores[t.name] + seed, "accuracy": 50.0} for t in tasks},
                     "scores": {t.name: test_scores[t.name] + seed for t in tasks},
                     "avg": float(np.mean(list(test_scores.values()))) + seed}
            (folder / "results.json").write_text(json.dumps({"method": "ew", "val": split, "test": split}))
            (folder / "run.json").write_text(json.dumps({"tasks": [t.to_dict() for t in tasks]}))
    (root / "plan.json").write_text(json.dumps(plan))


def test_a_store_run_is_a_row_of_every_setting_of_its_benchmark(tmp_path, capsys) -> None:
    data = load_benchmark("synthetic")
    ew = {"sentiment": 60.0, "topic": 70.0, "urgency": 80.0}
    store = tmp_path / "store"
    _fake_store(store, data.tasks, ew)
    answer = {"sentiment": "positive", "topic": "It is about food", "urgency": "hmm"}
    args = ["baseline", "llm", "--benchmark", "synthetic", "--model", "stub-model", "--store", str(store),
            "--max-eval-examples", "10", "--no-progress"]
    with chat_server(ChatStub(answer=lambda q: answer[task_of(q, "synthetic")])) as stub:
        assert main([*args, "--base-url", stub.url]) == 0
        asked = len(stub.requests)
        assert main([*args, "--base-url", stub.url]) == 0  # finished: nothing asked again
        assert len(stub.requests) == asked
    assert "already finished in the store" in capsys.readouterr().out

    plan = json.loads((store / "plan.json").read_text())
    (rid,) = [k for k, v in plan.items() if v["method"] == "llm-zero-shot"]
    assert plan[rid]["label"] == "zero-shot stub-model" and plan[rid]["backbone"] is None
    results = json.loads((store / "runs" / rid / "results.json").read_text())
    asked_rows = limit_data(TrainConfig(benchmark="synthetic", max_eval_examples=10), data)  # the rows asked
    for task in data.tasks:  # the answers' predictions, scored by hand
        part = asked_rows.splits[task.name]["test"]
        majority = int(np.bincount(data.splits[task.name]["train"].labels).argmax())
        label = {"sentiment": 2, "topic": 1, "urgency": majority}[task.name]
        assert results["test"]["tasks"][task.name] == pytest.approx(
            score_task(task, part.labels, np.full(len(part), label)))
    assert results["test"]["invalid"] == {"sentiment": 0, "topic": 0, "urgency": 10}

    assert main(["report", str(store), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    overall = (tmp_path / "report" / "overall.md").read_text()
    row = next(line for line in overall.splitlines() if "zero-shot stub-model" in line)
    llm = results["test"]["tasks"]
    by_hand = 100 / 3 * sum((llm[t]["macro_f1"] - (ew[t] + 1)) / (ew[t] + 1) for t in ew)  # EW's seed mean: +1
    assert f"{results['test']['avg']:.2f}" in row and f"{by_hand:+.2f}" in row
    ratios = (tmp_path / "report" / "ratios.md").read_text()
    row = next(line for line in ratios.splitlines() if "zero-shot stub-model" in line)
    assert row.count(f"{results['test']['avg']:.2f}") == 2  # the same row at ratio 0.5 and 1


def _write(folder: Path, yaml_text: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "task.yaml").write_text(yaml_text)
    for split in ("train", "val", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_task_folders_take_their_prompt_from_task_yaml(tmp_path) -> None:
    cls = _write(tmp_path / "mood", "labels: [pos, neg]\ndescription: Mood of a message.\n"
                 "instruction: How does the writer feel?\nanswers: {pos: happy}\ntemplate: 'Message: {text}'\n",
                 [{"text": "great day", "label": "pos"}, {"text": "awful day", "label": "neg"},
                  {"text": "fine day", "label": "pos"}])
    multi = _write(tmp_path / "tags", "kind: multilabel\nlabels: [sports, food]\n",
                   [{"text": "pizza at the match", "labels": ["sports", "food"]}, {"text": "soup", "labels": ["food"]}])
    reg = _write(tmp_path / "level", "kind: regression\nscale: [0, 10]\n",
                 [{"text": "a", "label": 2.0}, {"text": "b", "label": 8.0}])
    replies = {"great day": "happy", "awful day": "neg", "fine day": "?", "pizza at the match": "food, sports",
               "soup": "none", "a": "I say 12", "b": "maybe"}
    with chat_server(ChatStub(answer=lambda q: replies[row_text(q)])) as stub:
        assert main(["baseline", "llm", "--task-dirs", f"{cls},{multi},{reg}", "--model", "m", "--base-url", stub.url,
                     "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0
        questions = stub.questions()
    mood = next(q for q in questions if q.endswith("Message: great day"))
    assert mood == ("Mood of a message.\nHow does the writer feel?\nAnswer with exactly one of: happy, neg.\n\n"
                    "Message: great day")
    assert any(q.startswith("The task 'tags'.\nWhich labels apply to the text?\nAnswer with every label that "
                            "applies, as a comma-separated list of: sports, food; or none if none applies.")
               for q in questions)
    assert any("Answer with a number from 0 to 10.\n\nText: a" in q for q in questions)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test"]["invalid"] == {"mood": 1, "tags": 0, "level": 1}
    preds = {p.stem: p.read_text().split("\n")[:-1] for p in (tmp_path / "run" / "predictions" / "test").iterdir()}
    # mood: happy -> pos (0), neg (1), invalid -> majority pos; tags: both, none; level: 12 clipped to 10, mean 5
    assert preds == {"mood": ["0", "1", "0"], "tags": ["0,1", ""], "level": ["10", "5"]}


def test_bad_prompt_keys_in_task_yaml_are_one_line_errors(tmp_path, capsys) -> None:
    folder = _write(tmp_path / "mood", "labels: [pos, neg]\nanswers: {pos: happy, meh: so-so}\n",
                    [{"text": "x", "label": "pos"}, {"text": "y", "label": "neg"}])
    assert main(["baseline", "llm", "--task-dirs", str(folder), "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                 "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {folder / 'task.yaml'}:2: answers: 'meh' is not one of the labels (pos, neg)"
    assert main(["baseline", "llm", "--model", "m", "--concurrency", "0"]) == 2
    assert "--concurrency must be >= 1" in capsys.readouterr().err


def test_a_local_causal_lm_answers_with_batched_greedy_generation(tmp_path) -> None:
    model = tiny_causal_lm(tmp_path / "lm", favour="positive")
    args = ["baseline", "llm", "--backend", "hf", "--model", str(model), "--benchmark", "synthetic",
            "--max-eval-examples", "5", "--batch-size", "2", "--max-tokens", "3", "--cpu", "--no-progress"]
    assert main([*args, "--output-dir", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    data = limit_data(TrainConfig(benchmark="synthetic", max_eval_examples=5), load_benchmark("synthetic"))
    assert results["val"]["invalid"] == {"sentiment": 0, "topic": 5, "urgency": 5}
    sentiment = data.tasks[0]
    assert results["val"]["tasks"]["sentiment"] == pytest.approx(
        score_task(sentiment, data.splits["sentiment"]["val"].labels, np.full(5, 2)))
    replies = [json.loads(line)["reply"] for line in (tmp_path / "run" / "answers" / "sentiment.jsonl").open()]
    assert replies and set(replies) == {"positive positive positive"}
    assert main([*args, "--cache-dir", str(tmp_path / "run" / "answers"), "--output-dir", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "results.json").read_text())["requests"]["asked"] == 0


def test_the_methods_listing_and_train_point_at_the_baseline_command(capsys) -> None:
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "llm-zero-shot" in out and "infomtl baseline llm" in out
    assert main(["train", "--method", "llm-zero-shot", "--benchmark", "synthetic", "--backbone", "tiny"]) == 2
    assert "run `infomtl baseline llm`" in capsys.readouterr().err


def test_affecteval_asks_regression_as_numbers_and_shows_ei_regs_emotion(data_root, tmp_path) -> None:
    replies = {"emobank": "V=3.5, A=2, D=9", "ei_reg": "0.75", "goemotions": "Joy", "emotioneval": "sadness"}
    with chat_server(ChatStub(answer=lambda q: replies[task_of(q, "affecteval")])) as stub:
        assert main(["baseline", "llm", "--benchmark", "affecteval", "--data-dir", str(data_root), "--model", "m",
                     "--base-url", stub.url, "--max-eval-examples", "3", "--splits", "test",
                     "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0
        questions = stub.questions()
    ei = [q for q in questions if task_of(q, "affecteval") == "ei_reg"]
    assert all(re.search(r"Answer with a number from 0 to 1\.\n\nEmotion: (anger|fear|joy|sadness)\nTweet: ", q)
               for q in ei) and ei
    emobank = next(q for q in questions if task_of(q, "affecteval") == "emobank")
    assert "Answer with 3 numbers from 1 to 5, for V, A, D in that order, separated by commas." in emobank
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test"]["invalid"] == {"goemotions": 0, "emotioneval": 0, "emobank": 0, "ei_reg": 0}
    preds = tmp_path / "run" / "predictions" / "test"
    assert (preds / "emobank.txt").read_text() == "3.5\t2\t5\n" * 3  # 9 clipped to the scale's 5
    assert (preds / "ei_reg.txt").read_text() == "0.75\n" * 3
    assert (preds / "goemotions.txt").read_text() == "17\n" * 3  # joy
