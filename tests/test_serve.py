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
    """A ``python -m infomtl serve`` subprocess on a free loopback port, in fp32 as this process's
    predictors (conftest gives them an AVX2 CPU's flags; a subprocess reads the machine's, and on a
    CPU with bf16 cores ``--precision auto`` would serve in bf16)."""

    def __init__(self, run_dir: Path, logs: Path, *flags: str) -> None:
        self.out, self.err = logs / "stdout.txt", logs / "stderr.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infomtl", "serve", str(run_dir), "--port", "0", "--precision", "fp32", *flags],
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
    return infomtl.load(tiny_run, precision="fp32")


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
    ("JSON null", b"null", 422, "JSON object"),
    ("an empty text", {"texts": ["a", ""]}, 422, "texts[1] is empty"),
    ("a blank text", {"texts": [" \t\n"]}, 422, "texts[0] is empty"),
    ("pairs not a list", {"texts": ["a"], "pairs": "x"}, 422, "\"pairs\" must be a list"),
    ("a pair not a string", {"texts": ["a"], "pairs": [1]}, 422, "pairs[0] must be a string"),
    ("a pair too long", {"texts": ["a"], "pairs": ["p" * (MAX_CHARS + 1)]}, 422,
     f"pairs[0] has {MAX_CHARS + 1} characters"),
    ("a task not a string", {"texts": ["a"], "tasks": [1]}, 422, "unknown task(s) 1"),
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


def test_the_openapi_schema_describes_the_api_and_its_limits(server, predictor) -> None:
    status, schema = http(server.url + "/openapi.json")
    assert status == 200
    assert set(schema["paths"]) == {"/predict", "/tasks", "/health", "/stats"}
    post = schema["paths"]["/predict"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["texts"] and body["additionalProperties"] is False
    texts = body["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, MAX_TEXTS, MAX_CHARS)
    tasks = body["properties"]["tasks"]["anyOf"][0]
    assert tasks["items"]["enum"] == predictor.task_names
    assert set(post["responses"]) == {"200", "400", "413", "422", "503", "504"}
    assert post["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}
    with urllib.request.urlopen(server.url + "/docs", timeout=60) as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "swagger" in page.lower() and "/openapi.json" in page


def test_answers_are_what_the_schema_says(server) -> None:
    from infomtl.inference import serve_models as models

    for path, model in (("/health", models.HealthResponse), ("/tasks", models.TasksResponse),
                        ("/stats", models.StatsResponse)):
        status, body = http(server.url + path)
        assert status == 200
        assert model.model_validate(body).model_dump(exclude_none=True) == body
    status, body = http(server.url + "/predict", {"texts": TEXTS[:3]})
    assert status == 200
    parsed = models.PredictResponse.model_validate(body)
    assert [sorted(p) for p in parsed.predictions] == [sorted(p) for p in body["predictions"]]
    assert all(isinstance(v, models.ClassificationPrediction) for p in parsed.predictions for v in p.values())
    status, body = http(server.url + "/predict", {"texts": []})
    assert status == 422 and models.ErrorResponse.model_validate(body).error == "\"texts\" is empty"


def test_the_server_stops_cleanly_on_sigterm(server, predictor) -> None:
    status, body = http(server.url + "/predict", {"texts": TEXTS[:1]})  # still serving after all the above
    assert status == 200
    assert_same(body["predictions"], predictor.predict(TEXTS[:1]))
    assert server.stop() == 0
    log = server.err.read_text()
    assert "Finished server process" in log and "Traceback" not in log


def test_sigterm_answers_the_requests_in_flight_then_exits_0(tiny_run, tmp_path, predictor) -> None:
    # a long batch wait keeps the requests queued (and visible in /stats) when SIGTERM comes
    srv = Server(tiny_run, tmp_path, "--batch-wait-ms", "1500", "--no-access-log")
    batches = [TEXTS[i:] for i in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending = [pool.submit(http, srv.url + "/predict", {"texts": t}) for t in batches]
            deadline = time.monotonic() + 30
            while http(srv.url + "/stats")[1]["queued"] < len(batches) and time.monotonic() < deadline:
                time.sleep(0.02)
            srv.proc.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=60) for f in pending]
        assert srv.proc.wait(timeout=60) == 0
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    for texts, (status, body) in zip(batches, answers, strict=True):
        assert status == 200
        assert_same(body["predictions"], predictor.predict(texts))
    log = srv.out.read_text() + srv.err.read_text()
    assert "answering the requests in flight" in log and "answered 4 requests (18 texts) in 1 batches" in log
    assert "Traceback" not in log
    with pytest.raises(OSError):
        http(srv.url + "/health")  # no longer listening


def http_with_headers(url: str, body: Any) -> tuple[int, Any, Any]:
    """``(status, parsed JSON, headers)`` of a POST (headers: case-insensitive ``get``)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def test_a_full_queue_gets_503_with_retry_after_and_a_late_answer_504(tiny_run, tmp_path) -> None:
    # one request may wait; it waits for its batch to fill longer than the timeout allows
    srv = Server(tiny_run, tmp_path, "--max-queue", "1", "--batch-wait-ms", "3000", "--request-timeout", "1",
                 "--no-access-log")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(http_with_headers, srv.url + "/predict", {"texts": TEXTS[:2]})
            deadline = time.monotonic() + 30
            while http(srv.url + "/stats")[1]["queued"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            status, body, headers = http_with_headers(srv.url + "/predict", {"texts": TEXTS[:1]})
            assert status == 503 and headers.get("Retry-After") == "1"
            assert body == {"error": "server busy: 1 requests waiting (--max-queue); retry in 1 s"}
            status, body, _ = first.result(timeout=60)
        assert status == 504 and body == {"error": "no answer within 1 s (--request-timeout)"}
        stats = http(srv.url + "/stats")[1]
        assert (stats["refused"], stats["timed_out"], stats["queued"], stats["batches"]) == (1, 1, 0, 0)
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--max-batch", "0", "--max-batch must be an integer >= 1, got 0"),
    ("--batch-wait-ms", "-1", "--batch-wait-ms must be a number >= 0, got -1.0"),
    ("--request-timeout", "0", "--request-timeout must be a number of seconds > 0, got 0.0"),
    ("--max-tokens", "0", "--max-tokens must be >= 1, got 0"),
])
def test_bad_serving_flags_are_one_line_errors(tiny_run, flag, value, words) -> None:
    proc = subprocess.run([sys.executable, "-m", "infomtl", "serve", str(tiny_run), flag, value],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {words}"
