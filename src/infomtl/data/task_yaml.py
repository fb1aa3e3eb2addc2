"""The optional ``task.yaml`` of a task folder: keys, validation, metrics.

Keys (all optional): ``name``, ``kind`` (classification | multilabel |
regression), ``labels`` (names in id order), ``targets`` (regression outputs),
``metrics`` (metric function names, or mappings with ``name``, ``fn``,
``labels``, ``target``, ``higher_is_better``, ``official``), ``threshold`` and
``description``; and, for the zero-shot LLM baseline (:mod:`infomtl.prompts`),
``instruction`` (the question), ``answers`` (the allowed answer of each label: a
list in label order, or a mapping label -> answer where unlisted labels answer
with their name), ``template`` (how a row is shown: ``{text}``, ``{pair}``,
``{group}``) and ``scale`` (``[low, high]`` of a regression answer). With
``source: hf`` the rows come from a Hugging Face dataset instead of the folder's files
(:mod:`infomtl.data.hf_source`): ``dataset`` (a Hub id, a folder written by ``save_to_disk``, or a builder or folder for
``load_dataset`` such as ``csv``), and optionally ``config``, ``revision``,
``data_files`` (as ``load_dataset`` takes them), ``splits`` (``{train: train, val:
validation, test: test}``) and ``columns`` (``{text: ..., pair: ..., label: ...}``,
``label`` a list of columns for a multi-output regression). An unknown key, a key
given twice or an invalid value is a :class:`DataError` naming the file, the line
of the key, and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomtl.data.textio import read_text
from infomtl.errors import DataError, did_you_mean, unknown_names
from infomtl.options import safe_load_yaml
from infomtl.prompts import Prompt, default_prompt
from infomtl.tasks import Metric, Task, TaskKind

TASK_FILES: tuple[str, ...] = ("task.yaml", "task.yml")
#: Keys that say where the rows come from (only with ``source: hf``).
HF_KEYS: tuple[str, ...] = ("dataset", "config", "revision", "data_files", "splits", "columns")
YAML_KEYS: tuple[str, ...] = (
    "name", "kind", "labels", "targets", "metrics", "threshold", "description", "source", *HF_KEYS,
    "instruction", "answers", "template", "scale",
)
SOURCES: tuple[str, ...] = ("files", "hf")
SPLIT_KEYS: tuple[str, ...] = ("train", "val", "test")
COLUMN_KEYS: tuple[str, ...] = ("text", "pair", "label")
METRIC_KEYS: tuple[str, ...] = ("name", "fn", "labels", "target", "higher_is_better", "official")
CLASSIFICATION_METRICS: tuple[str, ...] = ("macro_f1", "macro_recall", "accuracy")
REGRESSION_METRICS: tuple[str, ...] = ("pearson", "spearman")


@dataclass
class TaskSpec:
    """The validated contents of ``task.yaml`` (all optional)."""

    path: Path | None = None
    name: str | None = None
    kind: TaskKind = TaskKind.CLASSIFICATION
    labels: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    metrics: list[Any] | None = None
    threshold: float = 0.5
    description: str = ""
    kind_given: bool = False  # False: the default kind, or one a dataset's features may decide
    source: str = "files"
    hf: dict[str, Any] | None = None  # with source "hf": dataset, config, revision, data_files, splits, columns
    instruction: str | None = None
    answers: tuple[str, ...] | dict[str, str] | None = None
    template: str | None = None
    scale: tuple[float, float] | None = None
    lines: dict[str, int] = field(default_factory=dict)  # line of each key, for later errors

    def prompt(self, task: Task) -> Prompt:
        """The task's prompt for the LLM baseline: these keys over :func:`default_prompt`.

        Raises:
            DataError: an answer for a label the task does not have, or a prompt that
                cannot serve the task (file and line of the key named).
        """
        base = default_prompt(task)
        answers: tuple[str, ...] = ()
        if isinstance(self.answers, dict):
            unknown = [k for k in self.answers if k not in task.labels]
            if unknown:
                raise DataError(self.path, f"answers: {unknown[0]!r} is not a label of the task "
                                f"({', '.join(task.labels)})", line=self.lines.get("answers"))
            answers = tuple(self.answers.get(label, label) for label in task.labels)
        elif self.answers is not None:
            answers = self.answers
        prompt = Prompt(
            description=self.description or base.description,
            instruction=self.instruction or base.instruction,
            answers=answers,
            template=self.template or base.template,
            scale=self.scale,
        )
        try:
            prompt.check(task)
        except ValueError as exc:
            key = next((k for k in ("answers", "template", "scale") if getattr(self, k) is not None), None)
            raise DataError(self.path or "task.yaml", f"{key + ': ' if key else ''}{exc}",
                            line=self.lines.get(key) if key else None) from None
        return prompt


def read_task_spec(folder: Path) -> TaskSpec:
    """The validated ``task.yaml`` (or ``task.yml``) of ``folder``; defaults if there is none.

    Raises:
        DataError: invalid YAML, an unknown key or an invalid value (file and line named).
    """
    found = [folder / name for name in TASK_FILES if (folder / name).is_file()]
    if not found:
        return TaskSpec()
    if len(found) > 1:
        raise DataError(folder, f"both {found[0].name} and {found[1].name} exist; keep one")
    path = found[0]
    import yaml  # local: only task folders with a task.yaml need it

    text = read_text(path)
    try:
        raw = safe_load_yaml(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataError(path, f"invalid YAML: {problem}", line=line) from None
    if raw is None:
        return TaskSpec(path=path)
    if not isinstance(raw, dict):
        raise DataError(path, "expected a mapping of keys (kind, labels, metrics, ...)", line=1)
    lines = {
        str(k.value): k.start_mark.line + 1 for k, _ in getattr(node, "value", ()) if hasattr(k, "value")
    }

    def fail(key: str, message: str) -> DataError:
        return DataError(path, f"{key}: {message}", line=lines.get(key))

    unknown = [str(key) for key in raw if key not in YAML_KEYS]
    if unknown:
        raise DataError(path, f"{unknown_names('key', unknown, YAML_KEYS)} (valid keys: {', '.join(YAML_KEYS)})",
                        line=lines.get(unknown[0]))
    spec = TaskSpec(path=path, lines=lines)
    if "name" in raw:
        spec.name = _yaml_str(raw["name"], lambda m: fail("name", m))
        if not spec.name.replace("_", "").replace("-", "").isalnum():
            raise fail("name", f"{spec.name!r} must be letters, digits, '_' or '-'")
    if "description" in raw:
        spec.description = _yaml_str(raw["description"], lambda m: fail("description", m), empty=True)
    if "kind" in raw:
        try:
            spec.kind = TaskKind(raw["kind"])
            spec.kind_given = True
        except ValueError:
            valid = ", ".join(k.value for k in TaskKind)
            raise fail("kind", f"{raw['kind']!r} is not a task kind ({valid})") from None
    if "labels" in raw:
        if spec.kind is TaskKind.REGRESSION:
            raise fail("labels", "a regression task has 'targets', not 'labels'")
        spec.labels = _yaml_names(raw["labels"], lambda m: fail("labels", m))
    if "targets" in raw:
        if spec.kind is not TaskKind.REGRESSION:
            raise fail("targets", f"only a regression task has targets (kind is {spec.kind.value})")
        spec.targets = _yaml_names(raw["targets"], lambda m: fail("targets", m))
    if "threshold" in raw:
        value = raw["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise fail("threshold", f"expected a number between 0 and 1, got {value!r}")
        spec.threshold = float(value)
    if "metrics" in raw:
        value = raw["metrics"]
        if not isinstance(value, list) or not value:
            raise fail("metrics", "expected a non-empty list of metric names or mappings")
        spec.metrics = value
        _validate_metric_entries(value, spec.kind, lambda m: fail("metrics", m))
    _read_source(raw, spec, fail)
    _read_prompt_keys(raw, spec, fail)
    return spec


def _read_prompt_keys(raw: dict, spec: TaskSpec, fail: Any) -> None:
    """The LLM baseline's keys: ``instruction``, ``answers``, ``template``, ``scale``."""
    for key in ("instruction", "template"):
        if key in raw:
            setattr(spec, key, _yaml_str(raw[key], lambda m, k=key: fail(k, m)))
    if "answers" in raw:
        value = raw["answers"]
        if spec.kind is TaskKind.REGRESSION:
            raise fail("answers", "a regression task is answered with numbers: it takes no 'answers'")
        if isinstance(value, dict) and value:
            answers = {}
            for label, answer in value.items():
                if isinstance(answer, bool) or not isinstance(answer, (str, int)) or not str(answer).strip():
                    raise fail("answers", f"the answer of {label!r} must be a non-empty string, got {answer!r}")
                answers[str(label).strip()] = str(answer).strip()
            if spec.labels is not None and any(k not in spec.labels for k in answers):
                unknown = next(k for k in answers if k not in spec.labels)
                raise fail("answers", f"{unknown!r} is not one of the labels ({', '.join(spec.labels)})")
            spec.answers = answers
        elif isinstance(value, list):
            spec.answers = _yaml_names(value, lambda m: fail("answers", m))
            if spec.labels is not None and len(spec.answers) != len(spec.labels):
                raise fail("answers", f"{len(spec.answers)} answers for {len(spec.labels)} labels "
                           f"({', '.join(spec.labels)})")
        else:
            raise fail("answers", f"expected a list of answers in label order or a mapping label: answer, "
                       f"got {value!r}")
    if "scale" in raw:
        value = raw["scale"]
        if spec.kind is not TaskKind.REGRESSION:
            raise fail("scale", f"only a regression task has a scale (kind is {spec.kind.value})")
        numbers = value if isinstance(value, list) and len(value) == 2 else None
        if numbers is None or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers) \
                or not float(numbers[0]) < float(numbers[1]):
            raise fail("scale", f"expected [low, high] with low < high, got {value!r}")
        spec.scale = (float(numbers[0]), float(numbers[1]))


def _read_source(raw: dict[str, Any], spec: TaskSpec, fail: Any) -> None:
    """``source`` and, with ``source: hf``, the dataset keys (checked, not opened)."""
    source = raw.get("source", "files")
    if source not in SOURCES:
        raise fail("source", f"{source!r} is not a source ({', '.join(SOURCES)})")
    spec.source = source
    if source != "hf":
        for key in HF_KEYS:
            if key in raw:
                raise fail(key, "only a task with 'source: hf' names a dataset")
        return
    if "dataset" not in raw:
        raise fail("source", "a task with 'source: hf' needs 'dataset' (a Hub id or a local path)")
    hf: dict[str, Any] = {}
    for key in ("dataset", "config", "revision"):
        if key in raw:
            hf[key] = _yaml_str(raw[key], lambda m, k=key: fail(k, m))
    if "data_files" in raw:
        hf["data_files"] = _data_files(raw["data_files"], lambda m: fail("data_files", m))
    for key, allowed in (("splits", SPLIT_KEYS), ("columns", COLUMN_KEYS)):
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, dict):
            raise fail(key, f"expected a mapping with keys among {', '.join(allowed)}, got {value!r}")
        for name, item in value.items():
            if name not in allowed:
                raise fail(key, f"unknown key {name!r}{did_you_mean(name, allowed)} (valid: {', '.join(allowed)})")
            if key == "columns" and name == "label" and isinstance(item, list):
                value[name] = list(_yaml_names(item, lambda m, n=name, k=key: fail(k, f"{n}: {m}")))
            elif key == "columns" and name == "pair" and item is None:
                continue
            else:
                value[name] = _yaml_str(item, lambda m, n=name, k=key: fail(k, f"{n}: {m}"))
        hf[key] = {k: v for k, v in value.items() if v is not None}
    spec.hf = hf


def _data_files(value: Any, fail: Any) -> Any:
    """``data_files`` as ``load_dataset`` takes it: a path, a list of paths, or split -> path(s)."""
    def paths(item: Any) -> str | list[str]:
        if isinstance(item, str) and item.strip():
            return item.strip()
        if isinstance(item, list) and item and all(isinstance(x, str) and x.strip() for x in item):
            return [x.strip() for x in item]
        raise fail(f"expected a path, a list of paths or a mapping of split: path(s), got {item!r}")

    if isinstance(value, dict):
        return {str(k): paths(v) for k, v in value.items()}
    return paths(value)


def _yaml_str(value: Any, fail: Any, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise fail(f"expected a {'string' if empty else 'non-empty string'}, got {value!r}")
    return value.strip()


def _yaml_names(value: Any, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise fail(f"expected a non-empty list of names, got {value!r}")
    names = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
            raise fail(f"expected names (strings), got {item!r}")
        names.append(str(item).strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise fail(f"duplicate names {duplicates}")
    return tuple(names)


def _validate_metric_entries(entries: list[Any], kind: TaskKind, fail: Any) -> None:
    valid_fns = REGRESSION_METRICS if kind is TaskKind.REGRESSION else CLASSIFICATION_METRICS
    for entry in entries:
        if isinstance(entry, str):
            fn = entry
        elif isinstance(entry, dict):
            unknown = [k for k in entry if k not in METRIC_KEYS]
            if unknown:
                raise fail(f"unknown metric key {unknown[0]!r} (valid keys: {', '.join(METRIC_KEYS)})")
            if "fn" not in entry:
                raise fail(f"metric {entry} has no 'fn'")
            fn = entry["fn"]
            for key in ("higher_is_better", "official"):
                if key in entry and not isinstance(entry[key], bool):
                    raise fail(f"metric {key} must be true or false, got {entry[key]!r}")
            if "name" in entry and (not isinstance(entry["name"], str) or not entry["name"]):
                raise fail(f"metric name must be a non-empty string, got {entry['name']!r}")
            if "labels" in entry:
                _yaml_names(entry["labels"], fail)
            if "target" in entry and not isinstance(entry["target"], (str, type(None))):
                raise fail(f"metric target must be a string, got {entry['target']!r}")
        else:
            raise fail(f"expected a metric name or mapping, got {entry!r}")
        if fn not in valid_fns:
            raise fail(f"metric function {fn!r} is not one of {', '.join(valid_fns)} "
                       f"(for a {kind.value} task)")


def build_metrics(
    spec: TaskSpec, labels: tuple[str, ...], targets: tuple[str, ...]
) -> tuple[Metric, ...]:
    """The metrics of ``spec`` checked against the task's labels and targets.

    Returns ``()`` when ``task.yaml`` names none (the task then takes its defaults).
    """
    if spec.metrics is None:
        return ()
    metrics = []
    for entry in spec.metrics:
        if isinstance(entry, str):
            metrics.append(Metric(name=entry, fn=entry))
            continue
        metric = Metric(
            name=entry.get("name") or entry["fn"],
            fn=entry["fn"],
            labels=tuple(str(x).strip() for x in entry.get("labels") or ()),
            target=entry.get("target"),
            higher_is_better=entry.get("higher_is_better", True),
            official=entry.get("official", True),
        )
        for name in metric.labels:
            if name not in labels:
                raise DataError(spec.path, f"metrics: metric {metric.name!r} names label {name!r}, "
                                f"which is not a label of the task ({', '.join(labels)})")
        if metric.target is not None and metric.target not in (targets or ("score",)):
            raise DataError(spec.path, f"metrics: metric {metric.name!r} names target "
                            f"{metric.target!r}, which is not a target ({', '.join(targets)})")
        metrics.append(metric)
    names = [m.name for m in metrics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(spec.path, f"metrics: duplicate metric names {duplicates}")
    return tuple(metrics)
