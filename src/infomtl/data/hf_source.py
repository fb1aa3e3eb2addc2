"""Tasks read from Hugging Face datasets (the ``datasets`` extra).

A task is named by a dataset and a column mapping, in a task folder's ``task.yaml``
(``source: hf``, see :mod:`infomtl.data.task_yaml`) or with ``--hf-task``
(:data:`infomtl.config.HF_TASK_KEYS`). The dataset is

* a folder written by ``save_to_disk`` (a ``DatasetDict``; with ``config``, the
  folder ``<dataset>/<config>`` is used when it is one), read by ``load_from_disk``;
* anything else ``load_dataset`` opens: a Hub id (``cardiffnlp/tweet_eval``, with
  ``config`` and an optional ``revision``), a local folder of parquet/CSV/JSON
  files, or a builder name (``csv``, ``parquet``, ``json``) with ``data_files``.

Splits: ``train`` and ``val`` are required, ``test`` is optional; by default they are
the dataset's ``train``, ``validation`` (or ``val`` / ``dev`` / ``valid``) and ``test``.
A test split without labels (every label -1 or missing, as some Hub test splits) is
left out. Columns: ``text`` (default ``text``), optional ``pair`` and ``label``
(default ``label``; a list of columns for a multi-output regression, one output each).

The kind follows the label column's feature unless it is given: a ``ClassLabel`` is
classification (its names are the labels), a list of ``ClassLabel`` or of strings is
multi-label, a float is regression, anything else classification with labels
inferred from the train split as for task folders. Every bad column or label value
is a :class:`~infomtl.errors.DataError` naming the dataset, the split and the row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infomtl.data.rows import Row, build_task, encode_labels, regression_targets
from infomtl.data.task_yaml import TaskSpec
from infomtl.data.types import TaskData
from infomtl.errors import ConfigError, DataError, DatasetSplit, InfomtlError, first_line
from infomtl.tasks import Task, TaskKind

log = logging.getLogger(__name__)

#: The dataset splits tried for each of ours when ``splits`` does not name one.
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",), "val": ("validation", "val", "dev", "valid"), "test": ("test",)}
REQUIRED = ("train", "val")


@dataclass(frozen=True)
class HFSource:
    """Where a task's rows are: the dataset, its config and revision, files, splits, columns."""

    dataset: str
    config: str | None = None
    revision: str | None = None
    data_files: Any = None
    splits: dict[str, str] = field(default_factory=dict)  # ours (train/val/test) -> the dataset's
    text: str = "text"
    pair: str | None = None
    label: tuple[str, ...] = ("label",)

    @property
    def display(self) -> str:
        """``dataset`` or ``dataset:config``, for messages and a run's sources."""
        return self.dataset + (f":{self.config}" if self.config else "")


def hf_task_name(flag: dict[str, Any]) -> str:
    """The task name of an ``--hf-task``: its ``name``, else its config, else the dataset's last
    path part (characters other than letters, digits, ``_`` and ``-`` become ``_``)."""
    if flag.get("name"):
        return str(flag["name"])
    base = str(flag.get("config") or re.split(r"[/\\]", str(flag["dataset"]).rstrip("/\\"))[-1])
    return re.sub(r"[^A-Za-z0-9_-]", "_", base) or "hf_task"


def flag_task(flag: dict[str, Any]) -> tuple[HFSource, TaskSpec]:
    """The source and task spec of one ``--hf-task`` mapping (checked by the config)."""
    label = flag.get("label", "label")
    labels = tuple(label) if isinstance(label, list) else tuple(p.strip() for p in str(label).split("+"))
    source = HFSource(
        dataset=str(flag["dataset"]), config=flag.get("config"), revision=flag.get("revision"),
        splits={k: str(flag[k]) for k in ("train", "val", "test") if k in flag},
        text=str(flag.get("text", "text")), pair=flag.get("pair"), label=labels,
    )
    spec = TaskSpec(name=hf_task_name(flag), kind=TaskKind(flag.get("kind", "classification")),
                    kind_given="kind" in flag)
    return source, spec


def yaml_source(spec: TaskSpec, base: Path) -> HFSource:
    """The source a task.yaml with ``source: hf`` names; relative paths that exist under the
    task folder ``base`` are taken from there."""
    hf = dict(spec.hf or {})
    columns = hf.get("columns", {})
    label = columns.get("label", "label")

    def local(value: str) -> str:
        return str(base / value) if not Path(value).is_absolute() and (base / value).exists() else value

    files = hf.get("data_files")
    if isinstance(files, dict):
        files = {k: [local(x) for x in v] if isinstance(v, list) else local(v) for k, v in files.items()}
    elif files is not None:
        files = [local(x) for x in files] if isinstance(files, list) else local(files)
    return HFSource(
        dataset=local(hf["dataset"]), config=hf.get("config"), revision=hf.get("revision"), data_files=files,
        splits=dict(hf.get("splits", {})), text=columns.get("text", "text"), pair=columns.get("pair"),
        label=tuple(label) if isinstance(label, list) else (label,),
    )


def load_hf_task(spec: TaskSpec, default_name: str, base: Path) -> tuple[Task, dict[str, TaskData]]:
    """The task of a task folder whose task.yaml says ``source: hf``."""
    return load_hf_source(yaml_source(spec, base), spec, default_name)


def load_hf_flag(flag: dict[str, Any]) -> tuple[Task, dict[str, TaskData]]:
    """The task of one ``--hf-task`` mapping."""
    source, spec = flag_task(flag)
    return load_hf_source(source, spec, str(spec.name))


def import_datasets() -> Any:
    """The ``datasets`` module, or a one-line error saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("a Hugging Face dataset as a task source needs the datasets package: "
                          "pip install 'infomtl[datasets]'") from None
    return datasets


def open_dataset(source: HFSource) -> dict[str, Any]:
    """The dataset's splits (name -> ``datasets.Dataset``).

    Raises:
        DataError: the dataset cannot be opened (not found, offline, a bad file...), or it
            holds one split only.
    """
    datasets = import_datasets()
    path = Path(source.dataset).expanduser()
    try:
        if source.config and _saved(path / source.config):
            obj = datasets.load_from_disk(str(path / source.config))
        elif _saved(path):
            if source.config:
                raise DataError(source.display, f"{path} is one saved dataset; it has no config "
                                f"{source.config!r} (no folder {path / source.config})")
            obj = datasets.load_from_disk(str(path))
        else:
            obj = datasets.load_dataset(source.dataset, name=source.config, data_files=source.data_files,
                                        revision=source.revision)
    except InfomtlError:
        raise
    except Exception as exc:  # datasets raises many kinds (not found, offline, parse errors)
        raise DataError(source.display, f"cannot load the dataset ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(obj, dict):  # a DatasetDict is a dict of split -> Dataset
        raise DataError(source.display, "holds a single split; save a DatasetDict with train and "
                        "validation splits (Dataset.train_test_split can make one)")
    return dict(obj)


def _saved(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def pick_splits(available: list[str], source: HFSource) -> dict[str, str]:
    """Our split -> the dataset's (see the module docstring).

    Raises:
        DataError: a named split the dataset lacks, or no train or val split.
    """
    listing = ", ".join(available) or "none"
    out: dict[str, str] = {}
    for ours, candidates in DEFAULT_SPLITS.items():
        if ours in source.splits:
            if source.splits[ours] not in available:
                raise DataError(source.display, f"no split {source.splits[ours]!r} for {ours} (splits: {listing})")
            out[ours] = source.splits[ours]
            continue
        found = next((c for c in candidates if c in available), None)
        if found is not None:
            out[ours] = found
        elif ours in REQUIRED:
            raise DataError(source.display, f"no {ours} split (tried {', '.join(candidates)}; splits: {listing}); "
                            f"name it, e.g. {ours}={available[0] if available else 'NAME'}")
    return out


def load_hf_source(source: HFSource, spec: TaskSpec, default_name: str) -> tuple[Task, dict[str, TaskData]]:
    """The task and splits of ``source``, defined by ``spec`` (kind, labels, metrics...).

    Raises:
        DataError: a dataset that cannot be opened, a missing split or column, a label of
            the wrong type or outside the label set, an empty text (dataset, split, row named).
    """
    parts = open_dataset(source)
    chosen = pick_splits(list(parts), source)
    features = parts[chosen["train"]].features
    for name in chosen.values():
        _check_columns(source, name, parts[name].column_names)
    kind, class_names = _label_kind(source, features, spec)
    if kind is TaskKind.REGRESSION and len(source.label) > 1 and spec.targets is None:
        spec = replace(spec, targets=source.label)
    rows: dict[str, list[Row]] = {}
    for ours, name in chosen.items():
        where = DatasetSplit(f"{source.display}[{name}]")
        rows[ours] = _rows(source, parts[name], kind, class_names, where)
        if not rows[ours]:
            if ours == "test":
                log.info("%s: the test split has no labels; the task has no test split", where)
                del rows[ours]
                continue
            raise DataError(where, f"the {ours} split has no labelled rows")
    task, inferred = build_task(spec, default_name, kind, DatasetSplit(f"{source.display}[{chosen['train']}]"),
                                rows["train"], class_names)
    origin = "labels of task.yaml" if spec.labels is not None else "labels of the dataset"
    data = {}
    for ours, split_rows in rows.items():
        where = DatasetSplit(f"{source.display}[{chosen[ours]}]")
        data[ours] = TaskData(
            task=task, split=ours, texts=[r.text for r in split_rows],
            labels=encode_labels(where, split_rows, task, inferred, origin),
            pairs=[r.pair or "" for r in split_rows] if source.pair else None, source=str(where),
        )
    return task, data


def _check_columns(source: HFSource, split: str, columns: list[str]) -> None:
    wanted = [("text", source.text)] + ([("pair", source.pair)] if source.pair else []) + [
        ("label", c) for c in source.label]
    for role, column in wanted:
        if column not in columns:
            raise DataError(DatasetSplit(f"{source.display}[{split}]"),
                            f"no {role} column {column!r} (columns: {', '.join(columns)})")


def _label_kind(source: HFSource, features: Any, spec: TaskSpec) -> tuple[TaskKind, tuple[str, ...] | None]:
    """The task kind (given, or from the label feature) and the ClassLabel names, if any."""
    datasets = import_datasets()
    feature = features[source.label[0]]
    inner = getattr(feature, "feature", None)  # a list feature (List, Sequence, LargeList)
    names = None
    if isinstance(feature, datasets.ClassLabel):
        names, guess = tuple(feature.names), TaskKind.CLASSIFICATION
    elif inner is not None:
        names = tuple(inner.names) if isinstance(inner, datasets.ClassLabel) else None
        numeric = isinstance(inner, datasets.Value) and inner.dtype.startswith("float")
        guess = TaskKind.REGRESSION if numeric else TaskKind.MULTILABEL
    elif isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        guess = TaskKind.REGRESSION
    else:
        guess = TaskKind.CLASSIFICATION
    if len(source.label) > 1:
        guess = TaskKind.REGRESSION
    kind = spec.kind if spec.kind_given else guess
    if len(source.label) > 1 and kind is not TaskKind.REGRESSION:
        raise DataError(source.display, f"several label columns ({', '.join(source.label)}) make a "
                        f"regression task, not {kind.value}")
    if kind is TaskKind.REGRESSION:
        names = None
    return kind, names


def _rows(source: HFSource, part: Any, kind: TaskKind, names: tuple[str, ...] | None,
          where: DatasetSplit) -> list[Row]:
    """The labelled rows of one split (a test split's rows without a label are dropped; in
    train or val a missing label is an error)."""
    texts = list(part[source.text])
    pairs = list(part[source.pair]) if source.pair else None
    columns = [list(part[c]) for c in source.label]
    rows: list[Row] = []
    unlabelled = 0
    for i, text in enumerate(texts):
        value: Any = [col[i] for col in columns] if len(columns) > 1 else columns[0][i]
        if value is None or (names is not None and value == -1):  # -1: ClassLabel's "no label"
            unlabelled += 1
            continue
        pair = _text(where, i, pairs[i], source.pair or "") if pairs is not None else None
        rows.append(Row(_text(where, i, text, source.text), _label(where, i, value, kind, names), pair, i))
    if unlabelled and rows:
        raise DataError(where, f"{unlabelled} of {len(texts)} rows have no label (the first is row "
                        f"{next(i for i in range(len(texts)) if _missing(columns, i, names))})")
    return rows


def _missing(columns: list[list[Any]], i: int, names: tuple[str, ...] | None) -> bool:
    value = columns[0][i]
    return value is None or (names is not None and value == -1)


def _text(where: DatasetSplit, i: int, value: Any, column: str) -> str:
    if not isinstance(value, str):
        raise DataError(where, f"column {column!r} must hold strings, got {value!r}", line=i)
    if not value.strip():
        raise DataError(where, f"empty text in column {column!r} (whitespace only)", line=i)
    return value.strip()


def _label(where: DatasetSplit, i: int, value: Any, kind: TaskKind, names: tuple[str, ...] | None) -> Any:
    """A raw label (as task folders' rows hold them); ClassLabel ids become their names."""
    def one(item: Any) -> Any:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or item == "":
            raise DataError(where, f"label must be a label name or an integer id, got {item!r}", line=i)
        if names is None:
            return item.strip() if isinstance(item, str) else item
        if not isinstance(item, int) or not 0 <= item < len(names):
            raise DataError(where, f"label {item!r} is not an id of the ClassLabel (0..{len(names) - 1})", line=i)
        return names[item]

    if kind is TaskKind.CLASSIFICATION:
        return one(value)
    if kind is TaskKind.MULTILABEL:
        if not isinstance(value, list):
            raise DataError(where, f"a multi-label row needs a list of labels, got {value!r}", line=i)
        return [one(v) for v in value]
    return regression_targets(value, where, i)
