"""ONNX exports run with onnxruntime: the model of a unit loaded from an export folder
written by ``infomtl export --format onnx`` (:mod:`infomtl.inference.onnx_export`).

:class:`OnnxModel` holds an onnxruntime ``InferenceSession`` (``CPUExecutionProvider``)
on the folder's ``model.onnx`` and answers the predictor's call ``model(batch)`` as a
:class:`~infomtl.modeling.model.MultiTaskModel` does: ``.heads[t].mean`` for each task
of ``batch.rows``. The predictor's tokenisation, length-sorted batching and
post-processing (softmax, sigmoid and the threshold, values) are the same code for both,
so an ONNX export gives the labels of the PyTorch model and its probabilities to float
rounding. The session uses as many intra-op threads as torch (``torch.get_num_threads``),
so ``--threads`` / ``OMP_NUM_THREADS`` govern both runtimes alike.

onnx and onnxruntime come with the ``onnx`` extra and are imported only when an ONNX
export is written or loaded (:func:`require_onnx`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infomtl.errors import ConfigError, InfomtlError, first_line
from infomtl.inference.units import ModelUnit
from infomtl.modeling.backbones import quiet_transformers
from infomtl.modeling.heads import HeadOutput
from infomtl.tasks import Task

#: The graph file of an ONNX export (with its weights in ``model.onnx.data`` beside it).
ONNX_FILE = "model.onnx"
#: The tokenizer folder of an ONNX export (``save_pretrained``).
TOKENIZER_DIR = "tokenizer"
#: The graph's inputs, in order; ``token_type_ids`` only for backbones whose tokenizer gives them.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: The Python packages of the ``onnx`` extra for running (export also needs onnxscript).
RUNTIME_PACKAGES = ("onnx", "onnxruntime")


def require_onnx(purpose: str, packages: tuple[str, ...] = RUNTIME_PACKAGES) -> None:
    """Raise :class:`InfomtlError` naming the ``onnx`` extra when one of ``packages`` is missing."""
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            raise InfomtlError(f"{purpose} needs the Python package {name}: "
                               'pip install "infomtl[onnx]"') from None


@dataclass
class OnnxOutput:
    """What :class:`OnnxModel` returns: ``heads[t].mean`` as in a ``ModelOutput``."""

    heads: dict[int, HeadOutput]


def onnxruntime_errors() -> tuple[type[BaseException], ...]:
    """The exception classes onnxruntime raises for a model it cannot load (none derives
    from a common base but ``Exception``)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
             "RuntimeException", "NotImplemented")
    return (RuntimeError, OSError, *(getattr(state, n) for n in names if hasattr(state, n)))


class OnnxModel:
    """An ONNX graph ``(input_ids, attention_mask[, token_type_ids]) → one output per task``
    in an onnxruntime session on the CPU; ``outputs[t]`` names task t's output."""

    def __init__(self, path: Path, outputs: list[str]) -> None:
        import onnx
        import onnxruntime as ort

        try:
            onnx.checker.check_model(str(path), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, OSError) as exc:
            raise InfomtlError(f"{path}: not a valid ONNX model ({first_line(exc, 200)})") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except onnxruntime_errors() as exc:
            raise InfomtlError(f"{path}: onnxruntime cannot load it ({first_line(exc, 200)})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs not in (list(INPUT_NAMES[:2]), list(INPUT_NAMES)):
            raise InfomtlError(f"{path}: graph inputs {inputs}; expected {', '.join(INPUT_NAMES)} "
                               "(token_type_ids optional)")
        found = {o.name for o in self.session.get_outputs()}
        missing = [name for name in outputs if name not in found]
        if missing:
            raise InfomtlError(f"{path}: no graph output for task(s) {', '.join(missing)} "
                               f"(outputs: {', '.join(sorted(found))})")
        self.path = path
        self.outputs = outputs
        self.token_types = len(inputs) == len(INPUT_NAMES)

    def to(self, device: Any) -> OnnxModel:
        if torch.device(device).type != "cpu":
            raise InfomtlError(f"{self.path.parent}: an ONNX export runs on the CPU (onnxruntime); "
                               f"load it with device='cpu', or load the run folder for {device}")
        return self

    def eval(self) -> OnnxModel:
        return self

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray,
            token_type_ids: np.ndarray | None = None, tasks: list[int] | None = None) -> list[np.ndarray]:
        """The graph's ``(B, C)`` output of each task in ``tasks`` (default: all), for int64 inputs."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            feed["token_type_ids"] = token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
        chosen = range(len(self.outputs)) if tasks is None else tasks
        try:
            return self.session.run([self.outputs[t] for t in chosen], feed)
        except onnxruntime_errors() as exc:
            raise InfomtlError(f"{self.path}: onnxruntime failed on a batch of {input_ids.shape[0]} rows of "
                               f"{input_ids.shape[1]} tokens ({first_line(exc, 200)})") from None

    def __call__(self, batch: Any, views: int = 1) -> OnnxOutput:
        if views != 1:
            raise ValueError("an ONNX model predicts (views=1); it does not train")
        types = batch.token_type_ids
        tasks = list(batch.rows)
        values = self.run(batch.input_ids.cpu().numpy(), batch.attention_mask.cpu().numpy(),
                          None if types is None else types.cpu().numpy(), tasks)
        return OnnxOutput({t: HeadOutput(mean=torch.from_numpy(v).index_select(0, batch.rows[t].cpu()))
                           for t, v in zip(tasks, values, strict=True)})


def load_onnx_unit(folder: Path, manifest: dict[str, Any]) -> ModelUnit:
    """The unit of one ONNX export folder whose (verified) manifest is ``manifest``."""
    require_onnx("loading an ONNX export")
    where = folder / "infomtl.json"
    try:
        tasks = [Task.from_dict(t) for t in manifest["tasks"]]
        max_length = int(manifest["max_length"])
        pairs = {str(k): str(v) for k, v in manifest.get("pairs", {}).items()}
        outputs = [str(manifest["onnx"]["outputs"][t.name]) for t in tasks]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InfomtlError(f"{where}: malformed ({exc})") from None
    model = OnnxModel(folder / ONNX_FILE, outputs)
    return ModelUnit(model, load_tokenizer(folder / TOKENIZER_DIR), max_length, tasks, pairs)


def load_tokenizer(folder: Path) -> Any:
    """The fast tokenizer saved in ``folder`` (``save_pretrained``)."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        try:
            return AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{folder}: cannot read the saved tokenizer ({first_line(exc, 200)})") from None
