"""An OpenAI-compatible chat-completions endpoint as the baseline's model (``--backend openai``).

Each question is one ``POST BASE_URL/chat/completions`` with ``{"model", "messages",
"temperature": 0, "max_tokens"}``, sent with httpx (``pip install 'infomtl[llm]'``),
``concurrency`` requests in flight at once. The API key is read from the environment
variable ``api_key_env`` when the requests start and sent as ``Authorization: Bearer``
(no header when the variable is unset, as local servers need none); it is never
logged, written or put in an error message.

A request is retried, up to ``max_retries`` times, after a 429, a 5xx, a timeout
(``timeout`` seconds), a connection error or a malformed reply (a body that is not
JSON or has no ``choices[0].message``), waiting ``backoff · 2^attempt`` seconds
(times a random factor in [0.5, 1], at most ``max_backoff``), or the server's
``Retry-After`` (seconds or an HTTP date) when that is longer. Any other status (400,
401, 404...) stops the run at once with one line naming it. A reply whose ``content``
is null or empty (a content filter) is an answer: the empty reply, counted invalid.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infomtl.baselines.cache import answer_key
from infomtl.baselines.questions import Messages
from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import JSONError, loads_json

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class _Retry(Exception):
    """A failure worth another try: what happened, and how long the server asked us to wait."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.wait = reason, wait


def retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP date); 0 if absent or bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def reply_text(body: bytes) -> str:
    """The text of a chat-completions reply body; :class:`_Retry` if it is malformed."""
    try:
        data = loads_json(body)
    except JSONError as exc:
        raise _Retry(f"a reply that is not JSON ({exc})") from None
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise _Retry("a reply without choices[0].message") from None
    if not isinstance(message, dict):
        raise _Retry("a reply whose choices[0].message is not an object")
    content = message.get("content")
    return content if isinstance(content, str) else ""


@dataclass
class ChatEndpoint:
    """The endpoint and how it is asked (see the module docstring)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    max_tokens: int = 16
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 60.0

    name = "openai"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def settings(self) -> dict[str, Any]:
        """What, besides the model and the messages, decides an answer (part of its cache key)."""
        return {"temperature": 0, "max_tokens": self.max_tokens}

    def key(self, messages: Messages) -> str:
        return answer_key(self.name, self.model, self.settings(), messages)

    def ask(self, questions: list[tuple[str, Messages]], on_reply: Callable[[str, str], None]) -> int:
        """Ask every ``(key, messages)``; ``on_reply(key, reply)`` as each answer arrives (in
        this thread). Returns the number of retries. Raises :class:`InfomtlError` when a
        request fails for good (the answers received so far have been handed over)."""
        if not questions:
            return 0
        try:
            import httpx
        except ImportError:
            raise ConfigError("--backend openai needs httpx: pip install 'infomtl[llm]'") from None
        return asyncio.run(self._ask_all(httpx, questions, on_reply))

    async def _ask_all(self, httpx: Any, questions: list[tuple[str, Messages]],
                       on_reply: Callable[[str, str], None]) -> int:
        """``concurrency`` workers, each with its own connection, take the questions in turn."""
        key = os.environ.get(self.api_key_env, "").strip()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        queue: asyncio.Queue[tuple[str, Messages]] = asyncio.Queue()
        for question in questions:
            queue.put_nowait(question)
        retries = [0]

        async def worker() -> None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout), limits=limits) as client:
                while not queue.empty():
                    question_key, messages = queue.get_nowait()
                    on_reply(question_key, await self._post(httpx, client, messages, retries))

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(questions)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return retries[0]

    async def _post(self, httpx: Any, client: Any, messages: Messages, retries: list[int]) -> str:
        body = {"model": self.model, "messages": messages, **self.settings()}
        for attempt in range(self.max_retries + 1):
            try:
                return await self._once(httpx, client, body)
            except _Retry as exc:
                if attempt == self.max_retries:
                    raise InfomtlError(f"{self.url}: gave up after {self.max_retries} retries; last: {exc.reason} "
                                       "(answers received so far are cached: run again with --resume)") from None
                delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
                wait = max(delay, exc.wait)
                retries[0] += 1
                log.debug("%s: %s; retry %d in %.2f s", self.url, exc.reason, attempt + 1, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _once(self, httpx: Any, client: Any, body: dict[str, Any]) -> str:
        try:
            response = await client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Retry(f"no reply within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection error ({type(exc).__name__})") from None
        status = response.status_code
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(f"HTTP {status}", retry_after(response.headers.get("retry-after")))
        if status != 200:
            hint = f"; is the key in ${self.api_key_env} right?" if status in (401, 403) else ""
            detail = _error_message(response.content)
            secret = os.environ.get(self.api_key_env, "").strip()
            if secret:
                detail = detail.replace(secret, "***")
            raise InfomtlError(f"{self.url}: HTTP {status}{': ' + detail if detail else ''}{hint}")
        return reply_text(response.content)


def _error_message(body: bytes) -> str:
    """The ``error.message`` of an error body, shortened to one line (empty if there is none)."""
    try:
        data = loads_json(body)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error", "")
    except (JSONError, AttributeError, KeyError, TypeError):
        return ""
    text = " ".join(str(message).split())
    return text[:200]
