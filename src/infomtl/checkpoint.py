"""Checkpoints and run folders: safetensors for tensors, JSON/YAML for the rest.

Nothing here unpickles code. A checkpoint folder holds

    model.safetensors     the encoder and decoder weights
    method.safetensors    the method's own parameters and buffers (if any)
    state.json            epoch, step, selection score, the method's non-tensor state
    encoder/              encoder config and tokenizer (rebuilds the model offline)

and is written to a temporary folder, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, save_model

from infomtl.backbones import Backbone, load_backbone_files
from infomtl.config import TrainConfig, load_yaml
from infomtl.errors import InfomtlError
from infomtl.methods import Method, MethodSpec
from infomtl.model import MultiTaskModel
from infomtl.tasks import Task


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InfomtlError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InfomtlError(f"{path}: not valid JSON ({exc})") from None


def save_checkpoint(
    folder: Path, model: MultiTaskModel, method: Method, backbone: Backbone, state: dict[str, Any]
) -> None:
    """Write a checkpoint atomically into ``folder``."""
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    tensors = {k: v.detach().contiguous().cpu() for k, v in method.state_dict().items()}
    if tensors:
        save_file(tensors, str(tmp / "method.safetensors"))
    write_json(tmp / "state.json", {**state, "method_state": method.extra_state()})
    backbone.save_files(tmp / "encoder")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_weights(folder: Path, model: MultiTaskModel, method: Method) -> dict[str, Any]:
    """Load a checkpoint's tensors into ``model`` and ``method``; return its state."""
    try:
        weights = load_file(str(folder / "model.safetensors"), device="cpu")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        # tied weights are stored once by save_model
        missing = [k for k in missing if k not in _tied(model)]
        if missing or unexpected:
            raise InfomtlError(
                f"{folder / 'model.safetensors'}: does not match the model "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        method_file = folder / "method.safetensors"
        if method_file.exists():
            method.load_state_dict(load_file(str(method_file), device="cpu"))
    except FileNotFoundError as exc:
        raise InfomtlError(f"{folder}: incomplete checkpoint ({exc.filename} missing)") from None
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise InfomtlError(f"{folder}: unreadable or truncated checkpoint ({exc})") from None
    state = read_json(folder / "state.json")
    method.load_extra_state(state.get("method_state", {}))
    return state


def _tied(model: torch.nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    tied = set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in seen:
            tied.add(name)
        seen[key] = name
    return tied


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
    if not (ckpt / "model.safetensors").is_file():
        raise InfomtlError(f"{folder}: no checkpoint/model.safetensors (did the run finish an epoch?)")
    config = TrainConfig.from_dict(load_yaml(folder / "config.yaml"), str(folder / "config.yaml"))
    meta = read_json(folder / "run.json")
    try:
        tasks = [Task.from_dict(t) for t in meta["tasks"]]
        spec = MethodSpec.from_dict(meta["method"])
        train_sizes = [int(n) for n in meta["train_sizes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InfomtlError(f"{folder / 'run.json'}: malformed ({exc})") from None
    backbone = load_backbone_files(ckpt / "encoder", config.backbone, config.pooling, config.max_length)
    method = Method(spec, tasks, backbone.hidden_size, train_sizes, config.head_dropout, config.head_hidden)
    model = MultiTaskModel(backbone.encoder, method.build_decoder(), config.pooling, config.chunk_tokens)
    state = load_weights(ckpt, model, method)
    model.eval()
    method.eval()
    return LoadedRun(folder, config, tasks, spec, backbone, model, method, state)
