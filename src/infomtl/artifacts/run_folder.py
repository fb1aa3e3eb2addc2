"""Run folders: creating them, resuming them, rebuilding a trained run from one.

A run folder holds ``config.yaml`` (the resolved config), ``run.json`` (tasks, method,
sizes, the infomtl version that wrote it), ``log.jsonl`` (one line per epoch), ``checkpoint/`` (the best epoch),
``last/`` (the training state after the last complete epoch, for ``--resume``),
``results.json`` (written last: it marks a finished run) and
``predictions/{split}/{task}.txt``. An STL folder (``--method stl`` / ``stl-cnn``)
holds its config, a combined ``results.json`` and one run folder per task.

A run written by a later infomtl than this one is not resumed, and one this version
cannot read fails with a message to upgrade (:func:`readable_by_this_version`) rather
than with whatever its newer files first trip over.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from infomtl.artifacts.checkpoint import load_weights
from infomtl.config import TrainConfig
from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import read_json, write_text, writing
from infomtl.methods import Method, MethodSpec
from infomtl.methods.registry import OBJECTIVES
from infomtl.methods.single_task import is_single_task
from infomtl.modeling.backbones import Backbone, load_backbone, load_backbone_files
from infomtl.modeling.building import build_model, shared_size
from infomtl.modeling.feature_cache import backbone_fingerprint
from infomtl.modeling.model import MultiTaskModel
from infomtl.options import load_yaml
from infomtl.tasks import Task
from infomtl.version import __version__, is_newer


def check_output_dir(output_dir: str | None) -> None:
    """Refuse, before anything is loaded, an output folder that already holds files."""
    if output_dir is not None:
        path = Path(output_dir)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"--output-dir {path} already holds files; choose a new folder")


def new_run_dir(output_dir: str | None) -> Path:
    """The run folder: ``output_dir`` (must be empty or new), or a fresh one under ``runs/``."""
    if output_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / stamp
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{stamp}-{n}"
    else:
        check_output_dir(output_dir)
        path = Path(output_dir)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def resume_command(run_dir: str | Path) -> str:
    """The command line that continues an interrupted run folder."""
    return f"infomtl train --resume {shlex.quote(str(run_dir))}"


def written_by(folder: Path) -> str | None:
    """The infomtl version recorded in a run folder's ``run.json`` (an STL folder's: in its
    first task's), or None where none is recorded."""
    for meta in [folder / "run.json", *sorted(folder.glob("*/run.json"))]:
        try:
            version = json.loads(meta.read_text(encoding="utf-8")).get("infomtl_version")
        except (OSError, ValueError, AttributeError):
            continue
        return None if version is None else str(version)
    return None


def newer_version_message(where: Path, version: str, action: str) -> str:
    return f"{where}: written by infomtl {version}, this is {__version__}: upgrade infomtl to {action} it"


@contextmanager
def readable_by_this_version(where: Path, version: str | None, action: str = "load") -> Iterator[None]:
    """Within the block, an :class:`InfomtlError` about files written by a later infomtl
    (``version``) becomes the message to upgrade, with the original error after it."""
    try:
        yield
    except InfomtlError as exc:
        if version is None or not is_newer(version):
            raise
        raise InfomtlError(f"{newer_version_message(where, version, action)} ({exc})") from None


def resume_config(run_dir: str | Path, config_class: Any = TrainConfig) -> Any:
    """The config of an interrupted run folder, set up to resume it in place: a
    :class:`TrainConfig`, or another config class with the same ``from_dict``, ``output_dir``,
    ``resume`` and ``validate`` (the zero-shot baseline's ``LLMConfig``).

    Raises :class:`InfomtlError` for a folder that is not a run, already finished, or was
    written by a later infomtl.
    """
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise InfomtlError(f"--resume {folder}: not a run folder (no config.yaml)")
    if (folder / "results.json").is_file():
        raise InfomtlError(f"--resume {folder}: the run already finished (results.json exists); nothing to resume")
    version = written_by(folder)
    if version is not None and is_newer(version):
        raise InfomtlError(f"--resume {newer_version_message(folder, version, 'resume')}")
    options = {**load_yaml(folder / "config.yaml"), "output_dir": str(folder), "resume": str(folder)}
    return config_class.from_dict(options, str(folder / "config.yaml")).validate()


def truncate_log(path: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs <= ``last_epoch`` (drops a torn last line too)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record.get("epoch", 0) > last_epoch:
            break
        kept.append(line)
    write_text(path, "".join(k + "\n" for k in kept))


def clear_run_dir(folder: Path) -> None:
    """Remove everything of an interrupted run except its ``config.yaml``."""
    with writing(folder):
        for child in folder.iterdir():
            if child.name == "config.yaml":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


@dataclass(frozen=True)
class RunFolder:
    """A trained run's folder, which holds either one multi-task model (``checkpoint/``,
    ``run.json``) or, for ``--method stl`` / ``stl-cnn``, one run folder per task listed in
    its ``results.json``. Code that loads, re-scores or exports a run asks it for the
    model folders instead of telling the two apart itself."""

    path: Path

    @property
    def single_task(self) -> bool:
        """Whether the folder holds one run per task (its ``config.yaml`` names stl or stl-cnn)."""
        config = self.path / "config.yaml"
        if not config.is_file() or (self.path / "checkpoint").exists():
            return False
        method = load_yaml(config).get("method")  # flat (older runs), or the method section
        if isinstance(method, dict):
            method = method.get("name")
        return isinstance(method, str) and is_single_task(method)

    @property
    def holds_model(self) -> bool:
        """Whether the folder holds a trained model (one run, or the runs of an STL folder)."""
        return self.single_task or (self.path / "checkpoint").is_dir() or (self.path / "run.json").is_file()

    def parts(self) -> dict[str, Path]:
        """``{task: sub-run folder}`` of an STL folder (from its ``results.json``)."""
        results = self.path / "results.json"
        if not results.is_file():
            raise InfomtlError(f"{self.path}: no results.json (the STL run did not finish every task)")
        runs = read_json(results).get("runs")
        if not isinstance(runs, dict) or not runs:
            raise InfomtlError(f"{results}: no 'runs' mapping of task to run folder")
        return {str(name): self.path / str(sub) for name, sub in runs.items()}

    def model_dirs(self) -> list[Path]:
        """The folder of every model the run holds: itself, or its tasks' runs in order."""
        return list(self.parts().values()) if self.single_task else [self.path]


@dataclass
class LoadedRun:
    """A trained run rebuilt from its folder."""

    folder: Path
    config: TrainConfig
    tasks: list[Task]
    spec: MethodSpec
    backbone: Backbone
    model: MultiTaskModel
    method: Method
    state: dict[str, Any]


def load_run(folder: str | Path) -> LoadedRun:
    """Rebuild the best checkpoint of a run folder, offline (no hub access needed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InfomtlError(f"{folder}: no such run folder")
    ckpt = folder / "checkpoint"
    if (folder / "baseline.json").is_file():
        raise InfomtlError(f"{folder}: a zero-shot LLM baseline's run (infomtl baseline llm) holds answers, not a "
                           "model to rebuild; its scores are in results.json")
    if not (ckpt / "model.safetensors").is_file():
        raise InfomtlError(f"{folder}: no checkpoint/model.safetensors (did the run finish an epoch?)")
    with readable_by_this_version(folder, written_by(folder)):
        config = TrainConfig.from_dict(load_yaml(folder / "config.yaml"), str(folder / "config.yaml"))
        meta = read_json(folder / "run.json")
        try:
            tasks = [Task.from_dict(t) for t in meta["tasks"]]
            spec = MethodSpec.from_dict(meta["method"])
            train_sizes = [int(n) for n in meta["train_sizes"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InfomtlError(f"{folder / 'run.json'}: malformed ({exc})") from None
        return _rebuild(folder, config, meta, tasks, spec, train_sizes)


def _rebuild(folder: Path, config: TrainConfig, meta: dict[str, Any], tasks: list[Task], spec: MethodSpec,
             train_sizes: list[int]) -> LoadedRun:
    ckpt = folder / "checkpoint"
    if config.model.freeze_backbone:  # the encoder's weights are the backbone's own
        backbone = load_backbone(config.model.backbone, config.model.pooling, config.model.max_length)
        expected = meta.get("backbone_fingerprint")
        if expected and expected not in (backbone_fingerprint(backbone), backbone_fingerprint(backbone, legacy=True)):
            raise InfomtlError(f"{folder}: trained on frozen backbone {config.model.backbone!r}, whose weights "
                               "or tokenizer have changed since; the run cannot be rebuilt")
    else:
        options = config.model
        backbone = load_backbone_files(ckpt / "encoder", options.backbone, options.pooling, options.max_length)
    token_states = OBJECTIVES[spec.objective].token_states
    method = Method(spec, tasks, shared_size(config, backbone, token_states), train_sizes,
                    config.model.head_dropout, config.model.head_hidden)
    model = build_model(config, backbone, method.build_decoder(), [t.name for t in tasks])
    state = load_weights(ckpt, model, method)
    model.eval()
    method.eval()
    return LoadedRun(folder, config, tasks, spec, backbone, model, method, state)
