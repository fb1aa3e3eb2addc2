"""The request and response models of ``infomtl serve`` (pydantic; the ``serve`` extra).

They validate ``POST /predict`` bodies and make the OpenAPI schema that the server
publishes at ``/openapi.json`` (browsable at ``/docs``). The request model is built per
server (:func:`request_model`) so that the schema carries the server's limits and task
names; a body it refuses gets one line naming the key or item and what was expected
(:func:`first_error`). Responses are written as the models describe them (tests check
answers against these models) without being re-validated on every request.
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

REQUEST_KEYS = ("texts", "tasks", "pairs")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty (every text needs a non-space character)")
    return text


def request_model(max_texts: int, max_text_chars: int, task_names: list[str]) -> type[BaseModel]:
    """The ``POST /predict`` body model for these limits and tasks."""
    Text = Annotated[str, StringConstraints(max_length=max_text_chars), AfterValidator(_not_blank)]
    Pair = Annotated[str, StringConstraints(max_length=max_text_chars)]
    TaskName = Literal[tuple(task_names)]  # type: ignore[valid-type]

    class PredictRequest(BaseModel):
        """Texts to label; optionally the tasks to predict and one pair text per text."""

        model_config = ConfigDict(extra="forbid", strict=True)

        texts: list[Text] = Field(min_length=1, max_length=max_texts,
                                  description="the texts, each with a non-space character")
        tasks: list[TaskName] | None = Field(  # type: ignore[valid-type]
            default=None, min_length=1, description="tasks to predict (default: all)")
        pairs: list[Pair] | None = Field(
            default=None, description="one second text per text, for tasks trained on text pairs")

        @model_validator(mode="after")
        def _pairs_align(self) -> "PredictRequest":
            if self.pairs is not None and len(self.pairs) != len(self.texts):
                raise ValueError(f"{len(self.texts)} texts but {len(self.pairs)} pairs")
            return self

    return PredictRequest


def first_error(exc: ValidationError, max_texts: int, max_text_chars: int, task_names: list[str]) -> str:
    """One line for the first problem of a refused body (an unknown key first, as a typo
    in a key name also makes a required key look missing)."""
    errors = exc.errors()
    unknown_tasks = [e["input"] for e in errors if e["type"] == "literal_error" and e["loc"][:1] == ("tasks",)]
    if unknown_tasks:
        return (f"unknown task(s) {', '.join(map(repr, unknown_tasks))}; "
                f"this model predicts {', '.join(task_names)}")
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    kind, loc, value = err["type"], err["loc"], err.get("input")
    key = loc[0] if loc else None
    where = f"{key}[{loc[1]}]" if len(loc) > 1 else f'"{key}"'
    got = type(value).__name__
    if kind == "extra_forbidden":
        return f"unknown key {key!r}; expected {', '.join(REQUEST_KEYS)}"
    if kind == "model_type":
        return f"expected a JSON object with \"texts\", got {got}"
    if kind == "missing":
        return f"missing \"{key}\" (a list of strings)"
    if kind == "list_type":
        return f"{where} must be a list of strings, got {got}"
    if kind == "string_type":
        return f"{where} must be a string, got {got}"
    if kind == "too_short":
        return f"{where} is empty" + (" (leave it out for every task)" if key == "tasks" else "")
    if kind == "too_long":
        return f"{err['ctx']['actual_length']} {key}; at most {max_texts} per request (--max-texts)"
    if kind == "string_too_long":
        return f"{where} has {len(value)} characters; at most {max_text_chars} (--max-text-chars)"
    if kind == "value_error":
        reason = str(err["ctx"]["error"])
        return reason if not loc else f"{where} {reason}"
    return f"{where}: {err['msg']}"


# -- responses (the schema of what the server answers) ----------------------------------


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassificationPrediction(_Closed):
    """Softmax of the head: the argmax label, its probability, every label's probability."""

    label: str
    probability: float
    probabilities: dict[str, float]


class MultiLabelPrediction(_Closed):
    """Sigmoid of the head: the labels over the task's threshold, every label's probability."""

    labels: list[str]
    probabilities: dict[str, float]


class ValuePrediction(_Closed):
    """A regression task with one output."""

    value: float


class ValuesPrediction(_Closed):
    """A regression task with several outputs (EmoBank's V, A, D)."""

    values: dict[str, float]


Prediction = ClassificationPrediction | MultiLabelPrediction | ValuePrediction | ValuesPrediction


class PredictResponse(_Closed):
    """One dict per text, in request order: ``{task: prediction}``."""

    predictions: list[dict[str, Prediction]]


class ErrorResponse(_Closed):
    """Every refusal: one line saying what was wrong."""

    error: str


class TaskInfo(_Closed):
    name: str
    kind: Literal["classification", "multilabel", "regression"]
    labels: list[str] | None = None
    targets: list[str] | None = None
    threshold: float | None = None
    pairs: Literal["ignored", "required", "optional"]


class LimitsInfo(_Closed):
    max_body_bytes: int
    max_texts: int
    max_text_chars: int


class TasksResponse(_Closed):
    tasks: list[TaskInfo]
    limits: LimitsInfo


class HealthResponse(_Closed):
    status: Literal["ok"]


class StatsResponse(_Closed):
    """Counters since the server started: requests and texts answered, batches run (one
    forward call each), the largest batch in texts, requests refused (503), timed out (504)
    or failed (500), the requests waiting now, and the milliseconds spent in the forward
    passes (``busy_ms``: over a stretch of wall time, the share the model was computing)."""

    requests: int
    texts: int
    batches: int
    largest_batch: int
    refused: int
    timed_out: int
    failed: int
    queued: int
    busy_ms: int


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (FastAPI's ``responses=``)."""
    said = {400: "body is not JSON (or not UTF-8)", 413: "body over --max-body-bytes",
            422: "JSON of the wrong shape, or a text or task the model refuses",
            503: "queue full (--max-queue); see the Retry-After header",
            504: "no answer within --request-timeout"}
    return {s: {"model": ErrorResponse, "description": said[s]} for s in statuses}
