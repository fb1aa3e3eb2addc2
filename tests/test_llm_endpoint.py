"""The OpenAI-compatible backend against a chat-completions server on 127.0.0.1, and the answer
cache: retries (429 with Retry-After, 5xx, timeouts, malformed replies), fatal statuses, the
API key, concurrency, and answers that survive a torn write."""

from __future__ import annotations

import threading
import time

import pytest

from infomtl.baselines.cache import AnswerCache, answer_key
from infomtl.baselines.chat_api import ChatEndpoint, retry_after
from infomtl.errors import DataError, InfomtlError
from llm_fakes import ChatStub, Reply, chat_server, completion

pytest.importorskip("httpx")


def ask(stub: ChatStub, questions: list[str], **options) -> tuple[dict[str, str], int]:
    options = {"backoff": 0.01, "timeout": 5.0, **options}
    endpoint = ChatEndpoint(stub.url, "stub-model", **options)
    got: dict[str, str] = {}
    retries = endpoint.ask([(q, [{"role": "user", "content": q}]) for q in questions], got.__setitem__)
    return got, retries


def test_every_question_is_one_request_at_temperature_zero() -> None:
    with chat_server(ChatStub(answer=lambda q: q.upper())) as stub:
        got, retries = ask(stub, ["a", "b", "c"], max_tokens=5)
    assert got == {"a": "A", "b": "B", "c": "C"} and retries == 0
    assert sorted(stub.questions()) == ["a", "b", "c"]
    assert all(b["temperature"] == 0 and b["max_tokens"] == 5 and b["model"] == "stub-model" for b in stub.requests)


def test_429_is_retried_after_the_servers_retry_after() -> None:
    def script(n: int, body: dict) -> Reply:
        if n == 0:
            return Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.4"})
        return Reply(body=completion("joy"))

    with chat_server(ChatStub(script=script)) as stub:
        got, retries = ask(stub, ["q"])
    assert got == {"q": "joy"} and retries == 1
    assert stub.times[1] - stub.times[0] >= 0.4  # the backoff alone would be 0.01 s


@pytest.mark.parametrize("bad", [
    Reply(500, {"error": {"message": "boom"}}),
    Reply(503, b"<html>unavailable</html>"),
    Reply(200, b"not json at all"),
    Reply(200, {"choices": []}),  # no choices[0].message
    Reply(200, {"object": "chat.completion"}),
    Reply(200, body=completion("late"), delay=1.5),  # past the 0.5 s timeout
])
def test_server_errors_malformed_replies_and_timeouts_are_retried(bad: Reply) -> None:
    script = lambda n, body: bad if n < 2 else Reply(body=completion("fine"))  # noqa: E731
    with chat_server(ChatStub(script=script)) as stub:
        got, retries = ask(stub, ["q"], timeout=0.5)
    assert got == {"q": "fine"} and retries == 2 and len(stub.requests) == 3


def test_a_request_that_keeps_failing_stops_the_run_after_max_retries() -> None:
    with chat_server(ChatStub(script=lambda n, body: Reply(500, {}))) as stub:
        with pytest.raises(InfomtlError, match=r"gave up after 3 retries; last: HTTP 500.*--resume"):
            ask(stub, ["q"], max_retries=3)
    assert len(stub.requests) == 4


def test_a_null_content_is_an_empty_answer_not_an_error() -> None:
    with chat_server(ChatStub(script=lambda n, body: Reply(body=completion(None)))) as stub:
        got, retries = ask(stub, ["q"])
    assert got == {"q": ""} and retries == 0


def test_the_key_is_sent_from_the_environment_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_KEY", "sk-secret-123")
    script = lambda n, body: Reply(401, {"error": {"message": "Incorrect API key sk-secret-123"}})  # noqa: E731
    with chat_server(ChatStub(script=script)) as stub:
        with pytest.raises(InfomtlError) as caught:
            ask(stub, ["q"], api_key_env="STUB_KEY")
    assert stub.headers[0]["authorization"] == "Bearer sk-secret-123"
    message = str(caught.value)
    assert "HTTP 401" in message and "$STUB_KEY" in message and "sk-secret-123" not in message
    assert len(stub.requests) == 1  # a 401 is not retried
    monkeypatch.delenv("STUB_KEY")
    with chat_server(ChatStub()) as stub:
        ask(stub, ["q"], api_key_env="STUB_KEY")
    assert "authorization" not in stub.headers[0]  # no key: no header (local servers need none)


def test_at_most_concurrency_requests_are_in_flight() -> None:
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def script(n: int, body: dict) -> Reply:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return Reply(body=completion("x"))

    with chat_server(ChatStub(script=script)) as stub:
        got, _ = ask(stub, [f"q{i}" for i in range(12)], concurrency=3)
    assert len(got) == 12 and len(stub.requests) == 12
    assert state["most"] == 3


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("2") == 2.0 and retry_after("0.5") == 0.5
    assert retry_after(None) == 0.0 and retry_after("soon") == 0.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_the_cache_keeps_answers_and_tolerates_a_torn_last_line(tmp_path) -> None:
    cache = AnswerCache(tmp_path)
    with cache:
        cache.append("emotion", "k1", "joy")
        cache.append("emotion", "k2", "anger, \"quoted\"\nnext line")
    path = tmp_path / "emotion.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"key": "k3", "reply": "sad')  # a kill in the middle of a write
    assert AnswerCache(tmp_path).load("emotion") == {"k1": "joy", "k2": "anger, \"quoted\"\nnext line"}
    with AnswerCache(tmp_path) as again:
        again.append("emotion", "k3", "sadness")
    assert AnswerCache(tmp_path).load("emotion")["k3"] == "sadness"
    assert AnswerCache(tmp_path).load("irony") == {}
    lines = path.read_text(encoding="utf-8").split("\n")  # the torn line was cut off before the append
    assert len(lines) == 4 and lines[2] == '{"key": "k3", "reply": "sadness"}' and lines[3] == ""


def test_a_damaged_cache_line_that_is_not_the_last_is_an_error(tmp_path) -> None:
    (tmp_path / "hate.jsonl").write_text('{"key": "a", "reply": "x"}\nnot json\n{"key": "b", "reply": "y"}\n')
    with pytest.raises(DataError, match=r"hate.jsonl:2: not a line of an answer cache"):
        AnswerCache(tmp_path).load("hate")


def test_a_cache_key_depends_on_backend_model_settings_and_messages() -> None:
    messages = [{"role": "user", "content": "q"}]
    key = answer_key("openai", "m", {"max_tokens": 16}, messages)
    assert key == answer_key("openai", "m", {"max_tokens": 16}, [{"content": "q", "role": "user"}])
    others = {answer_key("hf", "m", {"max_tokens": 16}, messages), answer_key("openai", "m2", {"max_tokens": 16},
              messages), answer_key("openai", "m", {"max_tokens": 8}, messages),
              answer_key("openai", "m", {"max_tokens": 16}, [{"role": "user", "content": "q2"}])}
    assert key not in others and len(others) == 4
