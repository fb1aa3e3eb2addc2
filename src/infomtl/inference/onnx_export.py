"""``infomtl export RUN_DIR OUT --format onnx``: the encoder and every task head as one ONNX graph.

Inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer gives
them), int64 ``(batch, sequence)``, both axes dynamic; one float32 ``(batch, C)`` output per
task: the head mean the predictor turns into labels (VIP-MTL's already divided by ``√Σ'``).
Tokenisation and post-processing stay in :mod:`infomtl.inference.predict`; an STL run
exports one graph per task. The folder's files and its use: ``docs/inference.md`` (ONNX).

The exporter is torch.export's (``dynamo=True``): the TorchScript one is deprecated and
freezes branches on tensor values into the graph. Both decide a branch on a *size* by the
example batch, so TextCNN's padding of rows shorter than its widest kernel is done before
the graph (it changes no output). Every export is checked before the folder is put in
place: ``onnx.checker`` (full), then onnxruntime against PyTorch on two batches of other
sizes and lengths than the one traced, within :data:`TOLERANCE`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from infomtl.artifacts.run_folder import load_run
from infomtl.errors import InfomtlError, first_line
from infomtl.fileio import write_json, writing
from infomtl.inference.export import MANIFEST, _checksums, export_run, run_manifest
from infomtl.inference.onnx_units import INPUT_NAMES, ONNX_FILE, TOKENIZER_DIR, OnnxModel, require_onnx
from infomtl.modeling.backbones import quiet_transformers
from infomtl.modeling.model import MultiTaskModel

#: The ONNX opset of the graphs (onnxruntime 1.17 and later run it).
OPSET = 18
#: Largest difference allowed between onnxruntime's and PyTorch's outputs, times max(1, |output|).
TOLERANCE = 1e-4
#: The texts whose tokens the exporter traces (three rows of different lengths: padding).
TRACE_TEXTS = ("an example sentence of a dozen words to trace the graph with", "a short one", "ok")
#: The texts of the check after export: other batch sizes and lengths than the trace.
CHECK_TEXTS = (("x",), ("the food was great", "what an awful day it was today, really", "no", "why", "y",
                        "one two three four five", "a"))


class OnnxGraph(nn.Module):
    """The predictor's forward as one module to trace: ``(input_ids, attention_mask
    [, token_type_ids])`` → each task's head mean ``(B, C)`` in float32, every row to every head."""

    def __init__(self, model: MultiTaskModel, num_tasks: int) -> None:
        super().__init__()
        self.model = model
        self.num_tasks = num_tasks
        heads = getattr(model.decoder, "heads", [])
        # TextCNN pads rows shorter than its widest kernel with a branch on the length (module docstring)
        self.state_padding = max((max(getattr(h, "kernels", (0,))) for h in heads), default=0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        model = self.model
        rows = {t: torch.arange(input_ids.shape[0], device=input_ids.device) for t in range(self.num_tasks)}
        if model.token_states:
            states = model.encode_states(input_ids, attention_mask, token_type_ids)
            mask = attention_mask
            if self.state_padding:
                states = nn.functional.pad(states, (0, 0, 0, self.state_padding))
                mask = nn.functional.pad(attention_mask, (0, self.state_padding))
            heads, _ = model.decoder(states, mask, rows)
        else:
            h = model.encode(input_ids, attention_mask, token_type_ids)
            if model.sharing is not None:  # one block of rows per task: task t's h_t (learning to share)
                n = input_ids.shape[0]
                h = torch.cat([model.sharing.task_representation(h, t) for t in range(self.num_tasks)])
                rows = {t: r + t * n for t, r in rows.items()}
            if model.shared_mlp is not None:
                h = model.shared_mlp(h)
            heads, _ = model.decoder(h, rows)
        return tuple(heads[t].mean.float() for t in range(self.num_tasks))


def export_onnx(run_dir: str | Path, out_dir: str | Path, license: str | None = None) -> Path:
    """Export a run (or STL) folder as ONNX into the new folder ``out_dir`` (module docstring);
    ``license`` as :func:`~infomtl.inference.export.export_run`."""
    require_onnx("infomtl export --format onnx", ("onnx", "onnxruntime", "onnxscript"))
    return export_run(run_dir, out_dir, license=license, write_part=_write_onnx_part)


def _write_onnx_part(run_dir: Path, dest: Path) -> dict[str, Any]:
    """Write one run's graph, tokenizer and manifest into ``dest``; return the manifest."""
    run = load_run(run_dir)
    tokenizer = run.backbone.tokenizer
    names = [t.name for t in run.tasks]
    graph = OnnxGraph(run.model, len(names)).eval()
    token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    inputs = list(INPUT_NAMES if token_types else INPUT_NAMES[:2])
    with writing(dest):
        dest.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            tokenizer.save_pretrained(dest / TOKENIZER_DIR)
        _trace(graph, _encode(tokenizer, TRACE_TEXTS, inputs), inputs, names, dest / ONNX_FILE, run_dir)
    _check(graph, OnnxModel(dest / ONNX_FILE, names), tokenizer, inputs, names, run_dir)
    manifest = run_manifest(run, run_dir)
    manifest["model_format"] = "onnx"
    manifest["onnx"] = {"opset": OPSET, "inputs": inputs, "outputs": {name: name for name in names},
                        "torch": torch.__version__}
    manifest["files"] = _checksums(dest)
    write_json(dest / MANIFEST, manifest)
    return manifest


def _encode(tokenizer: Any, texts: tuple[str, ...], inputs: list[str]) -> tuple[torch.Tensor, ...]:
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    return tuple(enc[name].to(torch.int64) for name in inputs)


def _trace(graph: OnnxGraph, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           path: Path, run_dir: Path) -> None:
    """``torch.onnx.export`` (dynamo) of ``graph`` with dynamic batch and sequence axes, then
    onnx's full check of the file."""
    import onnx

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = tuple({0: batch, 1: sequence} for _ in example)
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [log.level for log in quiet]
    try:
        for log in quiet:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, example, str(path), input_names=inputs, output_names=outputs,
                              dynamic_shapes=dynamic, opset_version=OPSET, dynamo=True, external_data=True,
                              verbose=False)
    except torch.onnx.OnnxExporterError as exc:
        raise InfomtlError(f"{run_dir}: cannot export the model to ONNX ({first_line(exc, 200)}); "
                           "export it in the default format") from None
    finally:
        for log, level in zip(quiet, levels, strict=True):
            log.setLevel(level)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise InfomtlError(f"{run_dir}: the exported ONNX graph fails onnx's check ({first_line(exc, 200)})") from None


def _check(graph: OnnxGraph, session: OnnxModel, tokenizer: Any, inputs: list[str], names: list[str],
           run_dir: Path) -> None:
    """onnxruntime's outputs against PyTorch's on :data:`CHECK_TEXTS` (see the module docstring)."""
    for texts in CHECK_TEXTS:
        example = _encode(tokenizer, texts, inputs)
        with torch.no_grad():
            expected = [t.numpy() for t in graph(*example)]
        try:
            arrays = [t.numpy() for t in example]
            got = session.run(arrays[0], arrays[1], arrays[2] if len(arrays) > 2 else None)
        except InfomtlError as exc:
            raise InfomtlError(f"{run_dir}: the exported ONNX graph does not run ({exc}); "
                               "export it in the default format") from None
        for name, a, b in zip(names, got, expected, strict=True):
            gap = float(np.abs(a - b).max())
            if not gap <= TOLERANCE * max(1.0, float(np.abs(b).max())):
                raise InfomtlError(f"{run_dir}: the ONNX graph's {name} output differs from PyTorch's by {gap:.3g} "
                                   f"on a batch of {len(texts)}; export it in the default format")
