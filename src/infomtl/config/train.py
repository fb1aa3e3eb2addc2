"""A training run's configuration: :class:`TrainConfig`, its six sections (``infomtl.config.sections``)
validated together at the boundary.

Built from options by name (``TrainConfig(lr=1e-3, method="infomtl")``, a flat YAML, the
flags of ``infomtl train``) or by section (``TrainConfig(optim=OptimOptions(lr=1e-3))``,
a YAML with ``optim:`` and ``method:`` mappings); read by section (``config.optim.lr``).
A run folder's ``config.yaml`` holds the sections; the flat form of older run folders loads.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from infomtl.config.sections import (
    BENCHMARK_ARG_SHORTHANDS,
    KEYS,
    PRECISIONS,
    REPORT_TO,
    SECTIONS,
    BatchingOptions,
    DataOptions,
    MethodOptions,
    ModelOptions,
    OptimOptions,
    RunOptions,
)
from infomtl.errors import ConfigError, did_you_mean, unknown_names
from infomtl.options import coerce, flag_name, option_fields, option_key, scalar
from infomtl.tasks import TaskKind

__all__ = ["HF_TASK_KEYS", "PRECISIONS", "TrainConfig", "check_hf_task", "flat_options"]

#: Keys of one ``--hf-task`` (a task read from a Hugging Face dataset; see infomtl.data.hf_source).
HF_TASK_KEYS = ("dataset", "config", "revision", "name", "kind", "text", "pair", "label", "train", "val", "test")


@dataclass(init=False)
class TrainConfig:
    """Everything a training run depends on, in sections: ``data``, ``model``, ``method``,
    ``batching``, ``optim`` and ``run`` (see :mod:`infomtl.config.sections`)."""

    SECTIONS: ClassVar[dict[str, type]] = SECTIONS
    SHORTHANDS: ClassVar[dict[str, tuple[str, type, tuple[str, ...] | None, str]]] = BENCHMARK_ARG_SHORTHANDS

    data: DataOptions
    model: ModelOptions
    method: MethodOptions
    batching: BatchingOptions
    optim: OptimOptions
    run: RunOptions

    def __init__(self, data: DataOptions | None = None, model: ModelOptions | None = None,
                 method: MethodOptions | str | None = None, batching: BatchingOptions | None = None,
                 optim: OptimOptions | None = None, run: RunOptions | None = None, **options: Any) -> None:
        """Sections (each a copy; a section not given has its defaults) and options by key,
        set over them; ``method`` may be the method's name (the ``method`` option).

        Raises:
            TypeError: an unknown option, as any Python call with an unknown keyword.
        """
        if isinstance(method, str):
            options = {"method": method, **options}
            method = None
        given = {"data": data, "model": model, "method": method, "batching": batching, "optim": optim, "run": run}
        for section, cls in SECTIONS.items():
            value = given[section]
            setattr(self, section, copy.deepcopy(value) if value is not None else cls())
        for key, value in options.items():
            self._set_option("TrainConfig()", key, value)

    def _set_option(self, caller: str, key: str, value: Any) -> None:
        """Set option ``key``, or the ``benchmark_args`` entry a shorthand names (TypeError if neither)."""
        if key in BENCHMARK_ARG_SHORTHANDS:
            self.data.benchmark_args = {**self.data.benchmark_args, BENCHMARK_ARG_SHORTHANDS[key][0]: value}
        elif key in KEYS:
            self.set(key, value)
        else:
            raise TypeError(f"{caller} got an unexpected option {key!r}{did_you_mean(key, KEYS)}")

    def get(self, key: str) -> Any:
        """The value of option ``key`` (``config.get("lr") == config.optim.lr``)."""
        section, name = KEYS[key]
        return getattr(getattr(self, section), name)

    def set(self, key: str, value: Any) -> None:
        """Set option ``key`` in its section."""
        section, name = KEYS[key]
        setattr(getattr(self, section), name, value)

    def replace(self, **options: Any) -> TrainConfig:
        """A copy with the given options changed (``config.replace(seed=1, output_dir=None)``)."""
        config = copy.deepcopy(self)
        for key, value in options.items():
            config._set_option("TrainConfig.replace()", key, value)
        return config

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the option."""
        positive = ("lr", "sharing_lr", "batch_size", "eval_batch_size", "epochs", "max_length", "temperature")
        for name in positive:
            if not self.get(name) > 0:
                raise ConfigError(f"--{flag_name(name)} must be > 0, got {self.get(name)}")
        for name in ("weight_decay", "grad_clip", "patience", "head_hidden", "chunk_tokens"):
            if not self.get(name) >= 0:  # also rejects NaN
                raise ConfigError(f"--{flag_name(name)} must be >= 0, got {self.get(name)}")
        if not self.model.mlp_width > 0:
            raise ConfigError(f"--mlp-width must be > 0, got {self.model.mlp_width}")
        for name in ("head_dropout", "mlp_dropout"):
            if not 0 <= self.get(name) < 1:
                raise ConfigError(f"--{flag_name(name)} must be in [0, 1), got {self.get(name)}")
        if not 0 <= self.optim.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.optim.warmup_ratio}")
        if not 0 < self.data.train_ratio <= 1:
            raise ConfigError(f"--train-ratio must be in (0, 1], got {self.data.train_ratio}")
        threshold = self.data.multilabel_threshold
        if threshold is not None and not 0 < threshold < 1:
            raise ConfigError(f"--multilabel-threshold must be in (0, 1), got {threshold}")
        if self.run.threads is not None and not self.run.threads >= 1:
            raise ConfigError(f"--threads must be >= 1, got {self.run.threads}")
        unknown = [name for name in self.run.report_to if name not in REPORT_TO]
        if unknown:
            raise ConfigError(f"--report-to: {unknown_names('tracker', unknown, REPORT_TO)} "
                              f"(expected {', '.join(REPORT_TO)})")
        if self.run.information_rows is not None and not self.run.information_rows >= 2:
            raise ConfigError(f"--information-rows must be >= 2, got {self.run.information_rows}")
        if not self.optim.grad_accumulation >= 1:
            raise ConfigError(f"--grad-accumulation must be >= 1, got {self.optim.grad_accumulation}")
        if not self.model.share_layers >= 1:
            raise ConfigError(f"--share-layers must be >= 1, got {self.model.share_layers}")
        if not self.model.successive_reg >= 0:
            raise ConfigError(f"--successive-reg must be >= 0, got {self.model.successive_reg}")
        for task, layer in self.model.head_layers.items():
            try:
                self.model.head_layers[task] = scalar(layer, int)
            except (TypeError, ValueError):
                raise ConfigError(f"--head-layer {task}={layer}: the layer must be an integer >= 1") from None
            if self.model.head_layers[task] < 1:
                raise ConfigError(f"--head-layer {task}={layer}: the layer must be >= 1 (1 = the first layer)")
        if self.model.successive_reg > 0 and not self.model.head_layers:
            raise ConfigError("--successive-reg needs --head-layer (it keeps the layers of lower tasks in place)")
        if self.model.share == "cross-stitch" and self.model.head_layers:
            raise ConfigError("--head-layer and --share cross-stitch cannot be combined (choose one way to share)")
        if self.model.freeze_backbone and (self.model.share == "cross-stitch" or self.model.successive_reg > 0):
            what = "--share cross-stitch" if self.model.share == "cross-stitch" else "--successive-reg"
            raise ConfigError(f"{what} needs a trainable encoder (not --freeze-backbone)")
        if self.optim.scalar_lr is not None and not self.optim.scalar_lr > 0:
            raise ConfigError(f"--scalar-lr must be > 0, got {self.optim.scalar_lr}")
        for spec in self.data.hf_tasks:
            check_hf_task(spec)
        for name in ("max_train_examples", "max_eval_examples", "max_steps"):
            value = self.get(name)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag_name(name)} must be >= 1, got {value}")
        for key, f, _ in option_fields(TrainConfig):
            choices = f.metadata.get("choices")
            if choices and self.get(key) not in choices:
                raise ConfigError(f"--{flag_name(key)} must be one of {', '.join(choices)}, got {self.get(key)!r}")
        self._check_sampling()
        return self

    def _check_sampling(self) -> None:
        """The AutoSeM options: ``--task-ratios`` as task=number pairs (made floats here), read
        only by the ratios regime; the autosem counts; ``--select-by primary`` with a task."""
        for name in ("autosem_eval_every", "autosem_eval_rows"):
            if not self.get(name) >= 1:
                raise ConfigError(f"--{flag_name(name)} must be >= 1, got {self.get(name)}")
        if self.batching.primary_task is not None and not self.batching.primary_task.strip():
            raise ConfigError("--primary-task must name a task of the run, got an empty name")
        if self.optim.select_by == "primary" and self.batching.primary_task is None:
            raise ConfigError("--select-by primary needs --primary-task TASK")
        ratios: dict[str, float] = {}
        for task, value in self.batching.task_ratios.items():
            try:
                ratio = scalar(value, float)
            except (TypeError, ValueError):
                ratio = math.nan
            if not ratio >= 0:  # also NaN
                raise ConfigError(f"--task-ratios: {task}={value} must be a number >= 0")
            ratios[str(task)] = ratio
        self.batching.task_ratios = ratios
        if self.batching.regime == "ratios" and not sum(ratios.values()) > 0:
            raise ConfigError("--regime ratios needs --task-ratios task=ratio,... with a ratio > 0")
        if ratios and self.batching.regime != "ratios":
            raise ConfigError(f"--task-ratios is read by --regime ratios only (got --regime {self.batching.regime})")

    def to_dict(self) -> dict[str, Any]:
        """Every option by key, flat, in section order: what sweep run ids hash and stores
        compare (``resume`` is an action, not an option of the run: left out, so run ids do
        not depend on it)."""
        data = {key: copy.deepcopy(self.get(key)) for key in KEYS}
        data.pop("resume", None)
        return data

    def to_sections(self) -> dict[str, dict[str, Any]]:
        """The options by section, each under its field's name (``resume`` left out)."""
        data = {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}
        data["run"].pop("resume", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping of options by key, by section, or both (:func:`flat_options`),
        each value coerced to its type; a bad key or value is a :class:`ConfigError` naming
        ``source``."""
        options = flat_options(data, source)
        return cls(**{key: coerce(key, value, option_type(key), source) for key, value in options.items()})

    def to_yaml(self) -> str:
        """The config as YAML by section (what a run folder's ``config.yaml`` holds)."""
        return yaml.safe_dump(self.to_sections(), sort_keys=False)

    def save(self, path: Path) -> None:
        path.write_text(self.to_yaml(), encoding="utf-8")


def flat_options(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``data``'s options by key, values as given: keys with dashes or underscores, flat
    (``lr: 0.001``) or under their section (``optim: {lr: 0.001}``, fields by name); where both
    give one option, the later wins (flags merged after a YAML file's sections override them).

    Raises:
        ConfigError: unknown keys (all of them, each with the closest option), naming ``source``.
    """
    options: dict[str, Any] = {}
    unknown = []
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in SECTIONS and isinstance(value, dict):
            for option, given in _section_options(name, value, source).items():
                _put(options, option, given, source)
        elif name in KEYS or name in BENCHMARK_ARG_SHORTHANDS:
            _put(options, name, value, source)
        else:
            unknown.append(str(key))
    if unknown:
        raise ConfigError(f"{source}: {unknown_names('option', unknown, KEYS)} (see `infomtl train --help`)")
    return options


def _put(options: dict[str, Any], key: str, value: Any, source: str) -> None:
    """``options[key] = value``, a shorthand (``tweeteval_source``) as its ``benchmark_args`` entry,
    merged with the entries given before (the later wins)."""
    if key in BENCHMARK_ARG_SHORTHANDS:
        key, value = "benchmark_args", {BENCHMARK_ARG_SHORTHANDS[key][0]: value}
    if key == "benchmark_args" and "benchmark_args" in options:
        before = coerce(key, options[key], option_type(key), source)
        value = {**before, **coerce(key, value, option_type(key), source)}
    options[key] = value


@functools.cache
def option_type(key: str) -> Any:
    """The type of option ``key`` (``int | None`` for ``max_steps``)."""
    section, name = KEYS[key]
    return typing.get_type_hints(SECTIONS[section])[name]


def _section_options(section: str, values: dict[str, Any], source: str) -> dict[str, Any]:
    """A section's mapping (fields by name, or by key) as options by key."""
    fields = {f.name: option_key(f) for f in dataclasses.fields(SECTIONS[section])}
    fields.update({key: key for key in fields.values()})  # method: {method_args: ...} as {args: ...}
    options = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            elsewhere = f" ({name} is an option of {KEYS[name][0]}:)" if name in KEYS else ""
            raise ConfigError(f"{source}: {section}: {unknown_names('option', [str(key)], fields)}{elsewhere}")
        options[fields[name]] = value
    return options


def check_hf_task(spec: Any) -> None:
    """Check one ``--hf-task`` mapping: known keys, a ``dataset``, a valid ``kind``, string values
    (``label`` may also be a list of columns, a multi-output regression)."""
    where = f"--hf-task {spec!r}" if not isinstance(spec, dict) else "--hf-task " + ",".join(
        f"{k}={v}" for k, v in spec.items())
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected key=value pairs such as dataset=ID,label=COLUMN")
    for key, value in spec.items():
        if key not in HF_TASK_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, HF_TASK_KEYS)} "
                              f"(valid keys: {', '.join(HF_TASK_KEYS)})")
        columns = value if key == "label" and isinstance(value, list) else [value]
        if not columns or not all(isinstance(v, str) and v.strip() for v in columns):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if "dataset" not in spec:
        raise ConfigError(f"{where}: no dataset (a Hub id such as cardiffnlp/tweet_eval, or a local path)")
    kinds = [k.value for k in TaskKind]
    if "kind" in spec and spec["kind"] not in kinds:
        raise ConfigError(f"{where}: kind must be one of {', '.join(kinds)}, got {spec['kind']!r}")
