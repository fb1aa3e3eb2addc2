"""The model card of an export, its ``README.md``: Hub metadata, then the card itself.

The YAML front matter is built with huggingface_hub's :class:`~huggingface_hub.ModelCardData`
and :class:`~huggingface_hub.EvalResult` (so the Hub reads it as it reads any card):

* ``library_name: infomtl``, ``pipeline_tag: text-classification`` (regression and
  multi-label heads included: one text in, every task's output out), ``tags``
  (``infomtl``, ``multi-task-learning``, the method, a built-in benchmark's name);
* ``base_model``: the backbone's Hub id (``minilm`` is
  ``sentence-transformers/all-MiniLM-L6-v2``, a Hub id is itself; ``tiny`` and local
  folders have none);
* ``datasets``: the Hub datasets of the tasks where known (:func:`task_dataset`:
  TweetEval's ``cardiffnlp/tweet_eval``, GoEmotions, an ``--hf-task``'s dataset);
* ``license``: given at export (``--license``), else :data:`DEFAULT_LICENSE`;
* ``model-index``: one result per official metric of every task, from ``results.json``'s
  test split, in percent as infomtl reports them (the score's metric args say how it
  averages: ``average: macro``, the labels it is restricted to, the regression target).

The body: tasks, method, backbone, the val/test metric table, how the run was trained
(its config and the equivalent command line), use, intended use and limitations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.config import TrainConfig
from infomtl.data.hf_source import hf_task_name
from infomtl.data.tweeteval_hf import HUB_ID as TWEETEVAL_HUB_ID
from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import read_json
from infomtl.inference.hub import is_repo_id
from infomtl.options import option_fields
from infomtl.tables import markdown_table
from infomtl.tasks import Task, TaskKind
from infomtl.version import __version__

#: The license of a card when none is given: the terms of a trained model follow those of its
#: backbone and its training data, which infomtl cannot know; ``other`` says "see the card".
DEFAULT_LICENSE = "other"

#: Hub ids of the backbone aliases (``tiny`` is built in code: none).
BACKBONE_HUB_IDS: dict[str, str | None] = {"tiny": None, "minilm": "sentence-transformers/all-MiniLM-L6-v2"}

GOEMOTIONS_HUB_ID = "google-research-datasets/go_emotions"

#: Metric functions as the Hub's metric types, with their arguments.
METRIC_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "macro_f1": ("f1", {"average": "macro"}),
    "macro_recall": ("recall", {"average": "macro"}),
    "accuracy": ("accuracy", {}),
    "pearson": ("pearsonr", {}),
    "spearman": ("spearmanr", {}),
}

_TASK_NAMES = {TaskKind.CLASSIFICATION: "Text classification",
               TaskKind.MULTILABEL: "Multi-label text classification", TaskKind.REGRESSION: "Text regression"}


@dataclass(frozen=True)
class DatasetRef:
    """Where a task's rows come from: the Hub dataset (``hub_id``, ``config``, ``revision``) where
    known, and a name for people."""

    name: str
    hub_id: str | None = None
    config: str | None = None
    revision: str | None = None


def check_license(license: str) -> str:
    """``license`` if it has the form of a Hub license id (``apache-2.0``, ``mit``, ``cc-by-4.0``, ``other``)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license):
        raise ConfigError(f"--license {license!r}: expected a Hub license id such as apache-2.0, mit, "
                          "cc-by-4.0 or other (https://huggingface.co/docs/hub/repositories-licenses)")
    return license


def card_license(readme: Path) -> str:
    """The ``license`` of an export's model card (:data:`DEFAULT_LICENSE` if it names none)."""
    from huggingface_hub import ModelCard

    try:
        data = ModelCard.load(readme).data
    except (OSError, ValueError) as exc:
        raise InfomtlError(f"{readme}: not a readable model card ({exc})") from None
    return str(data.license or DEFAULT_LICENSE)


def base_model(backbone: str) -> str | None:
    """The Hub id of a backbone (see the module docstring), or None."""
    if backbone in BACKBONE_HUB_IDS:
        return BACKBONE_HUB_IDS[backbone]
    if Path(backbone).expanduser().exists() or not is_repo_id(backbone, namespaced=False):
        return None
    return backbone


def task_dataset(task: str, source: str, config: dict[str, Any]) -> DatasetRef:
    """The dataset of ``task``, given its source as ``run.json`` records it (``tweeteval``,
    ``affecteval``, ``synthetic``, ``folder:PATH``, ``hf:DATASET[:CONFIG]``) and the run's config."""
    if source == "tweeteval" or (source == "affecteval" and task == "emotioneval"):
        name = "emotion" if task == "emotioneval" else task
        return DatasetRef(f"TweetEval ({name})", TWEETEVAL_HUB_ID, None if name == "stance" else name)
    if source == "affecteval":
        return {"goemotions": DatasetRef("GoEmotions", GOEMOTIONS_HUB_ID, "simplified"),
                "emobank": DatasetRef("EmoBank")}.get(task, DatasetRef(f"SemEval-2018 Task 1 ({task})"))
    if source == "synthetic":
        return DatasetRef(f"infomtl synthetic ({task})")
    if source.startswith("hf:"):
        for spec in config.get("hf_tasks") or []:
            if hf_task_name(spec) == task:
                dataset = str(spec["dataset"])
                hub = None if Path(dataset).expanduser().exists() or not is_repo_id(dataset) else dataset
                name = f"{dataset} ({spec['config']})" if spec.get("config") else dataset
                return DatasetRef(name, hub, spec.get("config"), spec.get("revision"))
    return DatasetRef(f"{source.removeprefix('folder:').rstrip('/').rsplit('/', 1)[-1]} ({task})")


def task_sources(run_dir: Path) -> dict[str, str]:
    """``{task: source}`` from the run's ``run.json`` (an STL folder: its tasks' ``run.json``)."""
    sources: dict[str, str] = {}
    for meta in [run_dir / "run.json", *sorted(run_dir.glob("*/run.json"))]:
        if meta.is_file():
            sources.update({str(k): str(v) for k, v in (read_json(meta).get("sources") or {}).items()})
    return sources


def card_metadata(run_dir: Path, tasks: list[Task], results: dict[str, Any], config: dict[str, Any],
                  method: str, license: str = DEFAULT_LICENSE) -> Any:
    """The :class:`~huggingface_hub.ModelCardData` of the card (see the module docstring)."""
    from huggingface_hub import EvalResult, ModelCardData

    sources = task_sources(run_dir)
    refs = {t.name: task_dataset(t.name, sources.get(t.name, ""), config) for t in tasks}
    datasets = list(dict.fromkeys(r.hub_id for r in refs.values() if r.hub_id))
    benchmarks = [s for s in dict.fromkeys(sources.values()) if s in ("tweeteval", "affecteval")]
    scored = (results.get("test") or {}).get("tasks") or {}
    evals = []
    for task in tasks:
        ref = refs[task.name]
        for metric in task.official_metrics:
            value = (scored.get(task.name) or {}).get(metric.name)
            if value is None:
                continue
            kind, args = METRIC_TYPES.get(metric.fn, (metric.fn, {}))
            args = {**args, **({"labels": list(metric.labels)} if metric.labels else {}),
                    **({"target": metric.target} if metric.target else {})}
            evals.append(EvalResult(
                task_type="text-classification", task_name=f"{_TASK_NAMES[task.kind]}: {task.name}",
                dataset_type=ref.hub_id or _slug(ref.name), dataset_name=ref.name, dataset_config=ref.config,
                dataset_revision=ref.revision, dataset_split="test", metric_type=kind,
                metric_name=f"{task.name} {metric.name}", metric_value=float(value), metric_args=args or None,
            ))
    return ModelCardData(
        library_name="infomtl", license=check_license(license), pipeline_tag="text-classification",
        base_model=base_model(str(config.get("backbone", ""))), datasets=datasets or None,
        tags=list(dict.fromkeys(["infomtl", "multi-task-learning", method, *benchmarks])),
        model_name=title(method, tasks) if evals else None, eval_results=evals or None,
    )


def _slug(name: str) -> str:
    """A dataset name as a model-index dataset type: ``infomtl synthetic (topic)`` -> ``infomtl-synthetic-topic``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dataset"


def title(method: str, tasks: list[Task]) -> str:
    return f"infomtl model: {method} on {', '.join(t.name for t in tasks)}"


def model_card(run_dir: Path, tasks: list[dict[str, Any]], results: dict[str, Any], config: dict[str, Any],
               manifest_method: dict[str, Any] | None, license: str = DEFAULT_LICENSE) -> str:
    """The export's README.md: Hub metadata, then tasks, method, backbone, metrics, how it was
    trained, use, intended use and limitations."""
    from huggingface_hub import ModelCard

    method = str(results.get("method") or config.get("method", "?"))
    defined = [Task.from_dict(t) for t in tasks]
    data = card_metadata(run_dir, defined, results, config, method, license)
    lines = [
        f"# {title(method, defined)}",
        "",
        f"Exported with infomtl {__version__} from the run folder `{run_dir.name}`.",
        "",
        f"- **Method:** {method}"
        + (f" (objective {manifest_method['objective']}, weighting {manifest_method['weighting']})"
           if manifest_method and "objective" in manifest_method else ""),
        f"- **Backbone:** {config.get('backbone', '?')} ({config.get('pooling', 'cls')} pooling, "
        f"max length {config.get('max_length', '?')} tokens)",
        f"- **Benchmark:** {results.get('benchmark', config.get('benchmark', '?'))}, seed {config.get('seed', '?')}",
        "",
        "## Tasks",
        "",
    ]
    rows = [[t["name"], t["kind"], ", ".join(t["labels"] or t["targets"]), t.get("description", "")] for t in tasks]
    lines += [markdown_table(["task", "kind", "labels / outputs", "description"], rows), ""]
    lines += ["## Metrics", "", *_metrics(results), "", *_training(config), *_use(),
              *_intended_use(defined), *_limitations(results, config, str(data.license))]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def _metrics(results: dict[str, Any]) -> list[str]:
    rows = []
    for split in ("val", "test"):
        scored = results.get(split)
        if not isinstance(scored, dict):
            continue
        for name, metrics in scored.get("tasks", {}).items():
            rows += [[split, name, metric, f"{value:.2f}"] for metric, value in metrics.items()]
        if "avg" in scored:
            rows.append([split, "**Avg**", "", f"{scored['avg']:.2f}"])
    if not rows:
        return ["No results.json in the run folder: no metrics recorded."]
    return [markdown_table(["split", "task", "metric", "score"], rows),
            "", "Scores in percent; a task's score (and so Avg) is the mean of its official metrics."]


def _training(config: dict[str, Any]) -> list[str]:
    return ["## Training", "", "The run was trained with the config in `training-config.yaml`:", "",
            "```bash", "infomtl train --config training-config.yaml", "```", "",
            "which is the same as:", "", "```bash", training_command(config), "```", ""]


def _use() -> list[str]:
    return [
        "## Use", "",
        "From this folder, or from its Hub repo once pushed (`infomtl push THIS_FOLDER NAMESPACE/NAME`):", "",
        "```bash", "infomtl predict THIS_FOLDER --input texts.txt",
        "infomtl predict NAMESPACE/NAME --input texts.txt      # downloaded once into the Hugging Face cache",
        "```", "",
        "```python", "import infomtl", "",
        'predictor = infomtl.load("THIS_FOLDER")                # or "NAMESPACE/NAME", revision="..."',
        'print(predictor.predict(["a text to label"]))', "```", "",
        "Loading checks every file against the SHA-256 in `infomtl.json` and never unpickles code.", "",
    ]


def _intended_use(tasks: list[Task]) -> list[str]:
    return [
        "## Intended use", "",
        f"Labelling texts like those of its training data with every task at once ({', '.join(t.name for t in tasks)}"
        "), and research on multi-task representation learning: comparing methods, probing the shared "
        "representation. It is not meant for decisions about people, nor for texts of another language, "
        "domain or time than its training data without checking its scores there first.", "",
    ]


def _limitations(results: dict[str, Any], config: dict[str, Any], license: str) -> list[str]:
    notes = [f"The scores are one run's (seed {config.get('seed', '?')}); runs with other seeds differ."]
    if config.get("backbone") == "tiny":
        notes.append("The backbone `tiny` is a small randomly initialised encoder for tests: the predictions "
                     "carry no meaning.")
    if config.get("max_eval_examples"):
        notes.append(f"Validation and test scores are on at most {config['max_eval_examples']} rows per task "
                     "(a stratified subsample), not the full splits: they are not official scores.")
    if config.get("max_train_examples"):
        notes.append(f"It was trained on at most {config['max_train_examples']} rows per task (max_train_examples).")
    if float(config.get("train_ratio", 1.0)) < 1.0:
        notes.append(f"It was trained on a fraction {config['train_ratio']} of each training set (train_ratio).")
    notes += [f"Collapse of the final model: {c.split(';')[0]}." for c in results.get("collapse") or []]
    notes.append(f"Texts are cut to {config.get('max_length', '?')} tokens; a longer text is labelled by its start.")
    notes.append("It inherits the biases of its backbone and of its training data's labels.")
    if license == DEFAULT_LICENSE:
        notes.append(f"The license field is `{DEFAULT_LICENSE}`: the terms of this model follow those of its "
                     "backbone and its training data; check them before use (set one with "
                     "`infomtl export --license` or `infomtl push --license`).")
    return ["## Limitations", "", *[f"- {n}" for n in notes], ""]


def training_command(config: dict[str, Any]) -> str:
    """The ``infomtl train`` command line that reproduces a run's config (non-default options)."""
    defaults = TrainConfig()
    parts = ["infomtl train"]
    for key, f, _ in option_fields(TrainConfig):
        if key in ("output_dir", "progress", "threads") or key not in config:
            continue
        value = config[key]
        if value == defaults.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif value is None:
            continue
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # --hf-task, repeated
            flag = "--" + f.metadata.get("flag", key.replace("_", "-"))
            parts += [f"{flag} " + ",".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}"
                                            for k, v in item.items()) for item in value]
        elif isinstance(value, list):
            parts.append(f"{flag} {','.join(map(str, value))}")
        elif isinstance(value, dict):
            parts.append(f"{flag} {','.join(f'{k}={v}' for k, v in value.items())}")
        else:
            parts.append(f"{flag} {value}")
    return " \\\n    ".join(parts)
