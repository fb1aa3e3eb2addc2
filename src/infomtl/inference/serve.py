"""``infomtl serve``: a small HTTP JSON API over a trained run or export folder.

Endpoints (built with FastAPI, served by uvicorn; the ``serve`` extra)::

    POST /predict   {"texts": [...], "tasks": [...], "pairs": [...]}  ("tasks", "pairs" optional)
                    -> {"predictions": [{task: prediction}, ...]}, one dict per text, as
                       :meth:`infomtl.inference.predict.Predictor.predict` returns them
    GET  /tasks     -> {"tasks": [{"name", "kind", "labels" | "targets", ...}], "limits": {...}}
    GET  /health    -> {"status": "ok"}
    GET  /stats     -> counters: requests, texts, batches, largest batch, refused, timed out, queued, busy ms
    GET  /openapi.json, /docs   the OpenAPI schema of the above (:mod:`infomtl.inference.serve_models`)

Concurrent requests are batched into one forward pass (:mod:`infomtl.inference.batcher`:
``--max-batch`` texts, ``--batch-wait-ms``, a queue of ``--max-queue`` requests, a
``--request-timeout``); prediction runs in a worker thread, so the event loop keeps
answering meanwhile.

Every refusal is a JSON object ``{"error": "<one line>"}``: 413 for a body over
``max_body_bytes``, 400 for a body that is not JSON, 422 for JSON of the wrong shape
(``texts`` missing, not a list of strings, empty, over ``max_texts``; a text empty or over
``max_text_chars``; an unknown task or key), 404/405 for another path or method, 503
(with ``Retry-After``) when the queue is full, 504 past the request timeout; an
unexpected failure is a 500 of the same shape. SIGTERM stops the server gracefully:
no new connections, every request already received is answered, exit status 0.
(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations.)
"""

import logging
import math
import signal
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import JSONError, loads_json
from infomtl.inference.batcher import Batcher, BatchSettings, QueueFull, RequestTimeout
from infomtl.tasks import TaskKind
from infomtl.version import __version__

log = logging.getLogger(__name__)

#: What ``GET /tasks`` says of a task's text pairs, by its pair mode (see :mod:`infomtl.inference.predict`).
PAIRS = {"none": "ignored", "first": "required", "second": "optional"}
#: Padded tokens per forward pass (``--max-tokens``): the texts of a batch are sorted by
#: length, so the budget keeps short texts out of a long one's padding (measured on
#: MiniLM and tweets: ``benchmarks/serve_load.py --modes batched,no-token-budget``). 2048,
#: not less: under bf16 on a CPU, with passes of at most 512 tokens (16 tweets) the loaded
#: server answered 15 % fewer requests/s than with 2048 (196 against 231 in one run; small
#: bf16 products run far below the matmul peak); in fp32 the two budgets served alike
#: (benchmarks/RESULTS.md, "Serving under load").
MAX_TOKENS = 2048
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

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


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


def parse_request(body: bytes, limits: Limits, task_names: list[str], model: Any = None
                  ) -> tuple[list[str], list[str] | None, list[str] | None]:
    """``(texts, pairs, tasks)`` of a ``POST /predict`` body, validated by ``model`` (the
    :func:`infomtl.inference.serve_models.request_model` of these limits and tasks; built
    when not given).

    Raises:
        RequestError: 400 for a body that is not JSON, 422 for JSON of the wrong shape.
    """
    from pydantic import ValidationError

    from infomtl.inference.serve_models import first_error, request_model

    if model is None:
        model = request_model(limits.max_texts, limits.max_text_chars, task_names)

    try:
        data = loads_json(body)
    except JSONError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if exc.lineno is not None else ""
        raise RequestError(400, f"body is not valid JSON ({exc.reason}{where})") from None
    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        raise RequestError(422, first_error(exc, limits.max_texts, limits.max_text_chars, task_names)) from None
    return request.texts, request.pairs, request.tasks


def create_app(predictor: Any, limits: Limits | None = None, batch_size: int = 64,
               batching: BatchSettings | None = None, max_tokens: int | None = MAX_TOKENS) -> Any:
    """The FastAPI app serving ``predictor`` (see the module docstring); default limits:
    :class:`Limits`, default batching: :class:`infomtl.inference.batcher.BatchSettings`;
    ``batch_size`` rows and ``max_tokens`` padded tokens per forward pass."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from infomtl.inference import serve_models as models

    limits = (limits or Limits()).validate()
    batching = (batching or BatchSettings()).validate()
    names = list(predictor.task_names)
    tasks = {"tasks": task_info(predictor), "limits": asdict(limits)}
    request_model = models.request_model(limits.max_texts, limits.max_text_chars, names)

    def run(texts: list[str], pairs: list[str] | None, chosen: list[str] | None) -> list[Any]:
        return predictor.predict(texts, pairs, chosen, batch_size=batch_size, max_tokens=max_tokens)

    batcher = Batcher(run, batching)

    @asynccontextmanager
    async def lifespan(app: Any):
        batcher.start()
        yield
        await batcher.stop()
        done = batcher.stats()
        log.info("answered %d requests (%d texts) in %d batches; %d refused, %d timed out",
                 done["requests"], done["texts"], done["batches"], done["refused"], done["timed_out"])

    app = FastAPI(title="infomtl", version=__version__, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json", lifespan=lifespan,
                  description=f"Predictions of {', '.join(names)} (one model, every task at once).")

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:  # logged by uvicorn
        return error(500, f"internal error ({type(exc).__name__})")

    @app.get("/health", response_model=models.HealthResponse)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/tasks", response_model=models.TasksResponse)
    async def get_tasks() -> JSONResponse:
        return JSONResponse(tasks)

    @app.get("/stats", response_model=models.StatsResponse)
    async def get_stats() -> JSONResponse:
        return JSONResponse(batcher.stats())

    body_schema = {"required": True, "content": {"application/json": {"schema": request_model.model_json_schema()}}}

    @app.post("/predict", response_model=models.PredictResponse,
              responses=models.error_responses(400, 413, 422, 503, 504),
              openapi_extra={"requestBody": body_schema})
    async def predict(request: Request) -> JSONResponse:
        body = await _read_body(request, limits.max_body_bytes)
        texts, pairs, chosen = parse_request(body, limits, names, request_model)
        try:
            predictions = await batcher.submit(texts, pairs, chosen)
        except QueueFull as exc:
            raise RequestError(503, f"server busy: {exc}", {"Retry-After": str(exc.retry_after)}) from None
        except RequestTimeout as exc:
            raise RequestError(504, str(exc)) from None
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
          batch_size: int = 64, access_log: bool = True, batching: BatchSettings | None = None,
          max_tokens: int = MAX_TOKENS, revision: str | None = None, quantize: str | None = None,
          precision: str = "auto") -> None:
    """Load ``path`` (a run, STL or export folder, or a Hub repo id at ``revision``; ``quantize`` and
    ``precision`` as :func:`infomtl.inference.predict.load` takes them) and serve it until stopped.

    Logs ``serving PATH (N tasks) on http://HOST:PORT`` (the bound port, INFO) once the
    socket listens. SIGTERM (or SIGINT) stops it gracefully: the socket closes, every
    request already received is answered (at most ``--request-timeout`` plus 5 s), and
    the function returns (``infomtl serve`` exits 0; after SIGINT the interrupt is raised).
    """
    require_extra()
    import uvicorn

    from infomtl.inference.predict import load

    limits = (limits or Limits()).validate()
    batching = (batching or BatchSettings()).validate()
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {max_tokens}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    predictor = load(path, revision=revision, quantize=quantize, precision=precision)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    app = create_app(predictor, limits, batch_size, batching, max_tokens)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if sig == signal.SIGTERM:  # a requested stop: shut down gracefully, then return (not re-raised)
                log.info("SIGTERM: no new connections; answering the requests in flight")
                self.should_exit = True
            else:
                super().handle_exit(sig, frame)

    grace = math.ceil(batching.request_timeout_s) + 5
    server = Server(uvicorn.Config(app, log_level="info", access_log=access_log, timeout_graceful_shutdown=grace))
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s (%d tasks) on http://%s:%d", path, len(predictor.tasks), shown, bound)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
