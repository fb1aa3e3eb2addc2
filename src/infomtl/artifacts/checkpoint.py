"""Checkpoints and training states: safetensors for tensors, JSON for the rest.

Nothing here unpickles code. A checkpoint folder holds

    model.safetensors     the encoder and decoder weights
    method.safetensors    the method's own parameters and buffers (if any)
    state.json            epoch, step, selection score, the method's non-tensor state
    encoder/              encoder config and tokenizer (rebuilds the model offline)

and is written to a temporary folder, then renamed into place (a failed write leaves the
previous folder as it was and raises :class:`~infomtl.fileio.WriteError` naming the file).

A *training-state* folder (``last/`` of a run, written after every epoch so that
``infomtl train --resume`` can continue) holds the same ``model.safetensors`` and
``method.safetensors`` plus ``training.safetensors`` (optimizer tensors under
``optimizer.state.{param}.{name}``, the torch / CUDA RNG states under ``rng.*``) and a
``state.json`` with the rest: epoch counters, the optimizer's param groups, the
scheduler's state, the numpy and Python RNG states and the method's non-tensor state.
A state saved mid-epoch (a run stopped by a signal) also holds ``epoch_step``, the steps
of the next epoch already done, and the trainer's running sums of that epoch.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, save_model

from infomtl.errors import InfomtlError
from infomtl.fileio import read_json, write_folder, write_json, writing
from infomtl.methods import Method
from infomtl.modeling.backbones import Backbone
from infomtl.modeling.model import MultiTaskModel


def _write_weights(folder: Path, model: MultiTaskModel, method: Method) -> None:
    """``model.safetensors`` (a frozen encoder's weights are left out: the run's backbone
    provides them) and ``method.safetensors``."""
    with writing(folder / "model.safetensors"):
        if model.freeze_encoder:
            trained = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
                       if not k.startswith("encoder.")}
            save_file(trained, str(folder / "model.safetensors"))
        else:
            save_model(model, str(folder / "model.safetensors"))
    tensors = {k: v.detach().contiguous().cpu() for k, v in method.state_dict().items()}
    if tensors:
        with writing(folder / "method.safetensors"):
            save_file(tensors, str(folder / "method.safetensors"))


def save_checkpoint(
    folder: Path, model: MultiTaskModel, method: Method, backbone: Backbone, state: dict[str, Any]
) -> None:
    """Write a checkpoint atomically into ``folder``."""

    def write(tmp: Path) -> None:
        _write_weights(tmp, model, method)
        write_json(tmp / "state.json", {**state, "method_state": method.extra_state()})
        with writing(tmp / "encoder"):
            backbone.save_files(tmp / "encoder")

    write_folder(folder, write)


# -- training state (resume) ----------------------------------------------------------

OPT_PREFIX = "optimizer.state."


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer ``state_dict`` as safetensors-ready tensors and a JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{OPT_PREFIX}{pid}.{name}"] = value.detach().contiguous().cpu()
            else:
                rest.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "state": rest}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(OPT_PREFIX):
            pid, name = key[len(OPT_PREFIX):].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["state"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def rng_states() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (CPU, CUDA), numpy and Python RNG states: tensors and JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = st
    state = np.random.get_state(legacy=True)  # the legacy generator (MT19937) gives a tuple
    assert isinstance(state, tuple)
    name, keys, pos, has_gauss, cached = state
    version, internal, gauss_next = random.getstate()
    meta = {
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    return tensors, meta


def set_rng_states(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_training_state(
    folder: Path, model: MultiTaskModel, method: Method, optimizer: Any, scheduler: Any,
    state: dict[str, Any], scaler: Any = None, extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write everything a resumed run needs (see the module docstring), atomically;
    ``extra_tensors`` (the trainer's, e.g. a mid-epoch state's sums) go beside the optimizer's."""
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    rng_tensors, rng_meta = rng_states()
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}

    def write(tmp: Path) -> None:
        _write_weights(tmp, model, method)
        with writing(tmp / "training.safetensors"):
            save_file({**opt_tensors, **rng_tensors, **(extra_tensors or {})}, str(tmp / "training.safetensors"))
        write_json(tmp / "state.json", {
            **state, "method_state": method.extra_state(), "optimizer": opt_meta,
            "scheduler": sched, "rng": rng_meta,
            "scaler": scaler.state_dict() if scaler is not None else None,
        })

    write_folder(folder, write)


def load_training_state(
    folder: Path, model: MultiTaskModel, method: Method, optimizer: Any, scheduler: Any,
    scaler: Any = None,
) -> dict[str, Any]:
    """Load a :func:`save_training_state` folder into the objects and the RNGs; return its state
    (with the tensors that are neither the optimizer's nor the RNGs' under ``"extra_tensors"``)."""
    state = load_weights(folder, model, method)
    try:
        tensors = load_file(str(folder / "training.safetensors"), device="cpu")
    except FileNotFoundError:
        raise InfomtlError(f"{folder}: incomplete training state (training.safetensors missing)") from None
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise InfomtlError(f"{folder}: unreadable or truncated training state ({exc})") from None
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
        sched = dict(state["scheduler"])
        sched["lr_lambdas"] = [None] * len(sched.get("base_lrs", []))
        scheduler.load_state_dict(sched)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_states(tensors, state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InfomtlError(f"{folder}: training state does not match this run ({exc!r})") from None
    state["extra_tensors"] = {k: v for k, v in tensors.items() if not k.startswith((OPT_PREFIX, "rng."))}
    return state


def load_weights(folder: Path, model: MultiTaskModel, method: Method) -> dict[str, Any]:
    """Load a checkpoint's tensors into ``model`` and ``method``; return its state."""
    try:
        weights = load_file(str(folder / "model.safetensors"), device="cpu")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        # tied weights are stored once by save_model; a frozen encoder is not stored
        missing = [k for k in missing if k not in _tied(model)
                   and not (model.freeze_encoder and k.startswith("encoder."))]
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
