"""``infomtl serve``: a real server process answered over loopback HTTP."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import infomtl  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

#: The limits the test server runs with (small, so that each is easy to cross).
MAX_BODY, MAX_TEXTS, MAX_CHARS = 4096, 8, 300
TEXTS = ["the food was great", "please answer soon", "the match went to extra time and then to penalties",
         "ok", "my flight was delayed again", "the new phone is fast but the battery is weak"]


def http(url: str, body: Any = None, method: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """``(status, parsed JSON)`` of one request; ``body``: bytes as they are, an iterable of
    bytes (sent chunked), or an object sent as JSON."""
    if body is not None and not isinstance(body, bytes) and not hasattr(body, "__next__"):
        body = json.dumps(body).encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    """A ``python -m infomtl serve`` subprocess on a free loopback port."""

    def __init__(self, run_dir: Path, logs: Path, *flags: str) -> None:
        self.out, self.err = logs / "stdout.txt", logs / "stderr.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infomtl", "serve", str(run_dir), "--port", "0", *flags],
                stdout=out, stderr=err,
            )
        self.url = self._wait()

    def _wait(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.err.read_text()}")
            if url is None:
                found = re.search(r"on (http://127\.0\.0\.1:\d+)$", self.out.read_text(), re.M)
                url = found.group(1) if found else None
            if url is not None:
                try:
                    if http(url + "/health") == (200, {"status": "ok"}):
                        return url
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server did not start: {self.err.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    srv = Server(tiny_run, tmp_path_factory.mktemp("serve"), "--max-body-bytes", str(MAX_BODY),
                 "--max-texts", str(MAX_TEXTS), "--max-text-chars", str(MAX_CHARS), "--no-access-log")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return infomtl.load(tiny_run)


def assert_same(got: list[dict], expected: list[dict]) -> None:
    """Equal predictions: the same labels, probabilities equal to float precision."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert list(g) == list(e)
        for task in e:
            assert g[task]["label"] == e[task]["label"]
            assert g[task]["probabilities"] == pytest.approx(e[task]["probabilities"], abs=1e-6)


def test_health_and_tasks(server, predictor) -> None:
    assert http(server.url + "/health") == (200, {"status": "ok"})
    status, body = http(server.url + "/tasks")
    assert status == 200
    assert [t["name"] for t in body["tasks"]] == predictor.task_names
    for info, task in zip(body["tasks"], predictor.tasks, strict=True):
        assert info["kind"] == task.kind.value == "classification"
        assert info["labels"] == list(task.labels)
        assert info["pairs"] == "ignored"
    assert body["limits"] == {"max_body_bytes": MAX_BODY, "max_texts": MAX_TEXTS,
                              "max_text_chars": MAX_CHARS}


def test_predictions_equal_load_predict(server, predictor) -> None:
    status, body = http(server.url + "/predict", {"texts": TEXTS})
    assert status == 200
    assert_same(body["predictions"], predictor.predict(TEXTS))
    task = predictor.task_names[-1]
    status, body = http(server.url + "/predict", {"texts": TEXTS[:2], "tasks": [task]})
    assert status == 200
    assert [list(p) for p in body["predictions"]] == [[task], [task]]
    assert_same(body["predictions"], predictor.predict(TEXTS[:2], tasks=[task]))


def test_concurrent_requests_are_all_answered_correctly(server, predictor) -> None:
    batches = [TEXTS[i % len(TEXTS):] + TEXTS[: i % 3] for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda texts: http(server.url + "/predict", {"texts": texts}), batches))
    for texts, (status, body) in zip(batches, answers, strict=True):
        assert status == 200
        assert_same(body["predictions"], predictor.predict(texts))


def chunks(data: bytes, size: int = 1000):
    """``data`` as an iterator of pieces: urllib sends it chunked, without a Content-Length."""
    return iter([data[i : i + size] for i in range(0, len(data), size)])


#: (case, body, status, words of the error message)
BAD_REQUESTS = [
    ("not JSON", b"texts: [a]", 400, "not valid JSON"),
    ("truncated JSON", b'{"texts": ["a"', 400, "not valid JSON"),
    ("not UTF-8", b'{"texts": ["\xff"]}', 400, "not UTF-8"),
    ("nested too deeply", b"[" * 4000, 400, "nested too deeply"),
    ("empty body", b"", 400, "not valid JSON"),
    ("a list, not an object", [["a"]], 422, "JSON object"),
    ("texts missing", {"tasks": ["topic"]}, 422, "missing \"texts\""),
    ("texts a string", {"texts": "a text"}, 422, "\"texts\" must be a list"),
    ("a text not a string", {"texts": ["a", 3]}, 422, "texts[1] must be a string"),
    ("a null text", {"texts": [None]}, 422, "texts[0] must be a string"),
    ("no texts", {"texts": []}, 422, "\"texts\" is empty"),
    ("too many texts", {"texts": ["a"] * (MAX_TEXTS + 1)}, 422, f"at most {MAX_TEXTS} per request"),
    ("text too long", {"texts": ["a", "b" * (MAX_CHARS + 1)]}, 422, f"texts[1] has {MAX_CHARS + 1} characters"),
    ("unknown task", {"texts": ["a"], "tasks": ["weather"]}, 422, "unknown task(s) 'weather'"),
    ("tasks not a list", {"texts": ["a"], "tasks": "topic"}, 422, "\"tasks\" must be a list"),
    ("no tasks", {"texts": ["a"], "tasks": []}, 422, "\"tasks\" is empty"),
    ("pairs of the wrong length", {"texts": ["a", "b"], "pairs": ["x"]}, 422, "2 texts but 1 pairs"),
    ("unknown key", {"text": ["a"]}, 422, "unknown key 'text'"),
    ("body too large", {"texts": ["a" * 200] * 30}, 413, f"body over {MAX_BODY} bytes"),
    ("body too large, chunked", chunks(json.dumps({"texts": ["a" * 200] * 30}).encode()), 413,
     f"body over {MAX_BODY} bytes"),
]


@pytest.mark.parametrize(("body", "status", "words"), [c[1:] for c in BAD_REQUESTS],
                         ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_json_error_and_the_server_keeps_serving(server, body, status, words) -> None:
    got, answer = http(server.url + "/predict", body, method="POST",
                       headers={"Content-Type": "application/json"})
    assert got == status
    assert list(answer) == ["error"] and words in answer["error"] and "\n" not in answer["error"]
    assert http(server.url + "/health") == (200, {"status": "ok"})


def test_other_paths_and_methods_are_json_errors(server) -> None:
    assert http(server.url + "/nothing-here") == (404, {"error": "Not Found"})
    assert http(server.url + "/predict") == (405, {"error": "Method Not Allowed"})


def test_the_server_stops_cleanly_on_sigterm(server, predictor) -> None:
    status, body = http(server.url + "/predict", {"texts": TEXTS[:1]})  # still serving after all the above
    assert status == 200
    assert_same(body["predictions"], predictor.predict(TEXTS[:1]))
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutting down
    log = server.err.read_text()
    assert "Finished server process" in log and "Traceback" not in log
