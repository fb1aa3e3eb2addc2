"""``infomtl serve``: a small HTTP JSON API over a trained run or export folder.

Endpoints (built with FastAPI, served by uvicorn; the ``serve`` extra)::

    POST /predict   {"texts": [...], "tasks": [...], "pairs": [...]}  ("tasks", "pairs" optional)
                    -> {"predictions": [{task: prediction}, ...]}, one dict per text, as
                       :meth:`infomtl.inference.predict.Predictor.predict` returns them
    GET  /tasks     -> {"tasks": [{"name", "kind", "labels" | "targets", ...}], "limits": {...}}
    GET  /health    -> {"status": "ok"}

Every refusal is a JSON object ``{"error": "<one line>"}`` with a 4xx status: 413 for a
body over ``max_body_bytes``, 400 for a body that is not JSON, 422 for JSON of the
wrong shape (``texts`` missing, not a list of strings, empty, over ``max_texts``; a
text over ``max_text_chars``; an unknown task or key), 404/405 for another path or
method; an unexpected failure is a 500 of the same shape. Prediction runs in a worker
thread, one request at a time (an asyncio lock: the tokenizer is not thread-safe), so
the event loop keeps answering meanwhile. (No ``from __future__ import annotations``
here: FastAPI reads the endpoints' annotations.)
"""

import logging
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import JSONError, loads_json
from infomtl.tasks import TaskKind

log = logging.getLogger(__name__)

#: What ``GET /tasks`` says of a task's text pairs, by its pair mode (see :mod:`infomtl.inference.predict`).
PAIRS = {"none": "ignored", "first": "required", "second": "optional"}
REQUEST_KEYS = ("texts", "tasks", "pairs")
#: Bytes past ``max_body_bytes`` read and dropped before a 413 (see :func:`_read_body`).
DRAIN_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-request limits of ``POST /predict`` (each a ``--max-...`` flag of ``infomtl serve``)."""

    max_body_bytes: int = 1_048_576
    max_texts: int = 128
    max_text_chars: int = 10_000

    def validate(self) -> "Limits":
        """Raise :class:`ConfigError` naming the flag of a limit below 1."""
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        return self


class RequestError(Exception):
    """A request the API refuses: the HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def require_extra() -> None:
    """Raise :class:`InfomtlError` when FastAPI or uvicorn is not installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise InfomtlError("infomtl serve needs FastAPI and uvicorn: install infomtl[serve] "
                           "(pip install 'infomtl[serve]')") from None


def task_info(predictor: Any) -> list[dict[str, Any]]:
    """Name, kind, labels or targets, threshold (multi-label) and pair use of every task."""
    modes = predictor.pair_modes()
    out = []
    for task in predictor.tasks:
        info: dict[str, Any] = {"name": task.name, "kind": task.kind.value}
        if task.kind is TaskKind.REGRESSION:
            info["targets"] = list(task.targets)
        else:
            info["labels"] = list(task.labels)
        if task.kind is TaskKind.MULTILABEL:
            info["threshold"] = task.threshold
        info["pairs"] = PAIRS.get(modes.get(task.name, "none"), "ignored")
        out.append(info)
    return out


def parse_request(body: bytes, limits: Limits, task_names: list[str]
                  ) -> tuple[list[str], list[str] | None, list[str] | None]:
    """``(texts, pairs, tasks)`` of a ``POST /predict`` body.

    Raises:
        RequestError: 400 for a body that is not JSON, 422 for JSON of the wrong shape.
    """
    try:
        data = loads_json(body)
    except JSONError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if exc.lineno is not None else ""
        raise RequestError(400, f"body is not valid JSON ({exc.reason}{where})") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"expected a JSON object with \"texts\", got {type(data).__name__}")
    unknown = [k for k in data if k not in REQUEST_KEYS]
    if unknown:
        raise RequestError(422, f"unknown key {unknown[0]!r}; expected {', '.join(REQUEST_KEYS)}")
    if "texts" not in data:
        raise RequestError(422, "missing \"texts\" (a list of strings)")
    texts = _strings(data["texts"], "texts", limits)
    if not texts:
        raise RequestError(422, "\"texts\" is empty")
    if len(texts) > limits.max_texts:
        raise RequestError(422, f"{len(texts)} texts; at most {limits.max_texts} per request "
                           "(--max-texts)")
    pairs = None
    if data.get("pairs") is not None:
        pairs = _strings(data["pairs"], "pairs", limits)
        if len(pairs) != len(texts):
            raise RequestError(422, f"{len(texts)} texts but {len(pairs)} pairs")
    tasks = None
    if data.get("tasks") is not None:
        tasks = _strings(data["tasks"], "tasks", limits)
        if not tasks:
            raise RequestError(422, "\"tasks\" is empty (leave it out for every task)")
        unknown = [t for t in tasks if t not in task_names]
        if unknown:
            raise RequestError(422, f"unknown task(s) {', '.join(map(repr, unknown))}; "
                               f"this model predicts {', '.join(task_names)}")
    return texts, pairs, tasks


def _strings(value: Any, key: str, limits: Limits) -> list[str]:
    if not isinstance(value, list):
        raise RequestError(422, f"\"{key}\" must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RequestError(422, f"{key}[{i}] must be a string, got {type(item).__name__}")
        if len(item) > limits.max_text_chars:
            raise RequestError(422, f"{key}[{i}] has {len(item)} characters; at most "
                               f"{limits.max_text_chars} (--max-text-chars)")
    return value


def create_app(predictor: Any, limits: Limits | None = None, batch_size: int = 64) -> Any:
    """The FastAPI app serving ``predictor`` (see the module docstring); default limits: :class:`Limits`."""
    import asyncio

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    limits = (limits or Limits()).validate()
    lock = asyncio.Lock()
    names = list(predictor.task_names)
    tasks = {"tasks": task_info(predictor), "limits": asdict(limits)}
    app = FastAPI(title="infomtl", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:  # logged by uvicorn
        return error(500, f"internal error ({type(exc).__name__})")

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/tasks")
    async def get_tasks() -> JSONResponse:
        return JSONResponse(tasks)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body = await _read_body(request, limits.max_body_bytes)
        texts, pairs, chosen = parse_request(body, limits, names)
        async with lock:
            try:
                predictions = await run_in_threadpool(
                    predictor.predict, texts, pairs, chosen, batch_size=batch_size)
            except InfomtlError as exc:  # e.g. a task that needs pairs
                raise RequestError(422, str(exc)) from None
        return JSONResponse({"predictions": predictions})

    return app


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body; :class:`RequestError` 413 for one over ``limit`` bytes.

    An over-limit body is read to its end (and dropped) up to :data:`DRAIN_BYTES` past
    the limit before the 413, so that a client still sending it reads the answer
    rather than a reset connection; a larger one is cut off.
    """
    too_large = RequestError(413, f"body over {limit} bytes (--max-body-bytes)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + DRAIN_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + DRAIN_BYTES:
            raise too_large
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_large
    return b"".join(chunks)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise InfomtlError(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})") from None


def serve(path: str | Path, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          batch_size: int = 64, access_log: bool = True) -> None:
    """Load ``path`` (a run, STL or export folder) and serve it until interrupted.

    Logs ``serving PATH (N tasks) on http://HOST:PORT`` (the bound port, INFO) once the
    socket listens; SIGINT or SIGTERM stops it after the requests in flight.
    """
    require_extra()
    import uvicorn

    from infomtl.inference.predict import load

    limits = (limits or Limits()).validate()
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    predictor = load(path)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    app = create_app(predictor, limits, batch_size)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=access_log))
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s (%d tasks) on http://%s:%d", path, len(predictor.tasks), shown, bound)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
