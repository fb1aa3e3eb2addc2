"""Using a trained model: every task's prediction for new texts.

:func:`load` accepts a run folder written by ``infomtl train``, an STL folder (one
sub-run per task; their predictors are combined), an export folder written by
``infomtl export`` (see :mod:`infomtl.inference.export`) or the Hub repo id of one
(``infomtl push``; :mod:`infomtl.inference.hub`), and returns a :class:`Predictor`::

    predictor = infomtl.load("runs/my-run")
    predictor.predict(["what a great day", "this is awful"])
    # [{"sentiment": {"label": "positive", "probability": 0.91, "probabilities": {...}}, ...}, ...]

Per text and task the prediction is

* classification: ``{"label": name, "probability": p, "probabilities": {name: p}}``
  (softmax of the head mean; ``label`` is the argmax, as in the run's predictions);
* multi-label: ``{"labels": [names], "probabilities": {name: p}}`` (sigmoid, the
  task's decision threshold);
* regression: ``{"value": v}``, or ``{"values": {target: v}}`` for several outputs.

Text pairs: a task trained on text pairs gets each text's pair from ``pairs``.
EI-reg trained with ``ei_reg_pair: first`` *needs* the emotion (``anger``, ``fear``,
``joy``, ``sadness``) as the pair of every text; a task folder trained with a
``text_pair`` column uses the pair when given and an empty pair otherwise (as rows
without a pair were trained). Tasks trained without pairs ignore ``pairs``.

The inputs and outputs of ``infomtl predict`` (plain text, JSONL, TSV) are read and
written by :mod:`infomtl.inference.formats`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from infomtl.artifacts.run_folder import RunFolder
from infomtl.data.encoding import Batch
from infomtl.errors import InfomtlError
from infomtl.inference.export import MANIFEST, load_export_units
from infomtl.inference.heap import HeapTrimmer
from infomtl.inference.hub import resolve_model
from infomtl.inference.quantize import check_quantize, quantize_units
from infomtl.inference.units import ModelUnit, unit_from_run
from infomtl.modeling.model import MultiTaskModel
from infomtl.modeling.packing import call_sequences, round_up
from infomtl.precision import INFERENCE_PRECISIONS, cpu_has_bf16, inference_precision
from infomtl.tasks import Task, TaskKind

log = logging.getLogger(__name__)

#: widths of the forward passes a multiple of this under bf16 (:attr:`Predictor.shape_step`)
BF16_SHAPE_STEP = 8


class Predictor:
    """Predicts every task of a trained run (or export) for new texts.

    Build it with :func:`load`. Attributes: ``tasks`` (the task definitions, in
    output order), ``task_names``, ``source`` (the folder it was loaded from),
    ``quantize`` (``"none"`` or ``"int8"``: :mod:`infomtl.inference.quantize`) and
    ``precision`` (``"fp32"`` or ``"bf16"``: what the PyTorch models compute in, under
    autocast for bf16; ``"auto"`` resolves by :func:`infomtl.precision.inference_precision`).
    Every forward pass runs under ``torch.inference_mode``.
    """

    def __init__(self, units: list[ModelUnit], source: Path, device: str = "cpu",
                 quantize: str | None = None, precision: str = "auto") -> None:
        self.units = units
        self.source = Path(source)
        self.device = torch.device(device)
        self.quantize = check_quantize(quantize, self.device)
        names = [t.name for u in units for t in u.tasks]
        if len(set(names)) != len(names):
            raise InfomtlError(f"{source}: the same task is predicted by two models ({names})")
        self.precision = self._precision(precision)
        self.heap = HeapTrimmer()
        #: forward passes in few shapes under bf16: widths a multiple of it, rows filled up
        #: (:mod:`infomtl.modeling.packing`; oneDNN keeps a bf16 kernel per shape)
        self.shape_step = BF16_SHAPE_STEP if self.precision == "bf16" else 0
        for unit in units:
            unit.model.to(self.device)
            unit.model.eval()
        if self.quantize == "int8":
            quantize_units(units)

    @property
    def tasks(self) -> list[Task]:
        return [t for u in self.units for t in u.tasks]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def pair_modes(self) -> dict[str, str]:
        """``{task: "none" | "first" | "second"}`` (see the module docstring)."""
        return {name: mode for u in self.units for name, mode in u.pair_modes.items()}

    def predict(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        batch_size: int = 64,
        progress: bool = False,
        max_tokens: int | None = None,
    ) -> list[dict[str, dict[str, Any]]]:
        """One dict per text (input order): ``{task: prediction}`` for every chosen task.

        Args:
            texts: the texts.
            pairs: a second text per text, for tasks trained on text pairs (EI-reg's
                emotion); ignored by the other tasks.
            tasks: names of the tasks to predict (default: all, in the run's order).
            batch_size: rows per forward pass (texts are sorted by length first).
            progress: show a progress bar on stderr.
            max_tokens: also at most this many padded tokens (rows × the longest
                row's tokens) per forward pass; a longer text gets a pass of its own.
                The texts of one call being sorted by length, a budget keeps short
                texts out of a long text's padding (``infomtl serve`` passes 512).

        Raises:
            InfomtlError: ``texts`` (or ``pairs``) a bare string rather than a list of
                strings, a text that is not a string or is empty (no non-space
                character; named by its index), ``pairs`` of the wrong length, an
                unknown task, or a task that needs pairs without them.
        """
        texts = _strings(texts, "texts")
        for i, text in enumerate(texts):
            if not text.strip():
                raise InfomtlError(f"texts[{i}] is empty (every text needs a non-space character)")
        if pairs is not None:
            pairs = _strings(pairs, "pairs")
            if len(pairs) != len(texts):
                raise InfomtlError(f"{len(texts)} texts but {len(pairs)} pairs")
        if batch_size < 1:
            raise InfomtlError(f"batch size must be at least 1, got {batch_size}")
        if max_tokens is not None and max_tokens < 1:
            raise InfomtlError(f"max_tokens must be at least 1, got {max_tokens}")
        chosen = self._choose(tasks)
        results: list[dict[str, dict[str, Any]]] = [{} for _ in texts]
        if not texts:
            return results
        groups: list[tuple[ModelUnit, str, list[int]]] = []
        for unit in self.units:
            by_mode: dict[str, list[int]] = {}
            for t, task in enumerate(unit.tasks):
                if task.name in chosen:
                    mode = unit.pair_modes.get(task.name, "none")
                    if mode == "first" and pairs is None:
                        raise InfomtlError(
                            f"task {task.name} was trained on text pairs and needs a pair for every "
                            f"text (e.g. the emotion: anger, fear, joy, sadness): pass pairs=... "
                            f"(command line: a \"text_pair\" field in JSONL or a second TSV column)"
                        )
                    if mode == "second" and pairs is None:
                        mode = "second-empty"
                    by_mode.setdefault(mode, []).append(t)
            groups.extend((unit, mode, idx) for mode, idx in by_mode.items())
        bar = tqdm(total=len(texts) * len(groups), desc="predict", unit="text", disable=not progress,
                   file=sys.stderr, leave=False, dynamic_ncols=True)
        with torch.inference_mode():
            for unit, mode, task_idx in groups:
                outputs = self._run(unit, mode, task_idx, texts, pairs, (batch_size, max_tokens), bar)
                for t, values in outputs.items():
                    task = unit.tasks[t]
                    for row, value in zip(results, values, strict=True):
                        row[task.name] = _format(task, value)
        bar.close()
        order = [n for n in self.task_names if n in chosen]
        return [{name: row[name] for name in order} for row in results]

    # -- internals -------------------------------------------------------------------

    def _precision(self, precision: str) -> str:
        _check_precision(precision)
        torch_models = all(isinstance(u.model, MultiTaskModel) for u in self.units)
        if precision == "bf16" and not torch_models:
            raise InfomtlError("--precision bf16 needs a PyTorch model; an ONNX export runs in fp32")
        if precision == "bf16" and self.quantize == "int8":
            raise InfomtlError("--precision bf16 and --quantize int8 do not combine (the int8 encoder "
                               "computes its activations in fp32)")
        if precision == "auto" and (self.quantize == "int8" or not torch_models):
            return "fp32"
        resolved = inference_precision(precision, self.device.type)
        if resolved == "bf16" and self.device.type == "cpu" and cpu_has_bf16() is False:
            log.warning("--precision bf16 on a CPU without bf16 instructions: autocast emulates bf16 "
                        "and runs several times slower than fp32")
        return resolved

    def _autocast(self) -> Any:
        """bf16 autocast on the predictor's device for ``precision == "bf16"``, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _choose(self, tasks: Sequence[str] | None) -> set[str]:
        if tasks is None:
            return set(self.task_names)
        if isinstance(tasks, str):
            raise InfomtlError(f"tasks must be a list of task names, got a single string (tasks=[{tasks!r}])")
        unknown = [t for t in tasks if t not in self.task_names]
        if unknown:
            raise InfomtlError(
                f"unknown task(s) {', '.join(unknown)}; this model predicts {', '.join(self.task_names)}"
            )
        if not tasks:
            raise InfomtlError("no task chosen")
        return set(tasks)

    def _run(self, unit: ModelUnit, mode: str, task_idx: list[int], texts: list[str],
             pairs: list[str] | None, sizes: tuple[int, int | None], bar: Any) -> dict[int, list[Any]]:
        import numpy as np

        tok, n = unit.tokenizer, len(texts)
        if mode == "none":
            enc = tok(texts, truncation=True, max_length=unit.max_length)
        elif mode == "first":
            enc = tok(pairs, texts, truncation="longest_first", max_length=unit.max_length)
        else:
            second = [""] * n if mode == "second-empty" else pairs
            enc = tok(texts, second, truncation="longest_first", max_length=unit.max_length)
        ids = enc["input_ids"]
        types = enc.get("token_type_ids")
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        per_task: dict[int, list[torch.Tensor]] = {t: [] for t in task_idx}
        step = self.shape_step
        if isinstance(unit.model, MultiTaskModel):
            unit.model.shape_step = step  # its packed calls, where it packs
        for start, end in forward_spans(lengths[order], *sizes):
            idx = order[start:end]
            width, padded = int(lengths[idx].max()), len(idx)
            if step:  # few shapes: widths a multiple of step, rows filled up (module docstring)
                width = min(round_up(width, step), max(width, unit.max_length))
                padded = call_sequences(len(idx), step)
            input_ids = np.full((padded, width), unit.pad_id, dtype=np.int64)
            mask = np.zeros((padded, width), dtype=np.int64)
            mask[len(idx):, 0] = 1  # filler rows: one token each, never read by a head
            tt = np.zeros((padded, width), dtype=np.int64) if types is not None else None
            for r, i in enumerate(idx):
                input_ids[r, : lengths[i]] = ids[i]
                mask[r, : lengths[i]] = 1
                if tt is not None:
                    tt[r, : lengths[i]] = types[i]
            rows = {t: torch.arange(len(idx)) for t in task_idx}
            batch = Batch(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=None if tt is None else torch.from_numpy(tt),
                rows=rows, labels={}, lengths=np.concatenate([lengths[idx], np.ones(padded - len(idx), np.int64)]),
            ).to(self.device)
            with self._autocast():
                out = unit.model(batch, views=1)
            for t in task_idx:
                per_task[t].append(out.heads[t].mean.float().cpu())
            del out, batch
            self.heap.after_batch()  # freed activations of many shapes back to the system
            bar.update(len(idx))
        restored: dict[int, list[Any]] = {}
        for t, parts in per_task.items():
            values = torch.cat(parts).numpy()
            back = np.empty_like(values)
            back[order] = values
            restored[t] = list(back)
        return restored


def forward_spans(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int | None = None
                  ) -> list[tuple[int, int]]:
    """``[start, end)`` spans of length-sorted (ascending) rows, one per forward pass: at most
    ``batch_size`` rows and, with ``max_tokens``, at most ``max_tokens`` padded tokens (rows ×
    the span's last, longest row), at least one row."""
    spans, start, n = [], 0, len(sorted_lengths)
    while start < n:
        end = min(start + batch_size, n)
        if max_tokens is not None:
            fits = start + 1
            while fits < end and (fits + 1 - start) * int(sorted_lengths[fits]) <= max_tokens:
                fits += 1
            end = fits
        spans.append((start, end))
        start = end
    return spans


def _check_precision(precision: str) -> None:
    if precision not in INFERENCE_PRECISIONS:
        raise InfomtlError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")


def _strings(values: Any, name: str) -> list[str]:
    """``values`` as a list of strings; :class:`InfomtlError` for a bare string or a non-string item."""
    if isinstance(values, (str, bytes)):
        raise InfomtlError(f"{name} must be a list of strings, got a single {type(values).__name__} "
                           f"(predict one text with [text])")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InfomtlError(f"{name}[{i}] must be a string, got {type(value).__name__}")
    return values


def _format(task: Task, output: Any) -> dict[str, Any]:
    """One row's head mean as the documented prediction dict."""
    output = np.asarray(output, dtype=np.float64)
    if task.kind is TaskKind.CLASSIFICATION:
        exp = np.exp(output - output.max())
        probs = exp / exp.sum()
        best = int(output.argmax())
        return {
            "label": task.labels[best],
            "probability": float(probs[best]),
            "probabilities": {name: float(p) for name, p in zip(task.labels, probs, strict=True)},
        }
    if task.kind is TaskKind.MULTILABEL:
        probs = 1.0 / (1.0 + np.exp(-output))
        return {
            "labels": [name for name, p in zip(task.labels, probs, strict=True) if p > task.threshold],
            "probabilities": {name: float(p) for name, p in zip(task.labels, probs, strict=True)},
        }
    values = np.atleast_1d(output)
    if len(task.targets) == 1:
        return {"value": float(values[0])}
    return {"values": {name: float(v) for name, v in zip(task.targets, values, strict=True)}}


def load(path: str | Path, device: str = "cpu", revision: str | None = None, quantize: str | None = None,
         precision: str = "auto") -> Predictor:
    """A :class:`Predictor` for a run folder, an STL folder, an export folder, or the id of a
    Hugging Face Hub repo holding an export (``"user/model"``, at ``revision``: a branch, tag or
    commit), downloaded into the Hugging Face cache (:mod:`infomtl.inference.hub`; an existing
    local path wins over a repo id).

    ``quantize="int8"``: the encoder's Linear layers dynamically quantised to int8, for CPU
    inference (:mod:`infomtl.inference.quantize`; the heads stay fp32). ``precision``:
    ``"auto"`` (bf16 autocast on a CPU with bf16 cores, else fp32), ``"fp32"`` or ``"bf16"``.

    Nothing is unpickled: weights are read from safetensors files, everything else
    from JSON/YAML. An export folder's files are checked against their SHA-256
    first (a changed or truncated file stops with a clear error). An ONNX export
    (``infomtl export --format onnx``) runs with onnxruntime, on the CPU only.
    """
    check_quantize(quantize, device)  # before any download or load
    _check_precision(precision)
    folder = resolve_model(path, revision)
    if not folder.is_dir():
        raise InfomtlError(f"{folder}: no such run or export folder")
    run = RunFolder(folder)
    if (folder / MANIFEST).is_file():
        units = load_export_units(folder)
    elif run.holds_model:
        units = [unit_from_run(sub) for sub in run.model_dirs()]
    else:
        raise InfomtlError(
            f"{folder}: not a run folder (no checkpoint/) nor an export folder (no {MANIFEST})"
        )
    return Predictor(units, folder, device, quantize, precision)
